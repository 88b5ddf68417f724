/* `amx8` section: int8 weights in fast mode at prefill. The AMX-INT8 tile peak (tile-resident TDPBSSD, the
 * twin of the AMX-BF16 peak loop), then GEMMs at M = 512 on the presets' shapes: our AMX-INT8 kernel on the
 * weight's VNNI-4 tile copy (as engines hold it) and packing per call, our VNNI kernel (vpdpbusd), oneDNN's
 * int8 matmul (s8 · s8 -> s32 with AMX inside, weights reordered once outside the timing, activations
 * quantised outside the timing: it does less work than ours, which quantise the fp32 activations and scale
 * the output), and for reference our AMX-BF16 fast kernel on bf16 weights of the same shape; variants timed
 * round-robin (medians) with a tile-peak sample per round. Then the crossover in M between VNNI and AMX-INT8.
 * Refused (exit 1) where the amx path or AMX-INT8 cannot run. */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/gemm8.h"
#include "../engines/kernels/kernels_amx.h"
#include "../engines/kernels/tiles.h"
#include "../harness/measure/roofs.h"
#include "bench.h"
#include "onednn_matmul.h"



enum { V_DNNL, V_AMX8, V_AMX8_PC, V_VNNI, V_BF16, NV };
static const char *const VNAME[NV] = { "onednn-s8", "amx-int8", "per-call", "vnni", "amx-bf16" };

typedef struct {
    int which, M;
    const float *X;
    const cb_weight *W, *Wt, *Wb; /* int8; int8 with its tile copy; bf16 with its tile copy */
    float *Y;
    cb_onednn_matmul *dn;
} run_args;

static void run_one(void *p) {
    run_args *a = p;
    const int N = (int)a->W->rows, K = (int)a->W->cols;
    switch (a->which) {
    case V_DNNL: cb_onednn_matmul_run(a->dn); break;
    case V_AMX8: cb_matmul_q8_fast_amx(a->M, a->X, K, a->Wt, a->Y, N, false); break;
    case V_AMX8_PC: cb_matmul_q8_fast_amx(a->M, a->X, K, a->W, a->Y, N, false); break;
    case V_VNNI: cb_matmul_q8_fast_avx512(a->M, a->X, K, a->W, a->Y, N, false); break;
    default: cb_matmul_bf16_amx(a->M, a->X, K, a->Wb, a->Y, N, false);
    }
}


static void run_variant(void *ctx, int v) { run_one((run_args *)ctx + v); }

typedef struct {
    int8_t *q, *xq;
    float *s, *X, *Y, sx;
    uint16_t *wb;
    uint32_t *tiles, *btiles;
    cb_weight w, wt, wb16;
} operands;

static operands make_operands(int M, int N, int K, bool bf16) {
    operands o = { 0 };
    const size_t n = (size_t)N * K;
    o.q = malloc(n);
    o.s = malloc((size_t)N * sizeof(float));
    cb_rng r = { 42 };
    for (size_t i = 0; i < n; i++) o.q[i] = (int8_t)((int)(cb_rng_next(&r) >> 56) % 127);
    for (int i = 0; i < N; i++) o.s[i] = 1.0f / 1024.0f;
    o.w = (cb_weight){ .data = o.q, .dtype = CB_I8, .rows = N, .cols = K, .scale = o.s };
    o.tiles = aligned_alloc(64, cb_tiles_bytes_of(CB_I8, N, K));
    cb_tiles_pack_i8(&o.w, o.tiles);
    o.wt = o.w;
    o.wt.tiles = o.tiles;
    if (bf16) {
        o.wb = malloc(n * 2);
        for (size_t i = 0; i < n; i++) o.wb[i] = cb_f32_to_bf16((float)o.q[i] / 1024.0f);
        o.wb16 = (cb_weight){ .data = o.wb, .dtype = CB_BF16, .rows = N, .cols = K };
        o.btiles = aligned_alloc(64, cb_tiles_bytes(N, K));
        cb_tiles_pack(&o.wb16, o.btiles);
        o.wb16.tiles = o.btiles;
    }
    o.X = cb_bench_activations(M, K);
    o.xq = malloc((size_t)M * K);
    float *sx = malloc((size_t)M * sizeof(float));
    cb_q8_quantize_activations(M, o.X, K, K, o.xq, sx);
    free(sx);
    o.Y = malloc((size_t)M * N * 4);
    return o;
}
static void free_operands(operands *o) {
    free(o->q), free(o->s), free(o->X), free(o->xq), free(o->Y), free(o->tiles), free(o->wb), free(o->btiles);
}

static void gemm_table(int M, int threads, bool quick) {
    omp_set_num_threads(threads);
    const double peak = cb_bench_tile_peak(true, threads);
    printf("\nPrefill int8 GEMM M = %d, %d thread%s: GOP/s (2·M·N·K / median); x = / oneDNN s8; %%pk = of the AMX-INT8\n"
           "tile-loop peak on %d thread%s sampled in the same rounds (pk: its median; best of 5 before the table: %.0f)\n",
           M, threads, threads > 1 ? "s" : "", threads, threads > 1 ? "s" : "", peak);
    printf("%-11s %6s %6s | %5s | %9s | %8s %5s %4s | %8s %5s | %6s %5s | %8s %5s | %s\n", "shape", "N", "K", "pk",
           VNAME[0], VNAME[1], "x", "%pk", VNAME[2], "x", VNAME[3], "x", VNAME[4], "x", "amx-int8 / vnni");
    for (size_t s = 0; s < (size_t)CB_BENCH_N_PREFILL_SHAPES; s++) {
        const cb_bench_gemm_shape *sh = &CB_BENCH_PREFILL_SHAPES[s];
        if (quick && sh->K >= 4096) continue;
        operands o = make_operands(M, sh->N, sh->K, true);
        cb_onednn_matmul dn;
        int32_t *dy = malloc((size_t)M * sh->N * sizeof(int32_t)); /* oneDNN's s32 result */
        bool use[NV] = { true, true, true, true, true };
        if (cb_onednn_matmul_make(&dn, "amx8", M, sh->N, sh->K, dnnl_s8, dnnl_s8, dnnl_s32, o.q, o.xq, dy)) use[V_DNNL] = false;
        run_args a[NV];
        for (int v = 0; v < NV; v++) a[v] = (run_args){ v, M, o.X, &o.w, &o.wt, &o.wb16, o.Y, &dn };
        double med[NV], p;
        cb_bench_round_robin(NV, run_variant, a, use, sh->K >= 4096 ? 3.0 : 1.0, true, med, &p);
        const double fl = 2.0 * M * sh->N * (double)sh->K * 1e-9;
#define GF(v) (med[v] > 0 ? fl / med[v] : 0)
#define X_(v) (med[V_DNNL] > 0 && med[v] > 0 ? med[V_DNNL] / med[v] : 0)
        printf("%-11s %6d %6d | %5.0f | %9.0f | %8.0f %5.2f %3.0f%% | %8.0f %5.2f | %6.0f %5.2f | %8.0f %5.2f | %5.2f\n",
               sh->label, sh->N, sh->K, p, GF(V_DNNL), GF(V_AMX8), X_(V_AMX8), 100 * GF(V_AMX8) / p, GF(V_AMX8_PC),
               X_(V_AMX8_PC), GF(V_VNNI), X_(V_VNNI), GF(V_BF16), X_(V_BF16), med[V_VNNI] / med[V_AMX8]);
#undef X_
#undef GF
        fflush(stdout);
        if (use[V_DNNL]) cb_onednn_matmul_free(&dn);
        free(dy);
        free_operands(&o);
    }
}

/* VNNI vs AMX-INT8 by M: where dispatch should hand over to the tiles (CB_AMX8_MIN_M_DEFAULT). */
static void crossover_table(int threads) {
    omp_set_num_threads(threads);
    static const int Ms[] = { 1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512 };
    static const cb_bench_gemm_shape S[] = { { "xs gate/up", 1792, 512 }, { "s q/o", 1024, 1024 }, { "s down", 1024, 3584 } };
    printf("\nCrossover, %d thread%s: GOP/s of VNNI vs AMX-INT8 (tile copy; per-call packing) by M\n", threads,
           threads > 1 ? "s" : "");
    printf("%-11s %4s | %6s | %8s %5s | %8s %5s\n", "shape", "M", "vnni", "amx-int8", "x", "per-call", "x");
    for (size_t s = 0; s < sizeof S / sizeof S[0]; s++)
        for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++) {
            const int M = Ms[i];
            operands o = make_operands(M, S[s].N, S[s].K, false);
            const double fl = 2.0 * M * S[s].N * (double)S[s].K * 1e-9;
            double t[3];
            run_args a = { 0, M, o.X, &o.w, &o.wt, NULL, o.Y, NULL };
            const int which[3] = { V_VNNI, V_AMX8, V_AMX8_PC };
            for (int v = 0; v < 3; v++) {
                a.which = which[v];
                t[v] = cb_bench_median(run_one, &a, 5, 200, 0.15);
            }
            printf("%-11s %4d | %6.0f | %8.0f %5.2f | %8.0f %5.2f\n", S[s].label, M, fl / t[0], fl / t[1], t[0] / t[1],
                   fl / t[2], t[0] / t[2]);
            fflush(stdout);
            free_operands(&o);
        }
}

static int run_amx8(int argc, char **argv) {
    bool quick = false, cross = true, gemm = true;
    int thr[8], nthr = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--no-crossover")) cross = false;
        else if (!strcmp(argv[i], "--crossover-only")) gemm = false;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthr = 0;
            for (char *p = argv[++i]; *p && nthr < 8;) {
                int v = atoi(p);
                if (v <= 0) {
                    fprintf(stderr, "ctxbench-bench amx8: --threads wants a list like 1,2\n");
                    return 2;
                }
                thr[nthr++] = v;
                if (!(p = strchr(p, ','))) break;
                p++;
            }
        } else {
            printf("ctxbench-bench amx8 [--quick] [--threads 1,2,N] [--no-crossover|--crossover-only]\n"
                   "  (--quick: skip the 9B shapes; default threads: 1 and all)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (cb_kernels_best_path() < CB_PATH_AMX || !cb_cpu()->amx_int8) {
        printf("amx8: refused: %s%s\n", cb_cpu()->amx_why, cb_cpu()->amx_int8 ? "" : " (no AMX-INT8)");
        return 1;
    }
    cb_kernels_set_path(CB_PATH_AMX);
    const int all = omp_get_max_threads();
    if (nthr == 0) {
        thr[nthr++] = 1;
        if (all > 1) thr[nthr++] = all;
    }
    printf("AMX-INT8 peak (measured, tile-resident TDPBSSD): %.0f GOP/s on 1 thread, %.0f on %d; AMX-BF16 (TDPBF16PS): "
           "%.0f GFLOP/s on 1 thread\n",
           cb_bench_tile_peak(true, 1), cb_bench_tile_peak(true, all), all, cb_bench_tile_peak(false, 1));
    for (int i = 0; gemm && i < nthr; i++) gemm_table(512, thr[i], quick);
    for (int i = 0; cross && i < nthr; i++) crossover_table(thr[i]);
    omp_set_num_threads(all);
    return 0;
}

static const cb_bench_section amx8_section = {
    "amx8", "int8 weights at prefill: AMX-INT8 peak, GEMMs vs VNNI and oneDNN s8, crossover", run_amx8
};
CB_REGISTER_BENCH(amx8_section)
