/* `decode-stack` section: the batch-1 GEMVs of a whole preset layer stack as decode runs them (per layer
 * q/k/v in one call, o, gate/up in one call, down; then the LM head), every layer its own weights (bf16, or
 * quantised to fp8 / int8 as `run --weights-dtype` binds them) so they stream from DRAM, exact mode. GB/s = weight bytes / time, best and median of the repetitions, next
 * to triad probes taken before and after at the same thread count. docs/performance.md, "Batch-1 decode
 * at the bandwidth". */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/gemm8.h"
#include "../engines/kernels/kernels.h"
#include "../engines/model/model.h"
#include "../harness/measure/roofs.h"
#include "bench.h"

typedef struct {
    int L, d, kvd, ff, vocab;
    cb_weight *w; /* per layer: q, k, v, o, gate, up, down; then the head */
    float *x, *y;
} stack;

/* bf16 weights, or those quantised per row to fp8 / int8 (codes and scales; the bf16 copy freed). */
static cb_weight mk(int64_t rows, int64_t cols, uint64_t seed, cb_dtype dt) {
    uint16_t *p = cb_calloc((size_t)(rows * cols) * 2, NULL);
    if (!p) return (cb_weight){ 0 };
    cb_rng r = { seed };
    for (int64_t i = 0; i < rows * cols; i++) p[i] = cb_f32_to_bf16(0.05f * cb_rng_uniform(&r));
    if (dt == CB_BF16) return (cb_weight){ .data = p, .dtype = CB_BF16, .rows = rows, .cols = cols };
    uint8_t *q = cb_calloc((size_t)(rows * cols), NULL);
    float *sc = cb_calloc((size_t)rows * sizeof(float), NULL);
    cb_err err = { "" };
    if (!q || !sc || cb_quantize_rows(p, CB_BF16, rows, cols, dt, q, sc, &err)) {
        cb_free(p), cb_free(q), cb_free(sc);
        return (cb_weight){ 0 };
    }
    cb_free(p);
    return (cb_weight){ .data = q, .dtype = dt, .rows = rows, .cols = cols, .scale = sc };
}

static void token(void *p) {
    stack *s = p;
    float *y0 = s->y, *y1 = y0 + s->ff, *y2 = y1 + s->ff;
    for (int l = 0; l < s->L; l++) {
        const cb_weight *w = s->w + 7 * l;
        const cb_weight *qkv[3] = { &w[0], &w[1], &w[2] }, *gu[2] = { &w[4], &w[5] };
        float *Y3[3] = { y0, y1, y2 }, *Y2[2] = { y1, y2 };
        const int64_t ld3[3] = { s->d, s->kvd, s->kvd }, ld2[2] = { s->ff, s->ff };
        cb_matmul_multi(1, s->x, s->d, 3, qkv, Y3, ld3);
        cb_matmul(1, s->x, s->d, &w[3], y0, s->d, false);
        cb_matmul_multi(1, s->x, s->d, 2, gu, Y2, ld2);
        cb_matmul(1, y1, s->ff, &w[6], y0, s->d, false);
    }
    cb_matmul(1, s->x, s->d, &s->w[7 * s->L], s->y, s->vocab, false);
}

static int run_decode_stack(int argc, char **argv) {
    const char *scale = argc > 1 ? argv[1] : "xs", *dts = argc > 2 ? argv[2] : "bf16";
    const cb_dtype dt = !strcmp(dts, "fp8") ? CB_F8_E4M3 : !strcmp(dts, "int8") ? CB_I8 : CB_BF16;
    stack s = { .L = 32, .vocab = 32000 };
    if (!strcmp(scale, "xs")) s.d = 512, s.kvd = 128, s.ff = 1792;
    else if (!strcmp(scale, "s")) s.d = 1024, s.kvd = 256, s.ff = 3584;
    else scale = NULL;
    if (!scale || (dt == CB_BF16 && strcmp(dts, "bf16"))) {
        printf("ctxbench-bench decode-stack [xs|s] [bf16|fp8|int8]   (the transformer preset's layer shapes and "
               "weight dtype; default xs bf16)\n");
        return scale && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    const int64_t shp[7][2] = { { s.d, s.d }, { s.kvd, s.d }, { s.kvd, s.d }, { s.d, s.d },
                                { s.ff, s.d }, { s.ff, s.d }, { s.d, s.ff } };
    s.w = calloc((size_t)(7 * s.L + 1), sizeof *s.w);
    s.x = malloc(sizeof(float) * (size_t)s.ff);
    s.y = malloc(sizeof(float) * (size_t)CB_MAX(3 * s.ff, s.vocab));
    if (!s.w || !s.x || !s.y) { fprintf(stderr, "decode-stack: out of memory\n"); return 1; }
    double bytes = 0;
    for (int l = 0; l < s.L; l++)
        for (int i = 0; i < 7; i++) {
            s.w[7 * l + i] = mk(shp[i][0], shp[i][1], 1000 + 7 * (uint64_t)l + (uint64_t)i, dt);
            bytes += (double)cb_weight_bytes(&s.w[7 * l + i]);
        }
    s.w[7 * s.L] = mk(s.vocab, s.d, 999, dt);
    bytes += (double)cb_weight_bytes(&s.w[7 * s.L]);
    for (int i = 0; i < 7 * s.L + 1; i++)
        if (!s.w[i].data) { fprintf(stderr, "decode-stack: cannot allocate the weights\n"); return 1; }
    for (int i = 0; i < s.ff; i++) s.x[i] = 0.01f * (float)(i % 13);
    printf("ctxbench decode-stack benchmark — kernel path %s, transformer-%s layer GEMVs, 32 layers + LM head, "
           "%.0f MB of %s weights, M = 1, exact\n", cb_kpath_name(cb_kernels_path()), scale, bytes / 1e6, dts);
    printf("threads | triad before | best ms   GB/s  %% | median ms   GB/s | triad after\n");
    const int T = omp_get_max_threads(), thr[2] = { 1, T };
    for (int ti = 0; ti < (T > 1 ? 2 : 1); ti++) {
        omp_set_num_threads(thr[ti]);
        cb_err err = { "" };
        double before = cb_roofs_triad_probe(thr[ti], 0.3, &err);
        double best = 1e30, t[64];
        int n = 0;
        token(&s);
        for (double t0 = cb_bench_now(); n < 64 && (n < 8 || cb_bench_now() - t0 < 2.0); n++) {
            double a = cb_bench_now();
            token(&s);
            t[n] = cb_bench_now() - a;
            if (t[n] < best) best = t[n];
        }
        for (int i = 1; i < n; i++) /* insertion sort for the median */
            for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { double u = t[j]; t[j] = t[j - 1], t[j - 1] = u; }
        double after = cb_roofs_triad_probe(thr[ti], 0.3, &err), roof = CB_MAX(before, after);
        printf("%7d | %12.1f | %7.2f %6.1f %3.0f%% | %9.2f %6.1f | %.1f\n", thr[ti], before, best * 1e3, bytes / best / 1e9,
               roof > 0 ? 100 * bytes / best / 1e9 / roof : 0.0, t[n / 2] * 1e3, bytes / t[n / 2] / 1e9, after);
        fflush(stdout);
    }
    omp_set_num_threads(T);
    for (int i = 0; i < 7 * s.L + 1; i++) cb_free((void *)s.w[i].data), cb_free((void *)s.w[i].scale);
    free(s.w), free(s.x), free(s.y);
    return 0;
}

static const cb_bench_section decode_stack_section = {
    "decode-stack", "batch-1 GEMVs of a preset's whole layer stack from DRAM vs the triad [xs|s] [bf16|fp8|int8]", run_decode_stack };
CB_REGISTER_BENCH(decode_stack_section)
