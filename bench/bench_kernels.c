/* `kernels` section: machine FMA peak and triad bandwidth measured in the same run, then the prefill GEMMs
 * (our cb_matmul on bf16 and f32 weights, fast-mode bf16, vs OpenBLAS cblas_sgemm) and the decode skinny
 * GEMMs (vs cblas_sgemv / sgemm) on the presets' shapes. The peaks are the harness's roofs (harness/measure/roofs.h,
 * best of repetitions). The variants of a shape are timed round-robin (medians of ≥ 5 rounds after a
 * warm-up), so that a noisy neighbour slows all of them alike. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engines/kernels/kernels.h"
#include "../harness/measure/roofs.h"
#include "bench.h"

double cb_bench_fma_peak_1t, cb_bench_fma_peak_all, cb_bench_triad_1t, cb_bench_triad_all;

/* ---- peaks: the harness's roof measurement (harness/measure/roofs.c), given more time ---- */
static void measure_peaks(void) {
    cb_roofs r;
    cb_err err = { "" };
    if (cb_roofs_measure(omp_get_max_threads(), 4.0, &r, &err)) {
        fprintf(stderr, "ctxbench-bench: %s\n", err.msg);
        return;
    }
    cb_bench_fma_peak_1t = r.fma_gflops_1t, cb_bench_fma_peak_all = r.fma_gflops;
    cb_bench_triad_1t = r.triad_gbps_1t, cb_bench_triad_all = r.triad_gbps;
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

typedef struct {
    float *wf;
    uint16_t *wb;
    cb_weight f32, bf16;
} weights;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The four variants (OpenBLAS, ours f32, ours bf16, fast bf16) timed round-robin, one call each per round, so
 * that load from other processes on this shared machine hits all of them alike; medians per variant.
 * At least 5 rounds, more until 2.5 s are spent (max 31). */
static void time_variants(int M, const float *X, const weights *w, float *Y, double out[4]) {
    gemm_args g[4] = { { RUN_SGEMM, M, X, &w->f32, w->wf, Y }, { RUN_OURS, M, X, &w->f32, w->wf, Y },
                       { RUN_OURS, M, X, &w->bf16, w->wf, Y }, { RUN_FAST, M, X, &w->bf16, w->wf, Y } };
    double t[4][31];
    for (int v = 0; v < 4; v++) gemm_run(&g[v]); /* warm-up */
    int n = 0;
    double start = cb_bench_now();
    while (n < 31 && (n < 5 || cb_bench_now() - start < 2.5)) {
        for (int v = 0; v < 4; v++) {
            double t0 = cb_bench_now();
            gemm_run(&g[v]);
            t[v][n] = cb_bench_now() - t0;
        }
        n++;
    }
    for (int v = 0; v < 4; v++) {
        qsort(t[v], (size_t)n, sizeof(double), cmp_d);
        out[v] = n % 2 ? t[v][n / 2] : 0.5 * (t[v][n / 2 - 1] + t[v][n / 2]);
    }
}

static weights make_weights(int N, int K) {
    weights w;
    cb_bench_weights((size_t)N * K, &w.wb, &w.wf);
    w.f32 = (cb_weight){ .data = w.wf, .dtype = CB_F32, .rows = N, .cols = K };
    w.bf16 = (cb_weight){ .data = w.wb, .dtype = CB_BF16, .rows = N, .cols = K };
    return w;
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
        float *X = cb_bench_activations(M, sh->K), *Y = malloc((size_t)M * sh->N * 4);
        double fl = 2.0 * M * sh->N * (double)sh->K * 1e-9;
        double tv[4];
        time_variants(M, X, &w, Y, tv);
        double tb = tv[0], tf = tv[1], tbf = tv[2], tfast = tv[3];
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
            float *X = cb_bench_activations(M, sh->K), *Y = malloc((size_t)M * sh->N * 4);
            double b4 = 4.0 * sh->N * (double)sh->K * 1e-9, b2 = b4 / 2;
            double tv[4];
            time_variants(M, X, &w, Y, tv);
            double tb = tv[0], tf = tv[1], tbf = tv[2], tfast = tv[3];
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
