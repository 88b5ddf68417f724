/* The probes: machine record, memory peak, PAPI/SDE counters, and `ctxbench info`. */
#include <criterion/criterion.h>
#include <papi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../engines/counters.h"
#include "../engines/kernels/kernels.h"
#include "../harness/measure/machine.h"
#include "../harness/measure/memprobe.h"
#include "../harness/measure/papi_counters.h"

#define MiB (1024LL * 1024)

Test(probes, machine_fields_plausible) {
    cb_machine m;
    cb_machine_collect(&m, 3);
    cr_assert(m.cpu_model[0], "cpu model empty");
    cr_assert_gt(m.cores_online, 0);
    cr_assert_leq(m.cores_online, 4096);
    cr_assert_eq(m.threads_used, 3);
    cr_assert(strstr(m.pinning, "affinity="), "pinning: %s", m.pinning);
    cr_assert_gt(m.mem_total_bytes, 64 * MiB);
    cr_assert_gt(m.mem_available_bytes, 0);
    cr_assert_leq(m.mem_available_bytes, m.mem_total_bytes);
    cr_assert(!strcmp(m.kernel_path, "portable") || !strcmp(m.kernel_path, "avx2") || !strcmp(m.kernel_path, "avx512") ||
                  !strcmp(m.kernel_path, "avx512-bf16") || !strcmp(m.kernel_path, "amx"),
              "kernel path: %s", m.kernel_path);
    cr_assert(m.compiler[0] && m.cflags[0] && m.git_commit[0]);
    cr_assert(strstr(m.cflags, "-std=c17"), "cflags: %s", m.cflags);
    cr_assert(strncmp(m.papi_version, "7.", 2) == 0 || strncmp(m.papi_version, "8.", 2) == 0, "papi %s", m.papi_version);
    cr_assert(strstr(m.papi_components, "sde:active"), "components: %s", m.papi_components);
    cr_assert(strstr(m.papi_components, "perf_event:"), "components: %s", m.papi_components);
    cr_assert(!strncmp(m.os, "Linux ", 6), "os: %s", m.os);
    cr_assert(m.hostname[0]);
    /* 2026-11-22T08:00:53Z */
    cr_assert_eq(strlen(m.date_utc), 20, "date: %s", m.date_utc);
    cr_assert_eq(m.date_utc[10], 'T');
    cr_assert_eq(m.date_utc[19], 'Z');
    /* the flags list only holds what cpuinfo says: avx512f present iff the kernels may use AVX-512, avx2 on
     * the avx2 path */
    if (strcmp(m.kernel_path, "portable") != 0)
        cr_assert(strstr(m.cpu_flags, strcmp(m.kernel_path, "avx2") ? "avx512f" : "avx2"), "flags: %s", m.cpu_flags);
    /* the decode kernels' run-time choices (runs.decode_prefetch, runs.gemv_order): empty only on the portable path */
    const bool simd = strcmp(m.kernel_path, "portable") != 0;
    cr_assert(simd ? !strcmp(m.decode_prefetch, cb_kernels_prefetch_l2(NULL) ? "l2" : "l1") : !m.decode_prefetch[0],
              "decode prefetch: '%s'", m.decode_prefetch);
    cr_assert(simd ? !strcmp(m.gemv_order, "rows") || !strcmp(m.gemv_order, "blocks") : !m.gemv_order[0],
              "gemv order: '%s'", m.gemv_order);
}

Test(probes, peak_rss_grows_and_resets) {
    cb_mem_reset_peak();
    int64_t base = cb_mem_peak_rss_bytes();
    cr_assert_gt(base, 0);
    size_t len = (size_t)(64 * MiB);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    for (size_t i = 0; i < len; i += 4096) p[i] = (char)i; /* touch every page */
    int64_t peak = cb_mem_peak_rss_bytes(), rss = cb_mem_rss_bytes();
    cr_assert_geq(peak - base, 60 * MiB, "peak grew by %lld bytes only", (long long)(peak - base));
    cr_assert_geq(rss, 60 * MiB);
    munmap(p, len);
    cb_mem_reset_peak();
    if (cb_mem_peak_note()[0]) cr_skip_test("%s", cb_mem_peak_note()); /* kernel without clear_refs */
    int64_t after = cb_mem_peak_rss_bytes();
    cr_assert_leq(after, peak - 48 * MiB, "peak after reset %lld, before %lld", (long long)after, (long long)peak);
    int64_t minor = -1, major = -1;
    cb_mem_page_faults(&minor, &major);
    cr_assert_geq(minor, 16384, "64 MiB touched page by page: >= 16384 minor faults, got %lld", (long long)minor);
    cr_assert_geq(major, 0);
    cr_assert_gt(cb_mem_available_bytes(), 0);
}

static const char *const sde_events[] = { "sde:::ctxbench::flops",         "sde:::ctxbench::weight_bytes",
                                          "sde:::ctxbench::kv_bytes_read", "sde:::ctxbench::kv_bytes_written",
                                          "sde:::ctxbench::state_bytes",   "sde:::ctxbench::tokens",
                                          "sde:::ctxbench::ssd_ns",        "sde:::ctxbench::attention_ns" };
#define N_SDE_EVENTS 8

Test(probes, sde_round_trip_equals_counter_deltas) {
    char why[160];
    cr_assert_eq(cb_papi_init(why, sizeof why), 0, "%s", why);
    cb_ctr = (cb_counters){ .flops = 1000, .weight_bytes = 7, .tokens = 3 }; /* nonzero before start */
    cb_counter_set *s = cb_counters_open(sde_events, N_SDE_EVENTS);
    cr_assert_not_null(s);
    cb_counter_value v[N_SDE_EVENTS];
    for (int rep = 0; rep < 3; rep++) {
        cb_counters_start(s);
        long long d[N_SDE_EVENTS] = { 123456789012LL + rep, 4096 * (rep + 1), 17, 19, 23 + rep, 5, 1000003LL * rep, 29 };
        cb_ctr.flops += d[0] / 2;
        cb_ctr.flops += d[0] - d[0] / 2;
        cb_ctr.weight_bytes += d[1];
        cb_ctr.kv_bytes_read += d[2];
        cb_ctr.kv_bytes_written += d[3];
        cb_ctr.state_bytes += d[4];
        cb_ctr.tokens += d[5];
        cb_ctr.ssd_ns += d[6];
        cb_ctr.attention_ns += d[7];
        cb_counters_stop(s, v);
        for (int i = 0; i < N_SDE_EVENTS; i++) {
            cr_assert(v[i].ok, "%s: %s", v[i].name, v[i].status);
            cr_assert_str_eq(v[i].name, sde_events[i]);
            cr_assert_eq(v[i].value, d[i], "%s rep %d: read %lld, bumped %lld", v[i].name, rep, v[i].value, d[i]);
        }
    }
    /* nothing bumped: zero deltas */
    cb_counters_start(s);
    cb_counters_stop(s, v);
    for (int i = 0; i < N_SDE_EVENTS; i++) cr_assert_eq(v[i].value, 0, "%s", v[i].name);
    cb_counters_close(s);
}

static bool perf_event_disabled(void) {
    for (int i = 0; i < PAPI_num_components(); i++) {
        const PAPI_component_info_t *ci = PAPI_get_component_info(i);
        if (ci && !strcmp(ci->name, "perf_event")) return ci->disabled != 0;
    }
    return true;
}

Test(probes, unavailable_events_keep_a_reason_and_sde_still_reads) {
    char why[160];
    cr_assert_eq(cb_papi_init(why, sizeof why), 0, "%s", why);
    const char *names[] = { "PAPI_TOT_CYC", "sde:::ctxbench::tokens", "NO_SUCH_EVENT_CTXBENCH", "sde:::ctxbench::nope",
                            "sde:::ctxbench::flops" };
    cb_counter_set *s = cb_counters_open(names, 5);
    cr_assert_not_null(s);
    cb_counters_start(s);
    cb_ctr.tokens += 11;
    cb_ctr.flops += 22;
    cb_counter_value v[5];
    cb_counters_stop(s, v);
    cb_counters_close(s);
    if (perf_event_disabled()) {
        cr_assert_not(v[0].ok);
        cr_assert(strstr(v[0].status, "perf_event component disabled"), "status: %s", v[0].status);
    }
    cr_assert_not(v[2].ok);
    cr_assert(strstr(v[2].status, "unknown event"), "status: %s", v[2].status);
    cr_assert_not(v[3].ok);
    cr_assert(strstr(v[3].status, "no such software-defined counter"), "status: %s", v[3].status);
    cr_assert(v[1].ok && v[4].ok, "%s / %s", v[1].status, v[4].status);
    cr_assert_eq(v[1].value, 11);
    cr_assert_eq(v[4].value, 22);
}

Test(probes, default_names_hold_hardware_and_all_sde) {
    const char *names[32];
    int n = cb_counters_default_names(names, 32);
    cr_assert_geq(n, 3 + N_SDE_EVENTS);
    cr_assert_str_eq(names[0], "PAPI_TOT_CYC");
    cr_assert_str_eq(names[1], "PAPI_TOT_INS");
    cr_assert(strstr(names[2], "_TCM"), "%s", names[2]);
    for (int k = 0; k < N_SDE_EVENTS; k++) {
        bool found = false;
        for (int i = 0; i < n; i++) found |= !strcmp(names[i], sde_events[k]);
        cr_assert(found, "%s missing from the default list", sde_events[k]);
    }
    cr_assert_eq(cb_counters_default_names(names, 2), 2); /* honours max */
}

static char *run_capture(const char *cmd, int *status) {
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "popen %s", cmd);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t r;
    while ((r = fread(buf + len, 1, cap - 1 - len, f)) > 0) len += r;
    buf[len] = 0;
    *status = pclose(f);
    return buf;
}

static const char *ctxbench_bin(void) {
    const char *b = getenv("CTXBENCH_BIN");
    return b && *b ? b : "build/ctxbench";
}

/* `ENV ctxbench info ARGS` exits with code and prints want (may be ""). */
static void info_exits(const char *env, const char *args, int code, const char *want) {
    char cmd[1024];
    int st;
    snprintf(cmd, sizeof cmd, "%s %s info %s 2>&1", env, ctxbench_bin(), args);
    char *out = run_capture(cmd, &st);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == code, "%s: exit %d expected, status %d\n%s", cmd, code, st, out);
    cr_assert(strstr(out, want), "%s: '%s' expected in\n%s", cmd, want, out);
    free(out);
}

Test(probes, info_command_reports_kernel_path_and_perf_event) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s info 2>&1", ctxbench_bin());
    int st;
    char *out = run_capture(cmd, &st);
    cr_assert_eq(st, 0, "ctxbench info exited with %d:\n%s", st, out);
    cr_assert(strstr(out, "kernel path:"), "%s", out);
    if (cb_kernels_best_path() >= CB_PATH_AVX512)
        cr_assert(strstr(out, __builtin_cpu_supports("avx512vnni") ? "8-bit decode:   int8 weights and int8 KV on AVX512-VNNI"
                                                                   : "8-bit decode:   no AVX512-VNNI"),
                  "%s", out);
    cr_assert(strstr(out, "perf_event"), "%s", out);
    cr_assert(strstr(out, "sde:::ctxbench::flops"), "%s", out);
    cr_assert(strstr(out, "PAPI:"), "%s", out);
    if (perf_event_disabled()) cr_assert(strstr(out, "hardware counters: UNAVAILABLE"), "%s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "CTXBENCH_KERNELS=portable %s info 2>&1", ctxbench_bin());
    out = run_capture(cmd, &st);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "kernel path:    portable"), "%s", out);
    cr_assert(strstr(out, "CTXBENCH_KERNELS=portable is set"), "%s", out);
    free(out);

    /* a path this CPU cannot run, or no path at all, is an error naming the variable (exit 1) */
    snprintf(cmd, sizeof cmd, "CTXBENCH_KERNELS=amx %s info 2>&1", ctxbench_bin());
    out = run_capture(cmd, &st);
    if (cb_kernels_best_path() < CB_PATH_AMX) {
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "amx on a CPU without it must exit 1: %d\n%s", st, out);
        cr_assert(strstr(out, "CTXBENCH_KERNELS=amx is not supported by this CPU"), "%s", out);
    } else {
        cr_assert_eq(st, 0, "%s", out);
        cr_assert(strstr(out, "kernel path:    amx"), "%s", out);
    }
    free(out);
    info_exits("CTXBENCH_KERNELS=avx9000", "", 1, "CTXBENCH_KERNELS='avx9000' is not a kernel path");
    /* the decode prefetch target: forced either way, and an unknown value is an error naming the variable */
    info_exits("CTXBENCH_PREFETCH=l1", "", 0,
               cb_kernels_best_path() >= CB_PATH_AVX512 ? "decode prefetch: flash-decode K/V into L1 (CTXBENCH_PREFETCH=l1" : "");
    info_exits("CTXBENCH_PREFETCH=l3", "", 1, "CTXBENCH_PREFETCH='l3' is not a prefetch target (expected l1|l2)");
    info_exits("CTXBENCH_GEMV_ORDER=diagonal", "", 1, "CTXBENCH_GEMV_ORDER='diagonal' is not a GEMV order (expected rows|blocks)");
    info_exits("", "--bogus", 2, ""); /* an unknown flag */
    snprintf(cmd, sizeof cmd, "%s info --help 2>&1", ctxbench_bin());
    out = run_capture(cmd, &st);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "usage: ctxbench info"), "%s", out);
    free(out);
}

Test(probes, second_running_set_reports_instead_of_failing) {
    const char *names[] = { "sde:::ctxbench::tokens" };
    cb_counter_set *a = cb_counters_open(names, 1), *b = cb_counters_open(names, 1);
    cr_assert(a && b);
    cb_counters_start(a);
    cb_counters_start(b);
    cb_ctr.tokens += 4;
    cb_counter_value va, vb;
    cb_counters_stop(b, &vb);
    cb_counters_stop(a, &va);
    cr_assert(va.ok, "%s", va.status);
    cr_assert_eq(va.value, 4);
    /* PAPI runs one set per component per thread: b says why it has no value, and a is unaffected */
    cr_assert_not(vb.ok);
    cr_assert(strstr(vb.status, "PAPI_start failed"), "%s", vb.status);
    /* once a has stopped, b counts normally */
    cb_counters_start(b);
    cb_ctr.tokens += 6;
    cb_counters_stop(b, &vb);
    cr_assert(vb.ok, "%s", vb.status);
    cr_assert_eq(vb.value, 6);
    cb_counters_close(a);
    cb_counters_close(b);
}

Test(probes, close_while_running_then_reopen) {
    const char *names[] = { "sde:::ctxbench::flops", "PAPI_TOT_INS" };
    cb_counter_set *s = cb_counters_open(names, 2);
    cr_assert_not_null(s);
    cb_counters_start(s);
    cb_counters_close(s); /* must stop the running set, or the next start would fail */
    s = cb_counters_open(names, 2);
    cb_counters_start(s);
    cb_ctr.flops += 9;
    cb_counters_stop(s, NULL); /* stops, reports nothing */
    cb_counters_start(s);
    cb_ctr.flops += 5;
    cb_counter_value v[2];
    cb_counters_stop(s, v);
    cr_assert(v[0].ok, "%s", v[0].status);
    cr_assert_eq(v[0].value, 5);
    cb_counters_close(s);
}
