/* ctxbench-bench: sections registered by each bench/ source file; `ctxbench-bench [SECTION...]` runs them
 * (default: kernels), `ctxbench-bench --list` lists them. */
#ifndef CB_BENCH_H
#define CB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv); /* 0 on success */
} cb_bench_section;

void cb_bench_register(const cb_bench_section *s);
#define CB_REGISTER_BENCH(sec) \
    __attribute__((constructor)) static void cb_bench_register_##sec(void) { cb_bench_register(&sec); }

/* Timing helpers. */
double cb_bench_now(void); /* monotonic seconds */
/* Median seconds of fn(arg) over repetitions after one warm-up: at least min_reps, more until min_time
 * seconds have been spent (max max_reps). */
double cb_bench_median(void (*fn)(void *), void *arg, int min_reps, int max_reps, double min_time);
/* The median of n values (sorts t in place). */
double cb_bench_median_of(double *t, int n);

/* The prefill GEMM shapes every GEMM section times (Y[M, N] = X[M, K] · Wᵀ of the xs, s and 9b presets). */
typedef struct {
    const char *label;
    int N, K;
} cb_bench_gemm_shape;
extern const cb_bench_gemm_shape CB_BENCH_PREFILL_SHAPES[];
extern const int CB_BENCH_N_PREFILL_SHAPES;

/* Operands every GEMM section times alike: n random bf16 weights (multiples of 1/4096 in [-1/8, 1/8), seed
 * 42) and their exact fp32 widening, both malloc'd; M·K activations in [-0.5, 0.5). */
void cb_bench_weights(size_t n, uint16_t **bf16, float **f32);
float *cb_bench_activations(int M, int K);

/* The tile-resident AMX peak loop of the roofs (TDPBSSD if int8, else TDPBF16PS) on `threads` threads, best
 * of 5 repetitions after a warm-up, in GFLOP/s (GOP/s for int8). Only on the amx path (bench_tiles.c). */
double cb_bench_tile_peak(bool int8, int threads);
/* One short sample of that loop on `threads` threads (GFLOP/s, GOP/s for int8): a round-robin entry. */
double cb_bench_tile_peak_sample(bool int8, int threads);
/* Round-robin medians of nv variants (the VMs' tile throughput moves 2× within minutes, docs/performance.md
 * "on the 2-core AMX VM", so variants and the peak are sampled side by side): run(ctx, v) once for each v with
 * use[v] as a warm-up, then rounds of all of them plus one tile-peak sample (int8: TDPBSSD) on the current
 * thread count — at least 3 rounds, more until `budget` seconds, at most 15. out[v]: median seconds (0 when
 * unused); *peak: the median sample. Only on the amx path (bench_tiles.c). */
void cb_bench_round_robin(int nv, void (*run)(void *ctx, int v), void *ctx, const bool *use, double budget, bool int8,
                          double *out, double *peak);

/* Machine peaks measured by the kernels section (0 until measured); engine sections can reuse them. */
extern double cb_bench_fma_peak_1t, cb_bench_fma_peak_all, cb_bench_triad_1t, cb_bench_triad_all;

#endif
