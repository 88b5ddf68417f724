/* The machine record stored with every run: CPU, memory, threads and pinning, kernel path, build
 * identity, PAPI and its components, OS, host and date. Everything is read, nothing is assumed. */
#include <papi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../../engines/kernels/kernels.h"
#include "../../engines/kernels/kernels_avx512.h"
#include "build_info.h"
#include "machine.h"
#include "memprobe.h"
#include "papi_counters.h"

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

/* The value after "key\t*: " of the first matching line of /proc/cpuinfo, or "" */
static void cpuinfo_field(const char *key, char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char *line = NULL;
    size_t n = 0, klen = strlen(key);
    while (getline(&line, &n, f) > 0) {
        if (strncmp(line, key, klen) != 0) continue;
        const char *p = strchr(line, ':');
        if (!p) continue;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        copy_str(out, cap, p);
        out[strcspn(out, "\n")] = 0;
        break;
    }
    free(line);
    fclose(f);
}

/* The flags that decide which kernels can run and what peak is reachable. */
static bool relevant_flag(const char *flag) {
    static const char *const keep[] = { "avx2",        "fma",         "f16c",         "avx512f",      "avx512bw",
                                        "avx512vl",    "avx512dq",    "avx512cd",     "avx512_bf16",  "avx512_vnni",
                                        "avx512ifma",  "avx512vbmi",  "avx512_vbmi2", "avx512_fp16",  "avx_vnni",
                                        "avx_vnni_int8", "avx512_vp2intersect", "bmi2" };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (!strcmp(flag, keep[i])) return true;
    return !strncmp(flag, "amx", 3);
}

static void collect_flags(char *out, size_t cap) {
    char *all = malloc(16384);
    out[0] = 0;
    if (!all) return;
    cpuinfo_field("flags", all, 16384);
    size_t used = 0;
    char *save = NULL;
    for (char *tok = strtok_r(all, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (!relevant_flag(tok)) continue;
        int w = snprintf(out + used, cap - used, "%s%s", used ? " " : "", tok);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
    free(all);
}

/* The CPU set as ranges: "0-1", "0,2,4-7" */
static void affinity_text(char *out, size_t cap) {
    cpu_set_t set;
    out[0] = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        copy_str(out, cap, "?");
        return;
    }
    size_t used = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        int e = c;
        while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) e++;
        int w = e > c ? snprintf(out + used, cap - used, "%s%d-%d", used ? "," : "", c, e)
                      : snprintf(out + used, cap - used, "%s%d", used ? "," : "", c);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
        c = e;
    }
}

static void papi_description(cb_machine *m) {
    char why[160];
    if (cb_papi_init(why, sizeof why) != 0) {
        copy_str(m->papi_version, sizeof m->papi_version, "unavailable");
        snprintf(m->papi_components, sizeof m->papi_components, "PAPI init failed: %s", why);
        return;
    }
    int v = PAPI_get_opt(PAPI_LIB_VERSION, NULL);
    snprintf(m->papi_version, sizeof m->papi_version, "%d.%d.%d.%d", PAPI_VERSION_MAJOR(v), PAPI_VERSION_MINOR(v),
             PAPI_VERSION_REVISION(v), PAPI_VERSION_INCREMENT(v));
    size_t used = 0, cap = sizeof m->papi_components;
    m->papi_components[0] = 0;
    for (int i = 0; i < PAPI_num_components(); i++) {
        const PAPI_component_info_t *ci = PAPI_get_component_info(i);
        if (!ci) continue;
        int w = ci->disabled ? snprintf(m->papi_components + used, cap - used, "%s%s:disabled(%s)", used ? ";" : "",
                                        ci->name, ci->disabled_reason)
                             : snprintf(m->papi_components + used, cap - used, "%s%s:active", used ? ";" : "", ci->name);
        if (w < 0 || (size_t)w >= cap - used) { /* truncated: keep what fits, mark it */
            if (cap > 4) memcpy(m->papi_components + cap - 4, "...", 4);
            break;
        }
        used += (size_t)w;
    }
}

void cb_machine_collect(cb_machine *m, int threads_used) {
    memset(m, 0, sizeof *m);
    cpuinfo_field("model name", m->cpu_model, sizeof m->cpu_model);
    if (!m->cpu_model[0]) copy_str(m->cpu_model, sizeof m->cpu_model, "unknown");
    collect_flags(m->cpu_flags, sizeof m->cpu_flags);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    m->cores_online = online > 0 ? (int)online : 0;
    m->threads_used = threads_used;

    char mask[64];
    affinity_text(mask, sizeof mask);
    const char *bind = getenv("OMP_PROC_BIND"), *places = getenv("OMP_PLACES");
    snprintf(m->pinning, sizeof m->pinning, "OMP_PROC_BIND=%s OMP_PLACES=%s affinity=%s", bind && *bind ? bind : "unset",
             places && *places ? places : "unset", mask);

    m->mem_total_bytes = cb_proc_kb_bytes("/proc/meminfo", "MemTotal");
    m->mem_available_bytes = cb_proc_kb_bytes("/proc/meminfo", "MemAvailable");
    copy_str(m->kernel_path, sizeof m->kernel_path, cb_kpath_name(cb_kernels_path()));
    if (cb_kernels_path() >= CB_PATH_AVX2) {
        copy_str(m->decode_prefetch, sizeof m->decode_prefetch, cb_kernels_prefetch_l2(NULL) ? "l2" : "l1");
        /* the AVX2 GEMV always reads rows start to end */
        const bool rows = cb_kernels_path() == CB_PATH_AVX2 || cb_matmul_avx512_gemv_rows(-1);
        copy_str(m->gemv_order, sizeof m->gemv_order, rows ? "rows" : "blocks");
    }
    copy_str(m->compiler, sizeof m->compiler, cb_build_compiler);
    copy_str(m->cflags, sizeof m->cflags, cb_build_cflags);
    copy_str(m->git_commit, sizeof m->git_commit, cb_build_commit[0] ? cb_build_commit : "unknown");
    papi_description(m);

    struct utsname u;
    if (uname(&u) == 0) {
        copy_str(m->os, sizeof m->os, u.sysname);
        size_t len = strlen(m->os);
        if (len + 1 < sizeof m->os) {
            m->os[len] = ' ';
            copy_str(m->os + len + 1, sizeof m->os - len - 1, u.release);
        }
    } else {
        copy_str(m->os, sizeof m->os, "unknown");
    }
    if (gethostname(m->hostname, sizeof m->hostname) != 0) copy_str(m->hostname, sizeof m->hostname, "unknown");
    m->hostname[sizeof m->hostname - 1] = 0;

    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(m->date_utc, sizeof m->date_utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
