/* What the harness measures besides time: the machine, PAPI counters (hardware presets where a PMU
 * exists; software-defined counters exported by the engines through libsde everywhere), and process
 * memory. Implemented in harness/measure/machine.c, harness/measure/papi_counters.c, harness/memprobe.c. */
#ifndef CB_PROBES_H
#define CB_PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- machine description, recorded with every run ---- */
typedef struct {
    char cpu_model[128];
    char cpu_flags[1024];     /* the relevant ones: avx512f avx512bw ... avx512_bf16 amx ... */
    int cores_online;         /* logical CPUs online */
    int threads_used;         /* OpenMP threads the run uses */
    char pinning[128];        /* OMP_PROC_BIND / OMP_PLACES / affinity mask as text */
    int64_t mem_total_bytes, mem_available_bytes;
    char kernel_path[32];     /* cb_kpath_name(cb_kernels_path()) */
    char compiler[128];       /* __VERSION__ */
    char cflags[256];         /* build flags (from the Makefile via -D) */
    char git_commit[64];      /* from the build, "-dirty" suffix if modified; "unknown" outside git */
    char papi_version[32];
    char papi_components[512];/* "perf_event:disabled(Error libpfm4 no default PMU found);sde:active;..." */
    char os[128];             /* uname -sr */
    char hostname[64];
    char date_utc[32];        /* ISO 8601 */
} cb_machine;

void cb_machine_collect(cb_machine *m, int threads_used);

/* ---- PAPI ---- */
/* Initialise PAPI once and register the engines' SDE counters (library "ctxbench", counters
 * flops, weight_bytes, kv_bytes_read, kv_bytes_written, state_bytes, tokens, ssd_ns, attention_ns: see
 * engines/counters.h). */
int cb_papi_init(char *why, size_t why_len);

typedef struct {
    char name[64];
    long long value;
    char status[128]; /* "ok", or why unavailable ("perf_event component disabled: no PMU", "not a preset on this CPU") */
    bool ok;
} cb_counter_value;

typedef struct cb_counter_set cb_counter_set;
/* Build an event set from names (PAPI presets like PAPI_TOT_CYC, native names, or "sde:::ctxbench::flops").
 * Events that cannot be added are kept with ok=false and the reason; never fails the run. */
cb_counter_set *cb_counters_open(const char *const *names, int n);
void cb_counters_start(cb_counter_set *s);
/* Stop and read: out has n entries in the order given to open. */
void cb_counters_stop(cb_counter_set *s, cb_counter_value *out);
void cb_counters_close(cb_counter_set *s);
/* Default hardware list (PAPI_TOT_CYC, PAPI_TOT_INS, PAPI_L3_TCM or closest, PAPI_FP_OPS/VEC) + all SDE counters. */
int cb_counters_default_names(const char **names, int max);

/* ---- memory ---- */
void cb_mem_reset_peak(void);          /* write 5 to /proc/self/clear_refs (VmHWM := VmRSS) */
const char *cb_mem_peak_note(void);    /* "" if the last reset worked, else why the peak is the process peak */
int64_t cb_mem_peak_rss_bytes(void);   /* VmHWM */
int64_t cb_mem_rss_bytes(void);        /* VmRSS */
int64_t cb_mem_available_bytes(void);  /* MemAvailable from /proc/meminfo */
void cb_mem_page_faults(int64_t *minor, int64_t *major); /* getrusage, cumulative */
/* "Key:   123 kB" from a /proc file (status, meminfo), in bytes; -1 if absent */
int64_t cb_proc_kb_bytes(const char *path, const char *key);

#endif
