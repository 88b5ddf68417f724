/* `amx` section: the AMX-BF16 tile peak, then prefill GEMMs (M = 512) on the presets' shapes — our AMX
 * kernels on the weights' tile copy, as engines hold them (fast: one bf16 product; exact: the 3-part split)
 * against oneDNN's bf16 matmul (AMX inside; weights reordered once into its preferred layout, outside the
 * timing), exact mode packing the weights per call, exact mode with a 2-part split
 * (CTXBENCH_AMX_SPLIT=2), our AVX-512 exact kernel and OpenBLAS
 * sgemm — on each requested thread count, variants timed round-robin (medians); then the crossover in M
 * between the AVX-512 and the AMX kernels. Refused (exit 1) where the amx path cannot run. */
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../engines/kernels/kernels_amx.h"
#include "../engines/kernels/kernels_avx512.h"
#include "../engines/kernels/tiles.h"
#include "../harness/measure/roofs.h"
#include "bench.h"
#include "onednn_matmul.h"



double cb_bench_tile_peak(bool int8, int threads) {
    double best = 0;
    for (int r = 0; r < 6; r++) {
        double f = 0, t0 = cb_bench_now();
#pragma omp parallel num_threads(threads) reduction(+ : f)
        {
            float s;
            int32_t si;
            f += int8 ? cb_roofs_amx_int8(1000000, &si) : cb_roofs_amx_bf16(1000000, &s);
        }
        double dt = cb_bench_now() - t0;
        if (r > 0 && f / dt > best) best = f / dt;
    }
    return best * 1e-9;
}

enum { V_DNNL, V_FAST, V_EXACT, V_EXACT_PC, V_EXACT2, V_AVX512, V_SGEMM, NV, V_AVX512_FAST = NV };
static const char *const VNAME[NV] = { "onednn-bf16", "amx-fast", "amx-exact", "per-call", "split2", "avx512-exact",
                                       "sgemm-f32" };

typedef struct {
    int which, M;
    const float *X, *Wf;
    const cb_weight *W, *Wt; /* Wt: with the tile copy */
    float *Y;
    cb_onednn_matmul *dn;
} run_args;

static void run_one(void *p) {
    run_args *a = p;
    const int N = (int)a->W->rows, K = (int)a->W->cols;
    switch (a->which) {
    case V_DNNL: cb_onednn_matmul_run(a->dn); break;
    case V_FAST: cb_matmul_bf16_amx(a->M, a->X, K, a->Wt, a->Y, N, false); break;
    case V_EXACT: cb_matmul_amx(a->M, a->X, K, a->Wt, a->Y, N, false); break;
    case V_EXACT_PC: cb_matmul_amx(a->M, a->X, K, a->W, a->Y, N, false); break;
    case V_EXACT2:
        cb_matmul_amx_split(2);
        cb_matmul_amx(a->M, a->X, K, a->Wt, a->Y, N, false);
        cb_matmul_amx_split(3);
        break;
    case V_AVX512: cb_matmul_avx512(a->M, a->X, K, a->W, a->Y, N, false); break;
    case V_AVX512_FAST: cb_matmul_bf16_avx512(a->M, a->X, K, a->W, a->Y, N, false, true); break;
    default: cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a->M, N, K, 1.0f, a->X, K, a->Wf, K, 0.0f, a->Y, N);
    }
}


double cb_bench_tile_peak_sample(bool int8, int threads) {
    double f = 0, t0 = cb_bench_now();
#pragma omp parallel num_threads(threads) reduction(+ : f)
    {
        float s;
        int32_t si;
        f += int8 ? cb_roofs_amx_int8(20000, &si) : cb_roofs_amx_bf16(20000, &s);
    }
    return f / (cb_bench_now() - t0) * 1e-9;
}

void cb_bench_round_robin(int nv, void (*run)(void *ctx, int v), void *ctx, const bool *use, double budget, bool int8,
                          double *out, double *peak) {
    enum { MAX_ROUNDS = 15 };
    double t[nv][MAX_ROUNDS], pk[MAX_ROUNDS];
    for (int v = 0; v < nv; v++)
        if (use[v]) run(ctx, v);
    int n = 0;
    const double start = cb_bench_now();
    while (n < MAX_ROUNDS && (n < 3 || cb_bench_now() - start < budget)) {
        for (int v = 0; v < nv; v++) {
            if (!use[v]) continue;
            double t0 = cb_bench_now();
            run(ctx, v);
            t[v][n] = cb_bench_now() - t0;
        }
        pk[n] = cb_bench_tile_peak_sample(int8, omp_get_max_threads());
        n++;
    }
    *peak = cb_bench_median_of(pk, n);
    for (int v = 0; v < nv; v++) out[v] = use[v] ? cb_bench_median_of(t[v], n) : 0;
}

static void run_variant(void *ctx, int v) { run_one((run_args *)ctx + v); }

/* What bounds a GEMM on the tiles, 1 thread, the four loops interleaved (best of 7 each): the peak loop on
 * non-zero and on zero operands, and the peak loop with the tile loads of the GEMM's 2 × 2 block (4 per 4
 * products) or of B alone (2 per 4), all from L1. */
static void tile_ceilings(void) {
    static const char *const name[4] = { "non-zero operands (the peak above)", "zero operands",
                                         "+ 4 tile loads per 4 products from L1 (the GEMM's 2 x 2 block)",
                                         "+ 2 tile loads per 4 products from L1" };
    double best[4] = { 0 };
    for (int r = 0; r < 7; r++)
        for (int k = 0; k < 4; k++) {
            float s;
            double t0 = cb_bench_now();
            double f = k == 0 ? cb_roofs_amx_bf16(100000, &s) : cb_roofs_amx_bf16_variant(k - 1, 100000, &s);
            double g = f / (cb_bench_now() - t0) * 1e-9;
            if (g > best[k]) best[k] = g;
        }
    printf("Tile loop, 1 thread, GFLOP/s (best of 7, interleaved):\n");
    for (int k = 0; k < 4; k++) printf("  %-64s %6.0f  (%3.0f%% of non-zero)\n", name[k], best[k], 100 * best[k] / best[0]);
}

typedef struct {
    float *wf, *X, *Y;
    uint16_t *wb;
    uint32_t *tiles;
    cb_weight w, wt;
} operands;

static operands make_operands(int M, int N, int K) {
    operands o;
    cb_bench_weights((size_t)N * K, &o.wb, &o.wf);
    o.w = (cb_weight){ .data = o.wb, .dtype = CB_BF16, .rows = N, .cols = K };
    o.tiles = aligned_alloc(64, cb_tiles_bytes(N, K));
    cb_tiles_pack(&o.w, o.tiles);
    o.wt = o.w;
    o.wt.tiles = o.tiles;
    o.X = cb_bench_activations(M, K);
    o.Y = malloc((size_t)M * N * 4);
    return o;
}
static void free_operands(operands *o) { free(o->wf), free(o->wb), free(o->X), free(o->Y), free(o->tiles); }

static bool ours_only; /* --ours-only: time only the AMX kernels on the tile copy (tuning runs) */

static void gemm_table(int M, int threads, bool quick) {
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads); /* OpenBLAS's own pool ignores OpenMP's count */
    double peak = cb_bench_tile_peak(false, threads);
    printf("\nPrefill GEMM M = %d, %d thread%s: GFLOP/s (2·M·N·K / median); x = / oneDNN bf16; %%pk = of the AMX-BF16\n"
           "tile-loop peak on %d thread%s sampled in the same rounds (pk: its median; best of 5 before the table: %.0f)\n",
           M, threads, threads > 1 ? "s" : "", threads, threads > 1 ? "s" : "", peak);
    printf("%-11s %6s %6s | %5s | %11s | %8s %5s %4s | %9s %5s %4s | %8s %5s | %6s %5s | %12s | %9s\n", "shape", "N",
           "K", "pk", VNAME[0], VNAME[1], "x", "%pk", VNAME[2], "x", "%pk", VNAME[3], "x", VNAME[4], "x", VNAME[5],
           VNAME[6]);
    for (size_t s = 0; s < (size_t)CB_BENCH_N_PREFILL_SHAPES; s++) {
        const cb_bench_gemm_shape *sh = &CB_BENCH_PREFILL_SHAPES[s];
        if (quick && sh->K >= 4096) continue;
        operands o = make_operands(M, sh->N, sh->K);
        cb_onednn_matmul dn;
        uint16_t *xb = malloc((size_t)M * sh->K * 2); /* oneDNN's bf16 source */
        for (size_t i = 0; i < (size_t)M * sh->K; i++) xb[i] = cb_f32_to_bf16(o.X[i]);
        bool use[NV] = { !ours_only, true, true, !ours_only, !ours_only, !ours_only, !ours_only };
        if (!ours_only && cb_onednn_matmul_make(&dn, "amx", M, sh->N, sh->K, dnnl_bf16, dnnl_bf16, dnnl_f32, o.wb, xb, o.Y)) use[V_DNNL] = false;
        if (sh->K >= 4096 && threads == 1) use[V_SGEMM] = false; /* fp32 baselines: seconds per call */
        run_args a[NV];
        for (int v = 0; v < NV; v++) a[v] = (run_args){ v, M, o.X, o.wf, &o.w, &o.wt, o.Y, &dn };
        double t[NV], fl = 2.0 * M * sh->N * (double)sh->K * 1e-9, pk;
        cb_bench_round_robin(NV, run_variant, a, use, ours_only ? 0.3 : sh->K >= 4096 ? 3.0 : 1.0, false, t, &pk);
#define GF(v) (t[v] > 0 ? fl / t[v] : 0)
#define X_(v) (t[V_DNNL] > 0 && t[v] > 0 ? t[V_DNNL] / t[v] : 0)
        printf("%-11s %6d %6d | %5.0f | %11.0f | %8.0f %5.2f %3.0f%% | %9.0f %5.2f %3.0f%% | %8.0f %5.2f | %6.0f %5.2f | "
               "%12.0f | %9.0f\n",
               sh->label, sh->N, sh->K, pk, GF(V_DNNL), GF(V_FAST), X_(V_FAST), 100 * GF(V_FAST) / pk, GF(V_EXACT),
               X_(V_EXACT), 100 * GF(V_EXACT) / pk, GF(V_EXACT_PC), X_(V_EXACT_PC), GF(V_EXACT2), X_(V_EXACT2),
               GF(V_AVX512), GF(V_SGEMM));
#undef X_
#undef GF
        fflush(stdout);
        if (use[V_DNNL]) cb_onednn_matmul_free(&dn);
        free(xb);
        free_operands(&o);
    }
}

/* AVX-512 vs AMX by M (exact and fast): where dispatch should hand over to the tiles. */
static void crossover_table(int threads) {
    omp_set_num_threads(threads);
    static const int Ms[] = { 1, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256 };
    static const cb_bench_gemm_shape S[] = { { "xs gate/up", 1792, 512 }, { "s q/o", 1024, 1024 }, { "s down", 1024, 3584 } };
    printf("\nCrossover, %d thread%s: GFLOP/s of AVX-512 vs AMX by M (exact: 3-part split; fast: bf16 activations)\n",
           threads, threads > 1 ? "s" : "");
    printf("%-11s %4s | %12s %9s %5s | %11s %8s %5s\n", "shape", "M", "avx512-exact", "amx-exact", "x", "avx512-fast",
           "amx-fast", "x");
    for (size_t s = 0; s < sizeof S / sizeof S[0]; s++)
        for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++) {
            int M = Ms[i];
            operands o = make_operands(M, S[s].N, S[s].K);
            double fl = 2.0 * M * S[s].N * (double)S[s].K * 1e-9, t[4];
            run_args a = { 0, M, o.X, o.wf, &o.w, &o.wt, o.Y, NULL };
            a.which = V_AVX512;
            t[0] = cb_bench_median(run_one, &a, 5, 200, 0.15);
            a.which = V_EXACT;
            t[1] = cb_bench_median(run_one, &a, 5, 200, 0.15);
            a.which = V_AVX512_FAST;
            t[2] = cb_bench_median(run_one, &a, 5, 200, 0.15);
            a.which = V_FAST;
            t[3] = cb_bench_median(run_one, &a, 5, 200, 0.15);
            printf("%-11s %4d | %12.0f %9.0f %5.2f | %11.0f %8.0f %5.2f\n", S[s].label, M, fl / t[0], fl / t[1],
                   t[0] / t[1], fl / t[2], fl / t[3], t[2] / t[3]);
            fflush(stdout);
            free_operands(&o);
        }
}

static int parse_threads(const char *s, int *out, int cap) {
    int n = 0;
    for (const char *p = s; *p && n < cap;) {
        int v = atoi(p);
        if (v <= 0) return -1;
        out[n++] = v;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    return n;
}

static int run_amx(int argc, char **argv) {
    bool quick = false, cross = true, gemm = true;
    int thr[8], nthr = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--no-crossover")) cross = false;
        else if (!strcmp(argv[i], "--ours-only")) ours_only = true;
        else if (!strcmp(argv[i], "--crossover-only")) gemm = false;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if ((nthr = parse_threads(argv[++i], thr, 8)) <= 0) {
                fprintf(stderr, "ctxbench-bench amx: --threads wants a list like 1,2,16\n");
                return 2;
            }
        } else {
            printf("ctxbench-bench amx [--quick] [--ours-only] [--threads 1,2,N] [--no-crossover|--crossover-only]\n"
                   "  (--quick: skip the 9B shapes; default threads: 1, 2 and all)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (cb_kernels_best_path() < CB_PATH_AMX) {
        printf("amx: refused: %s\n", cb_cpu()->amx_why);
        return 1;
    }
    cb_kernels_set_path(CB_PATH_AMX);
    int all = omp_get_max_threads();
    if (nthr == 0) {
        thr[nthr++] = 1;
        if (all >= 2) thr[nthr++] = 2;
        if (all > 2) thr[nthr++] = all;
    }
    printf("AMX-BF16 peak (measured, tile-resident TDPBF16PS): %.0f GFLOP/s on 1 thread, %.0f on %d\n", cb_bench_tile_peak(false, 1),
           cb_bench_tile_peak(false, all), all);
    tile_ceilings();
    for (int i = 0; gemm && i < nthr; i++) gemm_table(512, thr[i], quick);
    for (int i = 0; cross && i < nthr; i++) crossover_table(thr[i]);
    omp_set_num_threads(all);
    return 0;
}

static const cb_bench_section amx_section = { "amx", "AMX peak, prefill GEMMs vs oneDNN bf16 and OpenBLAS, crossover",
                                              run_amx };
CB_REGISTER_BENCH(amx_section)
