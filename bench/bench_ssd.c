/* `ssd-gemm` section: the chunked SSD's GEMM step (cb_ssd_ops.gemm) at the shapes one head's chunk runs —
 * C·S, C·Bᵀ, the causal (L∘C·Bᵀ)·(dt·x) and Bᵀ·(dt·x) — and at smaller ones (partial chunks), on the portable,
 * AVX2 and AVX-512 GEMMs (those this CPU runs) and on the tiles with 6, 3 and 1 part products (docs/performance.md "Mamba2 SSD on the tiles"), to
 * place the crossover in m·n·k. 1 thread, operands hot (as in the SSD, one head at a time), GFLOP/s of the
 * fastest call at 2mnk (causal rows included: the kernels' own count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../engines/kernels/ssd_internal.h"
#include "bench.h"

typedef struct {
    int m, n, k;
    bool causal;
    const float *A, *B;
    float *C;
    int which; /* -2: portable; -1: avx2; 0: avx512; else the tiles with that many terms */
} job;

static void run(void *arg) {
    const job *j = arg;
    if (j->which == -2) cb_ssd_gemm_ref(j->m, j->n, j->k, j->A, j->k, j->B, j->n, j->C, j->n, j->causal, j->causal);
    else if (j->which == -1) cb_ssd_gemm_avx2(j->m, j->n, j->k, j->A, j->k, j->B, j->n, j->C, j->n, j->causal, j->causal);
    else if (j->which == 0) cb_ssd_gemm_avx512(j->m, j->n, j->k, j->A, j->k, j->B, j->n, j->C, j->n, j->causal, j->causal);
    else cb_ssd_gemm_amx(j->m, j->n, j->k, j->A, j->k, j->B, j->n, j->C, j->n, j->causal, j->causal, j->which);
}

static int run_ssd_gemm(int argc, char **argv) {
    double budget = 0.2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = atof(argv[++i]);
        else {
            printf("ctxbench-bench ssd-gemm [--budget SECONDS]   (per shape, all kernels; default 0.2)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    const cb_kpath best_path = cb_kernels_best_path();
    const bool amx = best_path == CB_PATH_AMX;
    if (!amx) printf("ssd-gemm: no amx path here (%s): %s\n", cb_cpu()->amx_why,
                     best_path >= CB_PATH_AVX512 ? "no tile columns" : best_path >= CB_PATH_AVX2 ? "portable and avx2 columns only" : "the portable column only");
    static const struct {
        const char *label;
        int m, n, k;
        bool causal;
    } shapes[] = {
        { "C·S", 256, 64, 128, false },      { "C·Bᵀ", 256, 256, 128, false }, { "G·X causal", 256, 64, 256, true },
        { "Bᵀ·X", 128, 64, 256, false },     { "C·S q=128", 128, 64, 128, false }, { "G·X q=128", 128, 64, 128, true },
        { "C·S q=64", 64, 64, 128, false },  { "G·X q=64", 64, 64, 64, true },   { "Bᵀ·X q=64", 128, 64, 64, false },
        { "C·S q=32", 32, 64, 128, false },  { "G·X q=32", 32, 64, 32, true },   { "Bᵀ·X q=32", 128, 64, 32, false },
        { "C·S q=16", 16, 64, 128, false },  { "G·X q=16", 16, 64, 16, true },   { "Bᵀ·X q=16", 128, 64, 16, false },
        { "16³", 16, 16, 16, false },        { "32³", 32, 32, 32, false },     { "tiny P=16 q=32", 32, 16, 32, false },
    };
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    float *A = malloc(sizeof(float) * 256 * 256), *B = malloc(sizeof(float) * 256 * 256), *C = malloc(sizeof(float) * 256 * 256);
    cb_rng r = { 7 };
    for (int i = 0; i < 256 * 256; i++) A[i] = cb_rng_uniform(&r), B[i] = cb_rng_uniform(&r), C[i] = 0;
    const unsigned csr = cb_subnormals_flush_begin();
    cb_kernels_set_path(cb_kernels_best_path());
    printf("SSD GEMM step, 1 thread, GFLOP/s at 2mnk (fastest call, kernels round-robin, %.2f s per shape; - : not on this CPU)\n"
           "%-16s %4s %4s %4s %8s %8s %8s | %8s %8s %8s | %7s %6s\n",
           budget, "shape", "m", "n", "k", "portable", "avx2", "avx512", "amx-6", "amx-3", "amx-1", "avx2/pt", "6/avx");
    enum { NK = 6 };
    const int which[NK] = { -2, -1, 0, 6, 3, 1 };
    bool on[NK];
    for (int w = 0; w < NK; w++) on[w] = which[w] == -2 || (which[w] == -1 && best_path >= CB_PATH_AVX2) || (which[w] == 0 && best_path >= CB_PATH_AVX512) || (which[w] > 0 && amx);
    int nk = 0;
    for (int w = 0; w < NK; w++) nk += on[w];
    const int rounds = 7;
    for (int s = 0; s < ns; s++) {
        double best[NK];
        for (int w = 0; w < NK; w++) best[w] = 1e30;
        /* the kernels round-robin, 7 rounds, the fastest call of each: the tile unit here switches between
         * two speeds within seconds (docs/performance.md "AMX on the 2-core AMX VM") */
        for (int r = 0; r < rounds; r++)
            for (int w = 0; w < NK; w++) {
                if (!on[w]) continue;
                job j = { shapes[s].m, shapes[s].n, shapes[s].k, shapes[s].causal, A, B, C, which[w] };
                run(&j);
                const double t_end = cb_bench_now() + budget / rounds / nk;
                do {
                    double t0 = cb_bench_now();
                    run(&j);
                    double t = cb_bench_now() - t0;
                    if (t < best[w]) best[w] = t;
                } while (cb_bench_now() < t_end);
            }
        double g[NK] = { 0 };
        char cell[NK][16];
        for (int w = 0; w < NK; w++) {
            if (on[w]) g[w] = 2.0 * shapes[s].m * shapes[s].n * shapes[s].k / best[w] * 1e-9;
            if (on[w]) snprintf(cell[w], sizeof cell[w], "%.1f", g[w]);
            else snprintf(cell[w], sizeof cell[w], "-");
        }
        printf("%-16s %4d %4d %4d %8s %8s %8s | %8s %8s %8s | %7.2f %6.2f\n", shapes[s].label, shapes[s].m, shapes[s].n,
               shapes[s].k, cell[0], cell[1], cell[2], cell[3], cell[4], cell[5], g[1] > 0 ? g[1] / g[0] : 0,
               g[3] > 0 ? g[3] / g[2] : 0);
        fflush(stdout);
    }
    cb_subnormals_flush_end(csr);
    free(A), free(B), free(C);
    return 0;
}

static const cb_bench_section ssd_gemm_section = {
    "ssd-gemm", "the chunked SSD's GEMM step: portable, avx2, avx512 and the tiles (6 / 3 / 1 part products), SSD shapes", run_ssd_gemm
};
CB_REGISTER_BENCH(ssd_gemm_section)
