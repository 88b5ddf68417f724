/* `ctxbench info`: what this machine is and what a run here can measure — CPU and flags, cores,
 * memory, the kernel path and why, the build, PAPI and each of its components (hardware counters
 * or not, and why), the software-defined counters, the registered engines. */
#include <omp.h>
#include <papi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/engine.h"
#include "../../engines/kernels/kernels.h"
#include "../../engines/kernels/kernels_avx2.h"
#include "../../engines/kernels/kernels_avx512.h"
#include "../measure/build_info.h"
#include "cli.h"
#include "cli_options.h"
#include "../measure/machine.h"
#include "../measure/memprobe.h"
#include "../measure/papi_counters.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench info [--help]\n\n"
               "Print the machine record every run stores (CPU, flags, cores, memory, kernel path, compiler,\n"
               "flags, commit), PAPI's version and components (active, or disabled and why), the counters a\n"
               "run can read here (hardware and software-defined), and the registered engines.\n");
}

static bool has_flag(const char *flags, const char *flag) {
    size_t n = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)) != NULL; p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return true;
    return false;
}

static void print_kernel_path(const cb_machine *m) {
    cb_kpath best = cb_kernels_best_path();
    const cb_cpu_features *f = cb_cpu();
    const char *env = getenv("CTXBENCH_KERNELS");
    printf("kernel path:    %s\n", m->kernel_path);
    static const char *const need[] = { "avx512f", "avx512bw", "avx512vl", "avx512dq", "fma", "f16c", "bmi2" };
    char missing[96] = "";
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!has_flag(m->cpu_flags, need[i])) {
            strncat(missing, " ", sizeof missing - strlen(missing) - 1);
            strncat(missing, need[i], sizeof missing - strlen(missing) - 1);
        }
    if (best == CB_PATH_PORTABLE)
        printf("  CPUID:        lacks%s and AVX2: only the portable C kernels can run (correct, slower)\n", missing);
    else if (best == CB_PATH_AVX2)
        printf("  CPUID:        lacks%s: AVX2 + FMA + F16C kernels (GEMV, GEMM, attention, 8-bit weights, SSD);\n"
               "                norms, SiLU, softmax and conv1d run their portable twins\n", missing);
    else if (best == CB_PATH_AVX512)
        printf("  CPUID:        avx512f/bw/vl/dq + fma + f16c + bmi2, no avx512_bf16: AVX-512 fp32 kernels; fast (bf16)\n"
               "                mode falls back to its portable twin\n");
    else
        printf("  CPUID:        avx512f/bw/vl/dq + fma + f16c + bmi2 + avx512_bf16: AVX-512 kernels, with vdpbf16ps\n"
               "                dot products in fast mode\n");
    printf("  AMX:          %s%s\n", f->amx_why,
           best == CB_PATH_AMX ? ": prefill GEMMs (bf16 weights, M >= the crossover) run on tiles" : "");
    if (env && *env)
        printf("  why:          CTXBENCH_KERNELS=%s is set (the best this CPU allows is %s)\n", env, cb_kpath_name(best));
    else
        printf("  why:          the best path CPUID allows (CTXBENCH_KERNELS unset)\n");
    printf("  note:         a CPU without AVX-512 runs the AVX2 kernels, one without AVX2 the portable ones;\n"
           "                CTXBENCH_KERNELS=portable|avx2|avx512|avx512bf16|amx forces a path this CPU supports\n"
           "                (any other value is an error)\n");
    if (cb_kernels_path() == CB_PATH_AVX2) {
        const char *pf_why;
        const bool pf_l2 = cb_kernels_prefetch_l2(&pf_why);
        double ns[2];
        const bool sub_test = cb_q8_avx2_fp8_subnormal_test(ns);
        printf("batch-1 GEMV:   each weight row start to end (the AVX-512 rows order, same numbers)\n"
               "decode prefetch: flash-decode K/V into %s (%s; CTXBENCH_PREFETCH=l1|l2; same numbers either way)\n"
               "8-bit decode:   int8 weights: fp32 loop in exact mode, vpmaddubsw integer sums in fast mode; fp8 by\n"
               "                bit placement + fp32 FMA; 8-bit KV through the fp32 flash loop (fp8 decode by bit\n"
               "                placement where subnormals are free, below; else through f16), except int8 KV in\n"
               "                fast mode: 16-bit Q and P, vpmaddwd integer sums\n"
               "fp8 subnormals: %s (probe: 2048 FMAs on a normal weight %.0f ns, on a subnormal %.0f ns;\n"
               "                same numbers either way)\n",
               pf_l2 ? "L2" : "L1", pf_why,
               sub_test ? "each 64 weight codes tested, subnormal blocks decoded through f16"
                        : "placed as fp32 subnormals untested (this core's FMAs take them at full rate)",
               ns[0], ns[1]);
    }
    if (cb_kernels_path() >= CB_PATH_AVX512) {
        const char *o = getenv("CTXBENCH_GEMV_ORDER");
        printf("batch-1 GEMV:   %s (%s; same numbers either way)\n",
               cb_matmul_avx512_gemv_rows(-1) ? "each weight row start to end" : "blocks of 4 rows interleaved",
               o && *o ? "CTXBENCH_GEMV_ORDER" : "default for this CPU vendor: rows on AMD, blocks elsewhere");
        const char *pf_why;
        const bool pf_l2 = cb_kernels_prefetch_l2(&pf_why);
        printf("decode prefetch: flash-decode K/V into %s (%s; CTXBENCH_PREFETCH=l1|l2; same numbers either way)\n",
               pf_l2 ? "L2" : "L1", pf_why);
        /* which loop the 8-bit decode takes (docs/quantization.md): VNNI or the slower fp32 loop */
        printf("8-bit decode:   %s\n",
               cb_kernels_vnni() ? "int8 weights and int8 KV on AVX512-VNNI vpdpbusd (exact mode: 24-bit fixed-point "
                                   "activations in 3 byte planes); fp8 by bit placement + fp32 FMA"
                                 : "no AVX512-VNNI: int8 weights and KV through the fp32 loop (slower), fp8 by bit "
                                   "placement + fp32 FMA");
    }
}

static int perf_event_paranoid(void) {
    FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
    int v = 99;
    if (f) {
        if (fscanf(f, "%d", &v) != 1) v = 99;
        fclose(f);
    }
    return v;
}

static void print_papi(const cb_machine *m) {
    char why[160];
    if (cb_papi_init(why, sizeof why) != 0) {
        printf("PAPI:           unavailable (%s): no counters will be recorded, runs still proceed\n", why);
        return;
    }
    printf("PAPI:           %s\n", m->papi_version);
    const PAPI_component_info_t *perf = NULL;
    int sde_cidx = -1;
    for (int i = 0; i < PAPI_num_components(); i++) {
        const PAPI_component_info_t *ci = PAPI_get_component_info(i);
        if (!ci) continue;
        if (ci->disabled) printf("  %-18s disabled: %s\n", ci->name, ci->disabled_reason);
        else if (ci->num_native_events > 0) printf("  %-18s active (%d native events)\n", ci->name, ci->num_native_events);
        else printf("  %-18s active\n", ci->name);
        if (!strcmp(ci->name, "perf_event")) perf = ci;
        if (!strcmp(ci->name, "sde")) sde_cidx = i;
    }
    if (!perf)
        printf("hardware counters: UNAVAILABLE: this PAPI has no perf_event component\n");
    else if (perf->disabled)
        printf("hardware counters: UNAVAILABLE here: PAPI's perf_event component is disabled (%s).\n"
               "  This machine exposes no hardware PMU to the kernel (typical of a VM; perf_event_paranoid=%d),\n"
               "  so cycles, instructions and cache misses cannot be read. Runs record each such event as\n"
               "  unavailable with this reason; the software-defined counters below still work.\n",
               perf->disabled_reason, perf_event_paranoid());
    else
        printf("hardware counters: available through perf_event (%d native events; perf_event_paranoid=%d)\n",
               perf->num_native_events, perf_event_paranoid());

    printf("software-defined counters (engines -> libsde -> PAPI sde component):\n");
    if (sde_cidx < 0) printf("  none: this PAPI has no sde component\n");
    else {
        int code = PAPI_NATIVE_MASK, n = 0;
        for (int r = PAPI_enum_cmp_event(&code, PAPI_ENUM_FIRST, sde_cidx); r == PAPI_OK;
             r = PAPI_enum_cmp_event(&code, PAPI_ENUM_EVENTS, sde_cidx)) {
            PAPI_event_info_t info;
            if (PAPI_get_event_info(code, &info) != PAPI_OK) continue;
            printf("  %-34s %s\n", info.symbol, info.long_descr);
            n++;
        }
        if (n == 0) printf("  none registered (sde component: %s)\n",
                           PAPI_get_component_info(sde_cidx)->disabled_reason);
    }

    const char *names[32];
    int n = cb_counters_default_names(names, 32);
    cb_counter_set *s = cb_counters_open(names, n);
    if (!s) return;
    cb_counter_value *v = calloc((size_t)n, sizeof *v);
    if (v) {
        cb_counters_start(s);
        cb_counters_stop(s, v);
        printf("default event list of a run, as it reads here:\n");
        for (int i = 0; i < n; i++) printf("  %-34s %s\n", v[i].name, v[i].ok ? "ok" : v[i].status);
    }
    free(v);
    cb_counters_close(s);
}

static int run_info(int argc, char **argv) {
    const cb_cli_opt opts[] = { CB_OPT_END };
    int first, st = cb_cli_parse("info", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first < argc) return cb_cli_unexpected_argument("info", argv[first]);
    cb_machine m;
    cb_machine_collect(&m, omp_get_max_threads());
    printf("cpu:            %s\n", m.cpu_model);
    printf("flags:          %s\n", m.cpu_flags[0] ? m.cpu_flags : "(none of the relevant ones)");
    printf("cores online:   %d (OpenMP threads by default: %d)\n", m.cores_online, m.threads_used);
    printf("pinning:        %s\n", m.pinning);
    printf("memory:         %.2f GiB total, %.2f GiB available\n", (double)m.mem_total_bytes / (1 << 30),
           (double)m.mem_available_bytes / (1 << 30));
    cb_mem_reset_peak();
    printf("peak RSS:       VmHWM, %s\n", cb_mem_peak_note()[0] ? cb_mem_peak_note() : "reset per point via /proc/self/clear_refs (works here)");
    print_kernel_path(&m);
    printf("compiler:       %s\n", m.compiler);
    printf("flags (build):  %s\n", m.cflags);
    printf("  *_avx512.c:   + %s (the avx512 gate; the vdpbf16ps and vpdpbusd functions\n"
           "                in them carry their own target attribute and run after their CPUID bit)\n", cb_build_avx512_flags);
    printf("commit:         %s\n", m.git_commit);
    printf("os:             %s\n", m.os);
    printf("host:           %s\n", m.hostname);
    printf("date (UTC):     %s\n", m.date_utc);
    print_papi(&m);
    printf("engines:        %d registered\n", cb_engine_count());
    for (int i = 0; i < cb_engine_count(); i++) {
        const cb_engine_ops *e = cb_engine_at(i);
        printf("  %-14s %s\n", e->name, e->description ? e->description : "");
    }
    return 0;
}

static const cb_command info_cmd = { "info", "the machine, kernel path, PAPI counters available, engines", run_info };
CB_REGISTER_COMMAND(info_cmd)
