/* `kernels` section: machine FMA peak and triad bandwidth measured in the same run, then the prefill GEMMs
 * (our cb_matmul on bf16 and f32 weights, fast-mode bf16, vs OpenBLAS cblas_sgemm) and the decode skinny
 * GEMMs (vs cblas_sgemv / sgemm) on the presets' shapes. Median of repetitions after warm-up. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engines/kernels/kernels.h"
#include "bench.h"

double cb_bench_fma_peak_1t, cb_bench_fma_peak_all, cb_bench_triad_1t, cb_bench_triad_all;

/* ---- peaks ---- */
static double fma_flops;
static void fma_1(void *a) { fma_flops = cb_bench_fma_loop_avx512(*(long *)a); }
static void fma_all(void *a) {
    double f = 0;
#pragma omp parallel reduction(+ : f)
    f += cb_bench_fma_loop_avx512(*(long *)a);
    fma_flops = f;
}

typedef struct {
    float *a, *b, *c;
    long n;
    int threads;
} triad_args;
static void triad(void *p) {
    triad_args *t = p;
    float *restrict a = t->a;
    const float *restrict b = t->b, *restrict c = t->c;
#pragma omp parallel for schedule(static) num_threads(t->threads)
    for (long i = 0; i < t->n; i++) a[i] = b[i] + 3.0f * c[i];
}

static void measure_peaks(void) {
    long iters = 50000000;
    double t = cb_bench_median(fma_1, &iters, 5, 9, 0.5);
    cb_bench_fma_peak_1t = fma_flops / t * 1e-9;
    t = cb_bench_median(fma_all, &iters, 5, 9, 0.5);
    cb_bench_fma_peak_all = fma_flops / t * 1e-9;
    triad_args ta = { .n = 32L << 20 };
    ta.a = malloc((size_t)ta.n * 4);
    ta.b = malloc((size_t)ta.n * 4);
    ta.c = malloc((size_t)ta.n * 4);
    for (long i = 0; i < ta.n; i++) ta.a[i] = 0, ta.b[i] = 1, ta.c[i] = 2;
    ta.threads = 1;
    cb_bench_triad_1t = 12.0 * (double)ta.n / cb_bench_median(triad, &ta, 5, 11, 0.5) * 1e-9;
    ta.threads = omp_get_max_threads();
    cb_bench_triad_all = 12.0 * (double)ta.n / cb_bench_median(triad, &ta, 5, 11, 0.5) * 1e-9;
    free(ta.a), free(ta.b), free(ta.c);
}

/* ---- GEMMs ---- */
typedef struct {
    const char *label;
    int N, K;
} shape;

static const shape PREFILL[] = {
    { "xs q/o     ", 512, 512 },    { "xs k/v     ", 128, 512 },    { "xs gate/up ", 1792, 512 },
    { "xs down    ", 512, 1792 },   { "xs lm_head ", 32000, 512 }, { "s q/o      ", 1024, 1024 },
    { "s k/v      ", 256, 1024 },   { "s gate/up  ", 3584, 1024 },  { "s down     ", 1024, 3584 },
    { "9b in_proj ", 16768, 4096 }, { "9b gate/up ", 14336, 4096 }, { "9b down    ", 4096, 14336 },
};
static const shape DECODE[] = {
    { "s lm_head  ", 32000, 1024 }, { "9b in_proj ", 16768, 4096 }, { "9b down    ", 4096, 14336 } };

enum { RUN_OURS, RUN_FAST, RUN_SGEMM };
typedef struct {
    int which, M;
    const float *X;
    const cb_weight *W;
    const float *Wf;
    float *Y;
} gemm_args;

static void gemm_run(void *p) {
    gemm_args *g = p;
    int N = (int)g->W->rows, K = (int)g->W->cols;
    switch (g->which) {
    case RUN_OURS: cb_matmul(g->M, g->X, K, g->W, g->Y, N, false); break;
    case RUN_FAST: cb_matmul_bf16(g->M, g->X, K, g->W, g->Y, N, false); break;
    default:
        if (g->M == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, g->Wf, K, g->X, 1, 0.0f, g->Y, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->M, N, K, 1.0f, g->X, K, g->Wf, K, 0.0f, g->Y, N);
    }
}

static double time_gemm(int which, int M, const float *X, const cb_weight *W, const float *Wf, float *Y) {
    gemm_args g = { which, M, X, W, Wf, Y };
    return cb_bench_median(gemm_run, &g, 3, 21, 0.6);
}

typedef struct {
    float *wf;
    uint16_t *wb;
    cb_weight f32, bf16;
} weights;

static weights make_weights(int N, int K) {
    weights w;
    size_t n = (size_t)N * K;
    w.wf = malloc(n * 4);
    w.wb = malloc(n * 2);
    cb_rng r = { 42 };
    for (size_t i = 0; i < n; i++) {
        w.wf[i] = (float)((int)(cb_rng_next(&r) >> 54) - 512) * (1.0f / 4096.0f);
        w.wb[i] = cb_f32_to_bf16(w.wf[i]);
    }
    w.f32 = (cb_weight){ .data = w.wf, .dtype = CB_F32, .rows = N, .cols = K };
    w.bf16 = (cb_weight){ .data = w.wb, .dtype = CB_BF16, .rows = N, .cols = K };
    return w;
}

static float *make_x(int M, int K) {
    float *x = malloc((size_t)M * K * 4);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = (float)((int)(i * 2654435761u % 1000) - 500) * 1e-3f;
    return x;
}

static void prefill_table(int M, bool quick) {
    printf("\nPrefill GEMM, M = %d tokens, Y = X·Wᵀ, GFLOP/s (2·M·N·K / median time); ratio = ours / OpenBLAS sgemm;\n"
           "%%pk = share of the measured all-thread FMA peak (%.0f GFLOP/s)\n",
           M, cb_bench_fma_peak_all);
    printf("%-11s %6s %6s | %8s | %8s %5s %4s | %8s %5s | %9s %5s\n", "shape", "N", "K", "sgemm", "ours-f32", "ratio",
           "%pk", "ours-bf16", "ratio", "fast-bf16", "ratio");
    for (size_t s = 0; s < sizeof PREFILL / sizeof PREFILL[0]; s++) {
        const shape *sh = &PREFILL[s];
        if (quick && sh->K >= 4096) continue;
        weights w = make_weights(sh->N, sh->K);
        float *X = make_x(M, sh->K), *Y = malloc((size_t)M * sh->N * 4);
        double fl = 2.0 * M * sh->N * (double)sh->K * 1e-9;
        double tb = time_gemm(RUN_SGEMM, M, X, &w.f32, w.wf, Y);
        double tf = time_gemm(RUN_OURS, M, X, &w.f32, w.wf, Y);
        double tbf = time_gemm(RUN_OURS, M, X, &w.bf16, w.wf, Y);
        double tfast = time_gemm(RUN_FAST, M, X, &w.bf16, w.wf, Y);
        printf("%-11s %6d %6d | %8.1f | %8.1f %5.2f %3.0f%% | %8.1f %5.2f | %9.1f %5.2f\n", sh->label, sh->N, sh->K,
               fl / tb, fl / tf, tb / tf, 100.0 * fl / tf / cb_bench_fma_peak_all, fl / tbf, tb / tbf, fl / tfast,
               tb / tfast);
        fflush(stdout);
        free(X), free(Y), free(w.wf), free(w.wb);
    }
}

static void decode_table(bool quick) {
    printf("\nDecode (skinny) GEMM, GB/s = weight bytes / median time (bf16: 2 B/weight, f32: 4 B/weight);\n"
           "%%st = share of the measured all-thread triad bandwidth (%.1f GB/s). OpenBLAS: sgemv at M=1, sgemm "
           "otherwise (f32 weights)\n",
           cb_bench_triad_all);
    printf("%-11s %6s %6s %3s | %8s %4s | %8s %4s | %8s %4s | %9s\n", "shape", "N", "K", "M", "blas-f32", "%st",
           "ours-f32", "%st", "ours-bf16", "%st", "fast-bf16");
    const int Ms[] = { 1, 4, 16 };
    for (size_t s = 0; s < sizeof DECODE / sizeof DECODE[0]; s++) {
        const shape *sh = &DECODE[s];
        if (quick && s > 0) continue;
        weights w = make_weights(sh->N, sh->K);
        for (size_t mi = 0; mi < 3; mi++) {
            int M = Ms[mi];
            float *X = make_x(M, sh->K), *Y = malloc((size_t)M * sh->N * 4);
            double b4 = 4.0 * sh->N * (double)sh->K * 1e-9, b2 = b4 / 2;
            double tb = time_gemm(RUN_SGEMM, M, X, &w.f32, w.wf, Y);
            double tf = time_gemm(RUN_OURS, M, X, &w.f32, w.wf, Y);
            double tbf = time_gemm(RUN_OURS, M, X, &w.bf16, w.wf, Y);
            double tfast = time_gemm(RUN_FAST, M, X, &w.bf16, w.wf, Y);
            double st = cb_bench_triad_all;
            printf("%-11s %6d %6d %3d | %8.1f %3.0f%% | %8.1f %3.0f%% | %9.1f %3.0f%% | %9.1f\n", sh->label, sh->N, sh->K,
                   M, b4 / tb, 100 * b4 / tb / st, b4 / tf, 100 * b4 / tf / st, b2 / tbf, 100 * b2 / tbf / st,
                   b2 / tfast);
            fflush(stdout);
            free(X), free(Y);
        }
        free(w.wf), free(w.wb);
    }
}

static int run_kernels(int argc, char **argv) {
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--help")) {
            printf("ctxbench-bench kernels [--quick]   (--quick: skip the 9B shapes)\n");
            return 0;
        } else {
            fprintf(stderr, "ctxbench-bench kernels: unknown flag '%s'\n", argv[i]);
            return 2;
        }
    }
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("ctxbench kernels benchmark — %s — kernel path %s, %d OpenMP threads, OpenBLAS %s (OPENBLAS_CORETYPE=%s)\n",
           date, cb_kpath_name(cb_kernels_path()), omp_get_max_threads(), openblas_get_config(), ct ? ct : "unset");
    measure_peaks();
    printf("FMA peak (register-resident fp32 FMA loop): %.1f GFLOP/s 1 thread, %.1f GFLOP/s %d threads\n",
           cb_bench_fma_peak_1t, cb_bench_fma_peak_all, omp_get_max_threads());
    printf("Stream triad (a = b + s·c, 3 × 128 MiB): %.1f GB/s 1 thread, %.1f GB/s %d threads\n", cb_bench_triad_1t,
           cb_bench_triad_all, omp_get_max_threads());
    fflush(stdout);
    prefill_table(512, quick);
    decode_table(quick);
    return 0;
}

static const cb_bench_section kernels_section = { "kernels", "FMA peak, triad, GEMMs vs OpenBLAS [--quick]",
                                                   run_kernels };
CB_REGISTER_BENCH(kernels_section)
