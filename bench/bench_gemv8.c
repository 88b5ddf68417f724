/* `gemv8` section: the batch-1 GEMV over 8-bit weights (cb_matmul at M = 1, exact mode, the decode path; --fast: cb_matmul_bf16)
 * streaming from DRAM, on 1 thread and on all threads, for weights whose fp8 codes contain a given share
 * of E4M3 subnormals (zero exponent field: 0x01..0x07, 0x81..0x87), next to bf16 and int8 weights of the
 * same shape. GB/s = codes + scales / median time, with the triad probed before and after each row.
 * `gemv8 --count PRESET...` instead prints, per tensor of the preset quantised to fp8 as `ctxbench run
 * --weights-dtype fp8` does, how many codes and rows hold subnormals. docs/performance.md, "fp8 subnormal
 * codes". */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/gemm8.h"
#include "../engines/kernels/kernels.h"
#include "../engines/model/presets.h"
#include "../engines/model/quantize.h"
#include "../harness/measure/roofs.h"
#include "bench.h"

static bool is_sub(uint8_t c) { return (c & 0x78) == 0 && (c & 0x07) != 0; }

static int count_preset(const char *name) {
    cb_model m;
    memset(&m, 0, sizeof m);
    cb_err err = { "" };
    if (cb_preset_create(name, 42, CB_F8_E4M3, &m, &err)) {
        fprintf(stderr, "gemv8 --count: %s\n", err.msg);
        return 1;
    }
    cb_weight *ws[CB_MAX_LINEARS];
    int n = cb_model_linears(&m, ws, CB_MAX_LINEARS);
    uint64_t all = 0, sub = 0, rows = 0, subrows = 0, zeros = 0;
    double worst = 0;
    printf("preset %s (seed 42), %d fp8 linears\n", name, n);
    for (int i = 0; i < n; i++) {
        const uint8_t *q = ws[i]->data;
        uint64_t s = 0, sr = 0, z = 0;
        for (int64_t r = 0; r < ws[i]->rows; r++) {
            uint64_t c = 0;
            for (int64_t k = 0; k < ws[i]->cols; k++) {
                uint8_t b = q[r * ws[i]->cols + k];
                c += is_sub(b), z += (b & 0x7f) == 0;
            }
            s += c, sr += c > 0;
        }
        uint64_t e = (uint64_t)(ws[i]->rows * ws[i]->cols);
        double f = (double)s / (double)e;
        if (f > worst) worst = f;
        if (i < 12 || f > 1e-3)
            printf("  linear %3d [%lld x %lld]: subnormal codes %llu (1 in %.0f), rows with one %.1f %%, zero codes %llu\n", i,
                   (long long)ws[i]->rows, (long long)ws[i]->cols, (unsigned long long)s, s ? (double)e / (double)s : 0.0,
                   100.0 * (double)sr / (double)ws[i]->rows, (unsigned long long)z);
        all += e, sub += s, rows += (uint64_t)ws[i]->rows, subrows += sr, zeros += z;
    }
    printf("  total: %llu codes, subnormal %llu (1 in %.0f), rows with one %.1f %% of %llu, zero codes %llu, worst "
           "tensor 1 in %.0f\n", (unsigned long long)all, (unsigned long long)sub, sub ? (double)all / (double)sub : 0.0,
           100.0 * (double)subrows / (double)rows, (unsigned long long)rows, (unsigned long long)zeros,
           worst > 0 ? 1.0 / worst : 0.0);
    cb_model_free(&m);
    return 0;
}

typedef struct {
    int nmat;
    bool fast; /* fast mode's GEMV (cb_matmul_bf16) */
    cb_weight *w;
    float *x, *y;
} gv_args;

static void gv_run(void *p) {
    gv_args *a = p;
    for (int i = 0; i < a->nmat; i++) (a->fast ? cb_matmul_bf16 : cb_matmul)(1, a->x, a->w[i].cols, &a->w[i], a->y, a->w[i].rows, false);
}

/* Codes of a row of uniform weights quantised as cb_quantize_rows does, then every `every`-th code (0: none)
 * replaced by a subnormal one; every < 0: as quantised (the natural share); every == 1: all subnormal. */
static void fill(uint8_t *q, float *scale, int64_t N, int64_t K, int every, uint64_t seed) {
    cb_rng r = { seed };
    float *row = malloc(sizeof(float) * (size_t)K);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = cb_rng_uniform(&r);
        cb_err err = { "" };
        cb_quantize_rows(row, CB_F32, 1, K, CB_F8_E4M3, q + n * K, scale + n, &err);
        for (int64_t k = 0; k < K; k++) {
            uint8_t *c = &q[n * K + k];
            if (every == 0 && is_sub(*c)) *c = (uint8_t)((*c & 0x80) | 0x08); /* clean: none at all */
            if (every > 0 && (n * K + k) % every == 0) *c = (uint8_t)((*c & 0x80) | (1 + (cb_rng_next(&r) % 7)));
        }
    }
    free(row);
}

static int run(int argc, char **argv) {
    int64_t N = 8192, K = 2048;
    bool fp8_only = false, resident = false, fast = false;
    if (argc > 1 && !strcmp(argv[1], "--count")) {
        for (int i = 2; i < argc; i++)
            if (count_preset(argv[i])) return 1;
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) N = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc) K = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--fp8")) fp8_only = true;
        else if (!strcmp(argv[i], "--resident")) resident = true; /* one matrix, read again and again from cache */
        else if (!strcmp(argv[i], "--fast")) fast = true;
        else {
            printf("ctxbench-bench gemv8 [--n N (8192)] [--k K (2048)] [--fp8 (fp8 rows only)] [--resident] [--fast] | --count PRESET...\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    const int nmat = resident ? 1 : (int)CB_MAX(2, (512ll << 20) / (N * K)); /* >= 512 MiB of codes: from DRAM */
    struct { const char *name; cb_dtype dt; int every; } v[] = {
        { "bf16", CB_BF16, 0 },           { "int8", CB_I8, 0 },
        { "fp8 clean", CB_F8_E4M3, 0 },   { "fp8 as quantised", CB_F8_E4M3, -1 },
        { "fp8 1/4096 sub", CB_F8_E4M3, 4096 }, { "fp8 1/256 sub", CB_F8_E4M3, 256 },
        { "fp8 all sub", CB_F8_E4M3, 1 },
    };
    gv_args a = { .nmat = nmat, .fast = fast };
    a.w = calloc((size_t)nmat, sizeof *a.w);
    a.x = cb_bench_activations(1, (int)K);
    a.y = malloc(sizeof(float) * (size_t)N);
    printf("ctxbench gemv8 benchmark — kernel path %s, M = 1, %d matrices of %lld x %lld, %s mode\n",
           cb_kpath_name(cb_kernels_path()), nmat, (long long)N, (long long)K, fast ? "fast" : "exact");
    printf("%-18s | threads | triad GB/s | GB/s  %% triad | triad after\n", "weights");
    for (size_t vi = 0; vi < sizeof v / sizeof v[0]; vi++) {
        if (fp8_only && v[vi].dt != CB_F8_E4M3) continue;
        const size_t esz = cb_dtype_size(v[vi].dt);
        for (int i = 0; i < nmat; i++) {
            cb_weight *w = &a.w[i];
            w->dtype = v[vi].dt, w->rows = N, w->cols = K;
            w->data = malloc((size_t)(N * K) * esz);
            float *sc = NULL;
            if (v[vi].dt == CB_BF16) {
                cb_rng r = { 9 + (uint64_t)i };
                for (int64_t j = 0; j < N * K; j++) ((uint16_t *)w->data)[j] = cb_f32_to_bf16(cb_rng_uniform(&r));
            } else {
                sc = malloc(sizeof(float) * (size_t)N);
                if (v[vi].dt == CB_I8) {
                    cb_rng r = { 9 + (uint64_t)i };
                    for (int64_t j = 0; j < N * K; j++) ((int8_t *)w->data)[j] = (int8_t)((int)(cb_rng_next(&r) % 255) - 127);
                    for (int64_t n = 0; n < N; n++) sc[n] = 1e-3f;
                } else fill((uint8_t *)w->data, sc, N, K, v[vi].every, 9 + (uint64_t)i);
            }
            w->scale = sc;
        }
        const size_t bytes = (size_t)nmat * (size_t)(N * K) * esz + (v[vi].dt == CB_BF16 ? 0 : (size_t)nmat * N * 4);
        int thr[2] = { 1, omp_get_max_threads() };
        for (int ti = 0; ti < (thr[1] > 1 ? 2 : 1); ti++) {
            omp_set_num_threads(thr[ti]);
            cb_err err = { "" };
            double before = cb_roofs_triad_probe(thr[ti], 0.5, &err);
            double gbs = (double)bytes / cb_bench_median(gv_run, &a, 3, 20, 1.5) / 1e9;
            double after = cb_roofs_triad_probe(thr[ti], 0.5, &err), roof = CB_MAX(before, after);
            printf("%-18s | %7d | %10.1f | %5.1f %5.0f %% | %.1f\n", v[vi].name, thr[ti], before, gbs,
                   roof > 0 ? 100 * gbs / roof : 0.0, after);
            fflush(stdout);
        }
        omp_set_num_threads(thr[1]);
        for (int i = 0; i < nmat; i++) free((void *)a.w[i].data), free((void *)a.w[i].scale);
    }
    free(a.w), free(a.x), free(a.y);
    return 0;
}

static const cb_bench_section gemv8 = { "gemv8", "batch-1 GEMV over fp8/int8/bf16 weights, clean and with subnormal fp8 codes; --count PRESET", run };
CB_REGISTER_BENCH(gemv8);
