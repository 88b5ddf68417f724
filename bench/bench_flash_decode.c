/* `flash-decode` section: the flash-attention kernel as decode uses it (few query rows over a long KV
 * cache, one call per 1024-key partition as engines/layers/attention_layer.c does) streaming K and V from DRAM,
 * on 1 thread and on all threads (each thread its own caches, as the decode partitions are), for 1, 2,
 * 4 and 8 rows (query heads per KV head). GB/s = K + V bytes / median time, next to the triad measured
 * in the same run at the same thread count (8-bit caches: codes + the two fp32 scales per position).
 * docs/performance.md, "Flash decode over a bf16 cache" and "8-bit KV cache". */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/attention.h"
#include "../engines/kernels/kernels.h"
#include "../engines/kernels/kv8.h"
#include "../harness/measure/roofs.h"
#include "../harness/measure/workload.h"
#include "bench.h"

#define PART 1024 /* keys per call: the decode partition */

typedef struct {
    int R, hd, threads, caches;
    bool fast; /* fast mode's kernel (cb_attn_flash_fast) */
    int64_t keys;
    cb_dtype dt;
    char **k, **v; /* caches[i]: K tiles / V rows of `keys` positions */
    float **ks, **vs; /* 8-bit caches: their per-position scales */
    float *Q;
} fd_args;

static void fd_run(void *p) {
    const fd_args *a = p;
#pragma omp parallel for schedule(static) num_threads(a->threads)
    for (int c = 0; c < a->caches; c++) {
        float O[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD], m[CB_FLASH_MAX_ROWS], l[CB_FLASH_MAX_ROWS];
        int64_t qp[CB_FLASH_MAX_ROWS];
        cb_kv_view kv = { .k = a->k[c], .v = a->v[c], .ks = a->ks ? a->ks[c] : NULL, .vs = a->vs ? a->vs[c] : NULL,
                          .dtype = a->dt, .hd = a->hd, .cap = a->keys };
        for (int64_t p0 = 0; p0 < a->keys; p0 += PART) {
            for (int r = 0; r < a->R; r++) m[r] = -INFINITY, l[r] = 0, qp[r] = a->keys - 1;
            memset(O, 0, sizeof(float) * (size_t)a->R * a->hd);
            (a->fast ? cb_attn_flash_fast : cb_attn_flash)(a->R, a->Q, qp, &kv, p0, CB_MIN(a->keys, p0 + PART), m, l, O);
        }
    }
}

static int run_flash_decode(int argc, char **argv) {
    int64_t keys = 32768;
    int hd = 128;
    cb_dtype dt = CB_BF16;
    bool resident = false, fast = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
            if (cb_parse_size(argv[++i], &keys) || keys < PART) { fprintf(stderr, "flash-decode: --keys must be >= 1K\n"); return 2; }
        } else if (!strcmp(argv[i], "--hd") && i + 1 < argc) {
            hd = atoi(argv[++i]);
            if (hd < 16 || hd > CB_FLASH_MAX_HD || hd % 16) { fprintf(stderr, "flash-decode: --hd must be a multiple of 16 in [16, %d]\n", CB_FLASH_MAX_HD); return 2; }
        } else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            if (cb_kv_dtype_parse(argv[++i], &dt)) {
                fprintf(stderr, "flash-decode: --dtype must be bf16, f16, f32, fp8 or int8\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--resident")) {
            resident = true; /* one cache per thread, read again and again: the loop's compute bound */
        } else if (!strcmp(argv[i], "--fast")) {
            fast = true;
        } else if (!strcmp(argv[i], "--no-vnni")) {
            cb_kernels_set_vnni(false); /* int8: widened blocks through the f32 kernel instead of VNNI, to compare */
        } else {
            printf("ctxbench-bench flash-decode [--keys N (32K)] [--hd D (128)] [--dtype bf16|f16|f32|fp8|int8] [--no-vnni] [--resident] [--fast]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    const int T = omp_get_max_threads();
    const size_t bytes = (size_t)keys * hd * cb_dtype_size(dt); /* of K, and of V, per cache */
    const bool q8 = cb_kv_is_q8(dt);
    const size_t read = 2 * bytes + (q8 ? 2 * (size_t)keys * sizeof(float) : 0); /* per cache and pass */
    /* enough caches that the whole set (≥ 512 MiB) comes from DRAM, a multiple of the thread count */
    int caches = resident ? T : (int)CB_MAX((int64_t)T, (int64_t)((512u << 20) / (2 * bytes)));
    caches = (caches + T - 1) / T * T;
    fd_args a = { .hd = hd, .keys = keys, .dt = dt, .caches = caches, .fast = fast };
    a.k = calloc((size_t)caches, sizeof *a.k), a.v = calloc((size_t)caches, sizeof *a.v);
    a.Q = malloc(sizeof(float) * CB_FLASH_MAX_ROWS * (size_t)hd);
    if (q8) a.ks = calloc((size_t)caches, sizeof *a.ks), a.vs = calloc((size_t)caches, sizeof *a.vs);
    if (!a.k || !a.v || !a.Q || (q8 && (!a.ks || !a.vs))) { fprintf(stderr, "flash-decode: out of memory\n"); return 1; }
    cb_rng rng = { 42 };
    for (int i = 0; i < CB_FLASH_MAX_ROWS * hd; i++) a.Q[i] = 0.1f * cb_rng_uniform(&rng);
    for (int c = 0; c < caches; c++) {
        a.k[c] = cb_calloc(bytes, NULL), a.v[c] = cb_calloc(bytes, NULL);
        if (!a.k[c] || !a.v[c]) { fprintf(stderr, "flash-decode: cannot allocate %d caches of 2 x %zu bytes\n", caches, bytes); return 1; }
        cb_rng r = { 7 + (uint64_t)c };
        if (q8) { /* rows of the values below, quantised as the layer does */
            a.ks[c] = malloc(sizeof(float) * (size_t)keys), a.vs[c] = malloc(sizeof(float) * (size_t)keys);
            if (!a.ks[c] || !a.vs[c]) { fprintf(stderr, "flash-decode: out of memory for scales\n"); return 1; }
            float x[CB_FLASH_MAX_HD], y[CB_FLASH_MAX_HD];
            uint8_t kc[CB_FLASH_MAX_HD], vc[CB_FLASH_MAX_HD];
            for (int64_t p = 0; p < keys; p++) {
                for (int d = 0; d < hd; d++) x[d] = 1.7f * cb_rng_uniform(&r), y[d] = cb_rng_uniform(&r);
                a.ks[c][p] = cb_kv8_quantize_row(x, hd, dt, kc);
                a.vs[c][p] = cb_kv8_quantize_row(y, hd, dt, vc);
                for (int d = 0; d < hd; d++) {
                    ((uint8_t *)a.k[c])[cb_kv_k_offset(p, d, hd, keys, dt)] = kc[d];
                    ((uint8_t *)a.v[c])[cb_kv_v_offset(p, d, hd, keys, dt)] = vc[d];
                }
            }
            continue;
        }
        for (size_t j = 0; j < bytes / cb_dtype_size(dt); j++) {
            float x = 1.7f * cb_rng_uniform(&r), y = cb_rng_uniform(&r);
            if (dt == CB_F32) ((float *)a.k[c])[j] = x, ((float *)a.v[c])[j] = y;
            else if (dt == CB_BF16) ((uint16_t *)a.k[c])[j] = cb_f32_to_bf16(x), ((uint16_t *)a.v[c])[j] = cb_f32_to_bf16(y);
            else ((uint16_t *)a.k[c])[j] = cb_f32_to_f16(x), ((uint16_t *)a.v[c])[j] = cb_f32_to_f16(y);
        }
    }
    const char *pf_why;
    const bool pf_l2 = cb_kernels_prefetch_l2(&pf_why);
    const char *i8_loop = " (int8: fp32 loop)";
    if (dt != CB_I8) i8_loop = "";
    else if (cb_kernels_path() == CB_PATH_AVX2) i8_loop = fast ? " (int8: vpmaddwd, 16-bit Q and P)" : " (int8: fp32 loop)";
    else if (cb_kernels_vnni()) i8_loop = " (int8 dot products: VNNI)";
    printf("ctxbench flash-decode benchmark — kernel path %s%s, %s mode, %s KV, head_dim %d, %lld keys per cache, %d caches "
           "(%.0f MiB%s), calls of %d keys, prefetch into %s (%s)\n", cb_kpath_name(cb_kernels_path()),
           i8_loop, fast ? "fast" : "exact", cb_dtype_name(dt), hd, (long long)keys,
           caches, (double)read * caches / 1048576, resident ? ", cache-resident" : "", PART, pf_l2 ? "L2" : "L1", pf_why);
    printf("threads | triad GB/s |  rows:      1         2         4         8   (GB/s of K+V, %% of the larger triad) | triad after\n");
    int thr[2] = { 1, T };
    for (int ti = 0; ti < (T > 1 ? 2 : 1); ti++) {
        cb_err err = { "" };
        /* the bandwidth of a shared VM can move within seconds: a probe before and after the row, and the
         * % against the larger (a roof is a best case); rows whose two probes differ much are suspect */
        double triad = cb_roofs_triad_probe(thr[ti], 0.5, &err), gbs[4];
        for (int R = 1, i = 0; R <= 8; R *= 2, i++) {
            a.R = R, a.threads = thr[ti];
            gbs[i] = (double)read * caches / cb_bench_median(fd_run, &a, 3, 20, 1.0) / 1e9;
        }
        double after = cb_roofs_triad_probe(thr[ti], 0.5, &err), roof = CB_MAX(triad, after);
        printf("%7d | %10.1f |", thr[ti], triad);
        for (int i = 0; i < 4; i++) printf("  %5.1f %3.0f%%", gbs[i], roof > 0 ? 100 * gbs[i] / roof : 0.0);
        printf(" | %.1f\n", after);
        fflush(stdout);
    }
    for (int c = 0; c < caches; c++) cb_free(a.k[c]), cb_free(a.v[c]);
    for (int c = 0; q8 && c < caches; c++) free(a.ks[c]), free(a.vs[c]);
    free(a.ks), free(a.vs);
    free(a.k), free(a.v), free(a.Q);
    return 0;
}

static const cb_bench_section flash_decode_section = {
    "flash-decode", "decode attention from DRAM vs the triad, 1 and all threads [--keys N --hd D --dtype T --no-vnni --resident --fast]",
    run_flash_decode };
CB_REGISTER_BENCH(flash_decode_section)
