/* The machine a run measures on, recorded with every run (the runs row, docs/schema.md). */
#ifndef CB_MACHINE_H
#define CB_MACHINE_H

#include <stdint.h>

typedef struct {
    char cpu_model[128];
    char cpu_flags[1024];     /* the relevant ones: avx512f avx512bw ... avx512_bf16 amx ... */
    int cores_online;         /* logical CPUs online */
    int threads_used;         /* OpenMP threads the run uses */
    char pinning[128];        /* OMP_PROC_BIND / OMP_PLACES / affinity mask as text */
    int64_t mem_total_bytes, mem_available_bytes;
    char kernel_path[32];     /* cb_kpath_name(cb_kernels_path()) */
    char decode_prefetch[8];  /* "l1" / "l2": cb_kernels_prefetch_l2(); "" on the portable path (no prefetches) */
    char gemv_order[8];       /* "rows" / "blocks": the batch-1 GEMV order (avx2: always rows); "" on the portable path */
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

#endif
