/* AVX-512 kernels vs their portable twins and vs double-precision references: ragged sizes, misaligned
 * pointers and strides, every weight dtype, accumulate on/off, 1 vs 2 OpenMP threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../engines/kernels/kernels_avx512.h"
#include "../engines/kernels/thread_scratch.h"

static const int RAGGED[] = { 1, 15, 17, 63, 65 };
#define NRAGGED ((int)(sizeof RAGGED / sizeof RAGGED[0]))
static const cb_dtype WDT[] = { CB_F32, CB_BF16, CB_F16 };

static float frand(cb_rng *r) { return (float)((cb_rng_next(r) >> 40) * 0x1p-24) * 2.0f - 1.0f; }

static void need_path(cb_kpath p) {
    if (cb_kernels_best_path() < p) cr_skip_test("CPU lacks %s", cb_kpath_name(p));
    cr_assert_eq(cb_kernels_set_path(p), 0);
}

/* A [rows, cols] weight in dtype dt with uniform(-1, 1) values; *wf receives the exactly widened values. */
typedef struct {
    cb_weight w;
    void *buf;
    float *wf;
} test_weight;

static test_weight make_weight(cb_dtype dt, int64_t rows, int64_t cols, uint64_t seed) {
    test_weight t;
    cb_rng r = { seed };
    size_t n = (size_t)(rows * cols);
    t.buf = malloc(n * cb_dtype_size(dt) + 64);
    t.wf = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) {
        float v = frand(&r);
        if (dt == CB_F32) ((float *)t.buf)[i] = v;
        else if (dt == CB_BF16) ((uint16_t *)t.buf)[i] = cb_f32_to_bf16(v);
        else ((uint16_t *)t.buf)[i] = cb_f32_to_f16(v);
        t.wf[i] = cb_load_f32(t.buf, dt, i);
    }
    t.w = (cb_weight){ .data = t.buf, .dtype = dt, .rows = rows, .cols = cols };
    return t;
}
static void free_weight(test_weight *t) {
    free(t->buf);
    free(t->wf);
}

static float *make_floats(size_t n, uint64_t seed) {
    cb_rng r = { seed };
    float *p = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) p[i] = frand(&r);
    return p;
}

static inline float rbf(float x) { return cb_bf16_to_f32(cb_f32_to_bf16(x)); }

/* Check Y against a double-precision product within the fp32 summation bound 2·(K+2)·u·(Σ|x·w| + |y0|). */
static void check_vs_double(const char *what, int M, int64_t N, int64_t K, const float *X, int64_t ldx,
                            const float *wf, bool round_bf16, const float *Y0, const float *Y, int64_t ldy, bool acc) {
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0.0, sa = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double x = round_bf16 ? rbf(X[m * ldx + k]) : X[m * ldx + k];
                double w = round_bf16 ? rbf(wf[n * K + k]) : wf[n * K + k];
                s += x * w;
                sa += fabs(x * w);
            }
            double y0 = acc ? Y0[m * ldy + n] : 0.0;
            double want = y0 + s, tol = 2.0 * (double)(K + 2) * 0x1p-24 * (sa + fabs(y0)) + 1e-30;
            double got = Y[m * ldy + n];
            if (!(fabs(got - want) <= tol))
                cr_assert_fail("%s: M=%d N=%ld K=%ld acc=%d at [%d,%ld]: got %.9g want %.9g (tol %.3g)", what, M, (long)N,
                         (long)K, acc, m, (long)n, got, want, tol);
        }
}

typedef void (*matmul_fn)(int, const float *, int64_t, const cb_weight *, float *, int64_t, bool);

/* One GEMM case on misaligned, padded-stride buffers; fills the result into a fresh buffer checked vs double. */
static void run_case(matmul_fn fn, bool fast, const char *what, int M, int64_t N, int64_t K, cb_dtype dt, bool acc) {
    test_weight tw = make_weight(dt, N, K, 1000 + (uint64_t)(M * 31 + N * 7 + K));
    int64_t ldx = K + 3, ldy = N + 5;
    float *xbuf = make_floats((size_t)(M * ldx) + 1, 7 + (uint64_t)K);
    float *X = xbuf + 1; /* misaligned by 4 bytes */
    float *y0 = make_floats((size_t)(M * ldy) + 1, 9);
    float *ybuf = malloc(((size_t)(M * ldy) + 1) * sizeof(float));
    memcpy(ybuf, y0, ((size_t)(M * ldy) + 1) * sizeof(float));
    float *Y = ybuf + 1;
    fn(M, X, ldx, &tw.w, Y, ldy, acc);
    check_vs_double(what, M, N, K, X, ldx, tw.wf, fast, y0 + 1, Y, ldy, acc);
    /* padding between rows untouched */
    for (int m = 0; m < M; m++)
        for (int64_t n = N; n < ldy && m * ldy + n < M * ldy; n++)
            cr_assert_eq(Y[m * ldy + n], y0[1 + m * ldy + n], "%s wrote outside its rows", what);
    free(xbuf);
    free(y0);
    free(ybuf);
    free_weight(&tw);
}

static void gemm_sweep(cb_kpath path, bool fast, int force) {
    need_path(path);
    cb_matmul_avx512_force(force);
    const int Ms[] = { 1, 4, 15, 17, 63 };
    for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++)
        for (int b = 0; b < NRAGGED; b++)
            for (int c = 0; c < NRAGGED; c++)
                for (int d = 0; d < 3; d++)
                    run_case(fast ? cb_matmul_bf16 : cb_matmul, fast, cb_kpath_name(path), Ms[a], RAGGED[b],
                             RAGGED[c], WDT[d], (a + b + c) % 2);
    /* K crossing the KC block and N the NC block, both accumulate modes */
    for (int d = 0; d < 3; d++) {
        run_case(fast ? cb_matmul_bf16 : cb_matmul, fast, "large", 37, 545, 513, WDT[d], false);
        run_case(fast ? cb_matmul_bf16 : cb_matmul, fast, "large", 13, 129, 1027, WDT[d], true);
    }
    cb_matmul_avx512_force(0);
}

Test(kernels_gemm, portable_ref_vs_double) {
    for (int b = 0; b < NRAGGED; b++)
        for (int d = 0; d < 3; d++) {
            run_case(cb_matmul_ref, false, "ref", 3, RAGGED[b], 65, WDT[d], b % 2);
            run_case(cb_matmul_bf16_ref, true, "bf16_ref", 3, 17, RAGGED[b], WDT[d], b % 2);
        }
}
Test(kernels_gemm, exact_auto) { gemm_sweep(CB_PATH_AVX512, false, 0); }
Test(kernels_gemm, exact_skinny_all_M) { gemm_sweep(CB_PATH_AVX512, false, 1); }
Test(kernels_gemm, exact_blocked_all_M) { gemm_sweep(CB_PATH_AVX512, false, 2); }
Test(kernels_gemm, fast_fp32_fallback_blocked) { gemm_sweep(CB_PATH_AVX512, true, 2); }
Test(kernels_gemm, fast_fp32_fallback_skinny) { gemm_sweep(CB_PATH_AVX512, true, 1); }
Test(kernels_gemm, fast_dpbf16_blocked) { gemm_sweep(CB_PATH_AVX512_BF16, true, 2); }
Test(kernels_gemm, fast_dpbf16_skinny) { gemm_sweep(CB_PATH_AVX512_BF16, true, 1); }

/* The AVX-512 result must agree with the portable twin (both are checked vs double above; here directly). */
Test(kernels_gemm, avx512_vs_portable_twin) {
    need_path(CB_PATH_AVX512);
    for (int d = 0; d < 3; d++) {
        test_weight tw = make_weight(WDT[d], 127, 513, 5);
        float *X = make_floats(65 * 513, 6);
        float *Ya = calloc(65 * 127, 4), *Yr = calloc(65 * 127, 4);
        cb_matmul(65, X, 513, &tw.w, Ya, 127, false);
        cb_matmul_ref(65, X, 513, &tw.w, Yr, 127, false);
        for (int i = 0; i < 65 * 127; i++) cr_assert_float_eq(Ya[i], Yr[i], 2e-4f, "i=%d", i);
        free(X);
        free(Ya);
        free(Yr);
        free_weight(&tw);
    }
}

/* 1 and 2 threads: bit-identical outputs for every path (the K reduction is never split). */
static void threads_identical(bool fast, cb_kpath path, int force, int M) {
    need_path(path);
    cb_matmul_avx512_force(force);
    for (int d = 0; d < 3; d++) {
        test_weight tw = make_weight(WDT[d], 1000, 777, 11);
        float *X = make_floats((size_t)M * 777, 12);
        float *Y1 = calloc((size_t)M * 1000, 4), *Y2 = calloc((size_t)M * 1000, 4);
        int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        (fast ? cb_matmul_bf16 : cb_matmul)(M, X, 777, &tw.w, Y1, 1000, false);
        omp_set_num_threads(2);
        (fast ? cb_matmul_bf16 : cb_matmul)(M, X, 777, &tw.w, Y2, 1000, false);
        omp_set_num_threads(saved);
        cr_assert_eq(memcmp(Y1, Y2, (size_t)M * 1000 * 4), 0, "1 vs 2 threads differ (dtype %s, M=%d)",
                     cb_dtype_name(WDT[d]), M);
        free(X);
        free(Y1);
        free(Y2);
        free_weight(&tw);
    }
    cb_matmul_avx512_force(0);
}
Test(kernels_gemm, threads_identical_exact) {
    threads_identical(false, CB_PATH_AVX512, 2, 70);
    threads_identical(false, CB_PATH_AVX512, 1, 5);
}
Test(kernels_gemm, threads_identical_fast) {
    threads_identical(true, CB_PATH_AVX512_BF16, 2, 70);
    threads_identical(true, CB_PATH_AVX512_BF16, 1, 5);
    threads_identical(true, CB_PATH_AVX512, 2, 70);
}

/* cb_matmul_multi / cb_matmul_bf16_multi: bit-identical to one call per weight, with 1 and 2 threads, for
 * decode-sized M (one shared parallel region), prefill-sized M and mixed K (per-weight fallback). */
static void multi_case(cb_kpath path, bool fast, int M, const int64_t *N, const int64_t *K, int n, cb_dtype dt) {
    need_path(path);
    test_weight tw[4];
    const cb_weight *W[4];
    float *Ym[4], *Ys[4];
    int64_t ld[4];
    float *X = make_floats((size_t)M * 1100, 21);
    for (int i = 0; i < n; i++) {
        tw[i] = make_weight(dt, N[i], K[i], 30 + (uint64_t)i);
        W[i] = &tw[i].w;
        ld[i] = N[i] + 3;
        Ys[i] = calloc((size_t)M * ld[i], 4);
        Ym[i] = calloc((size_t)M * ld[i], 4);
        (fast ? cb_matmul_bf16 : cb_matmul)(M, X, 1100, W[i], Ys[i], ld[i], false);
    }
    int saved = omp_get_max_threads();
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (int i = 0; i < n; i++) memset(Ym[i], 0x7f, (size_t)M * ld[i] * 4); /* outputs are overwritten */
        for (int i = 0; i < n; i++)
            for (int m = 0; m < M; m++) memcpy(Ym[i] + m * ld[i] + N[i], Ys[i] + m * ld[i] + N[i], 3 * 4);
        (fast ? cb_matmul_bf16_multi : cb_matmul_multi)(M, X, 1100, n, W, Ym, ld);
        for (int i = 0; i < n; i++)
            for (int m = 0; m < M; m++)
                cr_assert_eq(memcmp(Ym[i] + m * ld[i], Ys[i] + m * ld[i], (size_t)N[i] * 4), 0,
                             "multi differs from single calls: weight %d of %d, row %d, M=%d, dtype %s, fast %d, "
                             "threads %d", i, n, m, M, cb_dtype_name(dt), fast, t);
    }
    omp_set_num_threads(saved);
    for (int i = 0; i < n; i++) {
        free(Ys[i]);
        free(Ym[i]);
        free_weight(&tw[i]);
    }
    free(X);
}
Test(kernels_gemm, multi_same_as_single_calls) {
    const int64_t N3[] = { 129, 33, 33 }, K3[] = { 515, 515, 515 }, Kmix[] = { 515, 257, 515 };
    const int64_t N2[] = { 1001, 1001 }, K2[] = { 1024, 1024 };
    const int Ms[] = { 1, 3, 5, 60 };
    for (int d = 0; d < 3; d++)
        for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++) {
            multi_case(CB_PATH_AVX512, false, Ms[a], N3, K3, 3, WDT[d]);
            multi_case(CB_PATH_AVX512, true, Ms[a], N2, K2, 2, WDT[d]);
            multi_case(CB_PATH_AVX512_BF16, true, Ms[a], N3, K3, 3, WDT[d]);
        }
    multi_case(CB_PATH_AVX512, false, 1, N3, Kmix, 3, CB_BF16);
    multi_case(CB_PATH_PORTABLE, false, 3, N3, K3, 3, CB_BF16);
    multi_case(CB_PATH_PORTABLE, true, 3, N3, K3, 3, CB_F32);
    cb_kernels_set_path(cb_kernels_best_path());
}

/* ---- row / elementwise ops ---- */

/* Batch-1 decode's order of operations, pinned bit for bit: the exact AVX-512 GEMV at M = 1 is a scalar
 * model of 16 fused-multiply-add lanes (bf16 weights: even columns and odd columns of each 32 in two sets
 * of 16 lanes, added lane-wise at the end) reduced by halves (8, 4, 2, 1). A kernel change that reorders
 * the sums (and so moves the engines' numbers) fails here, whatever its accuracy. */
static float reduce16(const float *l) {
    float a[8], b[4], c[2];
    for (int i = 0; i < 8; i++) a[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; i++) b[i] = a[i] + a[i + 4];
    for (int i = 0; i < 2; i++) c[i] = b[i] + b[i + 2];
    return c[0] + c[1];
}
static float gemv_model(cb_dtype dt, const float *x, const float *w, int64_t K) {
    float e[16] = { 0 }, o[16] = { 0 };
    if (dt == CB_BF16) {
        for (int64_t k = 0; k < K; k += 32)
            for (int i = 0; i < 16; i++) {
                if (k + 2 * i < K) e[i] = fmaf(x[k + 2 * i], w[k + 2 * i], e[i]);
                if (k + 2 * i + 1 < K) o[i] = fmaf(x[k + 2 * i + 1], w[k + 2 * i + 1], o[i]);
            }
        for (int i = 0; i < 16; i++) e[i] += o[i];
    } else {
        for (int64_t k = 0; k < K; k += 16)
            for (int i = 0; i < 16 && k + i < K; i++) e[i] = fmaf(x[k + i], w[k + i], e[i]);
    }
    return reduce16(e);
}

static void gemv_order_pinned_on(cb_kpath path, int order) {
    need_path(path);
    cb_matmul_avx512_gemv_rows(order);
    const int64_t shapes[][2] = { { 64, 512 }, { 37, 45 }, { 130, 1792 }, { 5, 31 }, { 300, 100 } };
    for (int d = 0; d < 3; d++)
        for (int si = 0; si < 5; si++) {
            const int64_t N = shapes[si][0], K = shapes[si][1];
            test_weight t = make_weight(WDT[d], N, K, 77 + si);
            float *x = make_floats((size_t)K, 99 + si), *y = malloc(sizeof(float) * (size_t)N);
            cb_matmul(1, x, K, &t.w, y, N, false);
            for (int64_t n = 0; n < N; n++) {
                float want = gemv_model(WDT[d], x, t.wf + n * K, K);
                cr_assert(y[n] == want, "%s N %lld K %lld row %lld: %.9g, model %.9g", cb_dtype_name(WDT[d]),
                          (long long)N, (long long)K, (long long)n, (double)y[n], (double)want);
            }
            free(x), free(y), free_weight(&t);
        }
    cb_kernels_set_path(cb_kernels_best_path());
    cb_matmul_avx512_gemv_rows(-1);
}
static void gemv_order_pinned(int order) { gemv_order_pinned_on(CB_PATH_AVX512, order); }
/* both orders (rows start to end, blocks of 4 interleaved) give these same bits */
Test(kernels_gemm, decode_gemv_order_is_pinned_rows) { gemv_order_pinned(1); }
Test(kernels_gemm, decode_gemv_order_is_pinned_blocks) { gemv_order_pinned(0); }

/* The AVX2 path: vs double like the AVX-512 sweeps, 1 vs 2 threads, multi vs single calls, and the order of
 * operations pinned to the AVX-512 skinny kernels' (batch-1 model above; M > 1 in blocks of 4 rows, exact
 * bf16 with one accumulator per lane except in a block of one row). */
Test(kernels_gemm, avx2_exact_vs_double) { gemm_sweep(CB_PATH_AVX2, false, 0); }
Test(kernels_gemm, avx2_fast_vs_double) { gemm_sweep(CB_PATH_AVX2, true, 0); }
Test(kernels_gemm, avx2_threads_identical) {
    threads_identical(false, CB_PATH_AVX2, 0, 70);
    threads_identical(false, CB_PATH_AVX2, 0, 1);
    threads_identical(true, CB_PATH_AVX2, 0, 70);
    threads_identical(true, CB_PATH_AVX2, 0, 5);
}
Test(kernels_gemm, avx2_multi_same_as_single_calls) {
    const int64_t N3[] = { 129, 33, 33 }, K3[] = { 515, 515, 515 }, Kmix[] = { 515, 257, 515 };
    const int Ms[] = { 1, 3, 5, 60 };
    for (int d = 0; d < 3; d++)
        for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++) {
            multi_case(CB_PATH_AVX2, false, Ms[a], N3, K3, 3, WDT[d]);
            multi_case(CB_PATH_AVX2, true, Ms[a], N3, K3, 3, WDT[d]);
        }
    multi_case(CB_PATH_AVX2, false, 1, N3, Kmix, 3, CB_BF16);
    cb_kernels_set_path(cb_kernels_best_path());
}
Test(kernels_gemm, avx2_decode_gemv_order_is_pinned) { gemv_order_pinned_on(CB_PATH_AVX2, 1); }

/* M > 1 on the skinny kernels: rows in blocks of 4; exact bf16 puts even and odd columns of a lane into
 * one accumulator (a block of one row: two, as at M = 1). */
static float gemv_model_block(cb_dtype dt, const float *x, const float *w, int64_t K, bool one_row) {
    if (dt != CB_BF16 || one_row) return gemv_model(dt, x, w, K);
    float e[16] = { 0 };
    for (int64_t k = 0; k < K; k += 32)
        for (int i = 0; i < 16; i++) {
            if (k + 2 * i < K) e[i] = fmaf(x[k + 2 * i], w[k + 2 * i], e[i]);
            if (k + 2 * i + 1 < K) e[i] = fmaf(x[k + 2 * i + 1], w[k + 2 * i + 1], e[i]);
        }
    return reduce16(e);
}
Test(kernels_gemm, avx2_skinny_blocks_order_is_pinned) {
    need_path(CB_PATH_AVX2);
    const int64_t N = 37, K = 515;
    for (int d = 0; d < 3; d++)
        for (int M = 2; M <= 9; M++) {
            test_weight t = make_weight(WDT[d], N, K, 500 + (uint64_t)M);
            float *x = make_floats((size_t)(M * K), 600 + (uint64_t)M), *y = malloc(sizeof(float) * (size_t)(M * N));
            cb_matmul(M, x, K, &t.w, y, N, false);
            for (int m = 0; m < M; m++) {
                const bool one_row = m / 4 * 4 + 1 == M; /* the last block holds this row alone */
                for (int64_t n = 0; n < N; n++) {
                    float want = gemv_model_block(WDT[d], x + m * K, t.wf + n * K, K, one_row);
                    cr_assert(y[m * N + n] == want, "%s M %d row %d col %lld: %.9g, model %.9g", cb_dtype_name(WDT[d]), M,
                              m, (long long)n, (double)y[m * N + n], (double)want);
                }
            }
            free(x), free(y), free_weight(&t);
        }
    cb_kernels_set_path(cb_kernels_best_path());
}

/* Where AVX-512 runs too: the two paths give the same bits over the AVX-512 skinny range (exact mode). */
Test(kernels_gemm, avx2_same_bits_as_avx512_skinny) {
    need_path(CB_PATH_AVX512);
    const int Ms[] = { 1, 2, 3, 5, 17, 48 };
    for (int d = 0; d < 3; d++)
        for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++) {
            const int M = Ms[a];
            const int64_t N = 131, K = 1027;
            test_weight t = make_weight(WDT[d], N, K, 70 + (uint64_t)M);
            float *x = make_floats((size_t)(M * K), 80 + (uint64_t)M);
            float *y2 = malloc(sizeof(float) * (size_t)(M * N)), *y5 = malloc(sizeof(float) * (size_t)(M * N));
            cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX512), 0);
            cb_matmul(M, x, K, &t.w, y5, N, false);
            cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX2), 0);
            cb_matmul(M, x, K, &t.w, y2, N, false);
            cr_assert_eq(memcmp(y2, y5, sizeof(float) * (size_t)(M * N)), 0, "%s M %d: avx2 and avx512 differ",
                         cb_dtype_name(WDT[d]), M);
            free(x), free(y2), free(y5), free_weight(&t);
        }
    cb_kernels_set_path(cb_kernels_best_path());
}

Test(kernels_ops, rmsnorm_vs_ref) {
    need_path(CB_PATH_AVX512);
    const int ns[] = { 1, 15, 17, 63, 65, 127, 513 };
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (int d = 0; d < 3; d++) {
            int n = ns[a], rows = 3, ld = n + 2;
            test_weight tw = make_weight(WDT[d], 1, n, 3);
            float *x = make_floats((size_t)rows * ld + 1, 4);
            float *ya = calloc((size_t)rows * ld, 4), *yr = calloc((size_t)rows * ld, 4);
            cb_rmsnorm(rows, n, x + 1, ld, &tw.w, 1e-6, ya, ld);
            cb_rmsnorm_ref(rows, n, x + 1, ld, &tw.w, 1e-6, yr, ld);
            for (int i = 0; i < rows * ld; i++)
                cr_assert(fabsf(ya[i] - yr[i]) <= 1e-5f * fabsf(yr[i]) + 1e-7f, "n=%d i=%d %g vs %g", n, i, ya[i], yr[i]);
            /* in place */
            cb_rmsnorm(rows, n, x + 1, ld, &tw.w, 1e-6, x + 1, ld);
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < n; i++) cr_assert_eq(x[1 + r * ld + i], ya[r * ld + i]);
            free(x);
            free(ya);
            free(yr);
            free_weight(&tw);
        }
}

static double ulp_err(float got, double want) {
    if (want == 0.0) return got == 0.0f ? 0.0 : INFINITY;
    int e;
    frexp(want, &e);
    double ulp = ldexp(1.0, (e - 24) < -149 ? -149 : e - 24);
    return fabs((double)got - want) / ulp;
}

/* Sweep the vectorised expf over [-87, 88] (and the clamped tails) vs double exp. */
Test(kernels_ops, expf_accuracy) {
    need_path(CB_PATH_AVX512);
    double maxulp = 0.0;
    float in[16], out[16];
    int cnt = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.00731f) {
        in[cnt++] = x;
        if (cnt == 16) {
            cb_expf16_avx512(in, out);
            for (int i = 0; i < 16; i++) {
                double u = ulp_err(out[i], exp((double)in[i]));
                if (u > maxulp) maxulp = u;
            }
            cnt = 0;
        }
    }
    cr_log_info("vectorised expf: max error %.3f ulp over [-87, 88]", maxulp);
    cr_assert(maxulp <= 2.0, "expf max error %.3f ulp", maxulp);
    float sp[16] = { -INFINITY, INFINITY, NAN, -200.0f, 200.0f, 0.0f, -0.0f, 1.0f, -104.0f, 88.7f, 0, 0, 0, 0, 0, 0 };
    cb_expf16_avx512(sp, out);
    cr_assert_eq(out[0], 0.0f);
    cr_assert(isinf(out[1]) && out[1] > 0);
    cr_assert(isnan(out[2]));
    cr_assert_eq(out[3], 0.0f);
    cr_assert(isinf(out[4]));
    cr_assert_eq(out[5], 1.0f);
    cr_assert_eq(out[6], 1.0f);
    cr_assert(ulp_err(out[7], M_E) <= 1.0);
    cr_assert(ulp_err(out[9], exp((double)88.7f)) <= 2.0, "exp(88.7f) = %g", out[9]);
}

Test(kernels_ops, silu_mul_vs_ref) {
    need_path(CB_PATH_AVX512);
    const int ns[] = { 1, 15, 17, 63, 65, 127, 513, 70001 };
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        int n = ns[a];
        float *g = make_floats((size_t)n + 1, 1), *u = make_floats((size_t)n, 2);
        for (int i = 0; i <= n; i++) g[i] *= 30.0f;
        float *oa = malloc((size_t)n * 4 + 4), *orf = malloc((size_t)n * 4);
        cb_silu_mul(n, g + 1, u, oa + 1);
        cb_silu_mul_ref(n, g + 1, u, orf);
        for (int i = 0; i < n; i++)
            cr_assert(fabsf(oa[1 + i] - orf[i]) <= 4e-7f * fabsf(orf[i]) + 1e-30f, "n=%d i=%d %g vs %g", n, i,
                      oa[1 + i], orf[i]);
        free(g);
        free(u);
        free(oa);
        free(orf);
    }
}

Test(kernels_ops, softmax_vs_ref) {
    need_path(CB_PATH_AVX512);
    const int ns[] = { 1, 15, 17, 63, 65, 127, 513 };
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        int n = ns[a];
        float *x = make_floats((size_t)n + 1, 5), *r = malloc((size_t)n * 4);
        for (int i = 0; i <= n; i++) x[i] *= 20.0f;
        if (n > 3) x[3] = -INFINITY; /* masked position */
        memcpy(r, x + 1, (size_t)n * 4);
        cb_softmax(n, x + 1);
        cb_softmax_ref(n, r);
        for (int i = 0; i < n; i++)
            cr_assert(fabsf(x[1 + i] - r[i]) <= 1e-6f * fabsf(r[i]) + 1e-38f, "n=%d i=%d %g vs %g", n, i, x[1 + i], r[i]);
        if (n > 3) cr_assert_eq(x[3], 0.0f);
        free(x);
        free(r);
    }
}

Test(kernels_ops, add_and_bias_vs_ref) {
    need_path(CB_PATH_AVX512);
    for (int b = 0; b < NRAGGED; b++)
        for (int d = 0; d < 3; d++) {
            int n = RAGGED[b], M = 3, ld = n + 1;
            float *y = make_floats((size_t)M * ld + 1, 1), *yr = malloc(((size_t)M * ld + 1) * 4);
            memcpy(yr, y, ((size_t)M * ld + 1) * 4);
            test_weight bias = make_weight(WDT[d], 1, n, 2);
            cb_add_bias(M, y + 1, ld, &bias.w);
            cb_add_bias_ref(M, yr + 1, ld, &bias.w);
            float *a = make_floats((size_t)n, 3);
            cb_add(n, y + 1, a);
            cb_add_ref(n, yr + 1, a);
            cr_assert_eq(memcmp(y, yr, ((size_t)M * ld + 1) * 4), 0, "n=%d dtype %s", n, cb_dtype_name(WDT[d]));
            free(y);
            free(yr);
            free(a);
            free_weight(&bias);
        }
}

/* Same operation order as the ref: bit-identical, including the carried state, over two calls. */
Test(kernels_ops, conv1d_causal_vs_ref) {
    need_path(CB_PATH_AVX512);
    const int Cs[] = { 1, 15, 17, 63, 65, 513 }, Ts[] = { 1, 5, 64 }, Ks[] = { 1, 2, 4 };
    for (size_t a = 0; a < sizeof Cs / sizeof Cs[0]; a++)
        for (size_t b = 0; b < sizeof Ts / sizeof Ts[0]; b++)
            for (size_t c = 0; c < sizeof Ks / sizeof Ks[0]; c++) {
                int C = Cs[a], T = Ts[b], K = Ks[c], ld = C + 3;
                cb_dtype dt = WDT[(a + b) % 3];
                test_weight w = make_weight(dt, C, K, 1), bias = make_weight(dt, 1, C, 2);
                float *x = make_floats((size_t)T * ld + 1, 3);
                size_t ns = (size_t)C * (K > 1 ? K - 1 : 1);
                float *sa = make_floats(ns, 4), *sr = malloc(ns * 4);
                memcpy(sr, sa, ns * 4);
                float *ya = calloc((size_t)T * ld, 4), *yr = calloc((size_t)T * ld, 4);
                for (int call = 0; call < 2; call++) {
                    const cb_weight *bp = call ? NULL : &bias.w;
                    cb_conv1d_causal(T, C, K, x + 1, ld, &w.w, bp, sa, ya, ld);
                    cb_conv1d_causal_ref(T, C, K, x + 1, ld, &w.w, bp, sr, yr, ld);
                    cr_assert_eq(memcmp(ya, yr, (size_t)T * ld * 4), 0, "y differs C=%d T=%d K=%d", C, T, K);
                    cr_assert_eq(memcmp(sa, sr, ns * 4), 0, "state differs C=%d T=%d K=%d", C, T, K);
                }
                free(x);
                free(sa);
                free(sr);
                free(ya);
                free(yr);
                free_weight(&w);
                free_weight(&bias);
            }
}

/* The row / elementwise ops parallelise over independent rows / channels / elements: 1 and 2 threads must give
 * bit-identical results (sizes chosen above their OpenMP thresholds). */
Test(kernels_ops, threads_identical) {
    need_path(CB_PATH_AVX512);
    int saved = omp_get_max_threads();
    const int T = 64, C = 8448, K = 4, n = 4096, rows = 40;
    test_weight cw = make_weight(CB_BF16, C, K, 1), nw = make_weight(CB_F32, 1, n, 2);
    float *x = make_floats((size_t)T * C, 3), *st0 = make_floats((size_t)C * (K - 1), 4);
    float *out[2], *st[2], *nrm[2], *silu[2];
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r + 1);
        out[r] = malloc((size_t)T * C * 4);
        st[r] = malloc((size_t)C * (K - 1) * 4);
        memcpy(st[r], st0, (size_t)C * (K - 1) * 4);
        cb_conv1d_causal(T, C, K, x, C, &cw.w, NULL, st[r], out[r], C);
        nrm[r] = malloc((size_t)rows * n * 4);
        cb_rmsnorm(rows, n, x, n, &nw.w, 1e-5, nrm[r], n);
        silu[r] = malloc((size_t)T * C * 4);
        cb_silu_mul((int64_t)T * C / 2, x, x + (size_t)T * C / 2, silu[r]);
    }
    omp_set_num_threads(saved);
    cr_assert_eq(memcmp(out[0], out[1], (size_t)T * C * 4), 0, "conv1d differs");
    cr_assert_eq(memcmp(st[0], st[1], (size_t)C * (K - 1) * 4), 0, "conv1d state differs");
    cr_assert_eq(memcmp(nrm[0], nrm[1], (size_t)rows * n * 4), 0, "rmsnorm differs");
    cr_assert_eq(memcmp(silu[0], silu[1], (size_t)T * C / 2 * 4), 0, "silu_mul differs");
    for (int r = 0; r < 2; r++) free(out[r]), free(st[r]), free(nrm[r]), free(silu[r]);
    free(x);
    free(st0);
    free_weight(&cw);
    free_weight(&nw);
}

/* Per-thread scratch (engines/kernels/thread_scratch.h): 64-byte aligned, reused while big enough, grown
 * otherwise; a thread's buffers are freed when it exits (under `make asan` LeakSanitizer checks that: the
 * OpenMP teams of tests with 3 and 7 threads used to leak them). */
static _Thread_local cb_tscratch t_test_scratch[2];

static void *scratch_thread(void *arg) {
    (void)arg;
    char *a = cb_tscratch_get(&t_test_scratch[0], 100), *b = cb_tscratch_get(&t_test_scratch[1], 5000);
    if (!a || !b || ((uintptr_t)a | (uintptr_t)b) % 64) return NULL;
    memset(a, 1, 100);
    memset(b, 2, 5000);
    return a;
}

Test(kernels, thread_scratch_aligned_grown_and_freed_at_thread_exit) {
    char *p = cb_tscratch_get(&t_test_scratch[0], 100);
    cr_assert(p && (uintptr_t)p % 64 == 0);
    cr_assert_eq(cb_tscratch_get(&t_test_scratch[0], 64), p, "a smaller request reuses the buffer");
    char *q = cb_tscratch_get(&t_test_scratch[0], 1 << 20);
    cr_assert(q && (uintptr_t)q % 64 == 0);
    memset(q, 3, 1 << 20);
    for (int i = 0; i < 4; i++) {
        pthread_t th;
        void *ret = NULL;
        cr_assert_eq(pthread_create(&th, NULL, scratch_thread, NULL), 0);
        cr_assert_eq(pthread_join(th, &ret), 0);
        cr_assert(ret != NULL, "thread %d: scratch missing or misaligned", i);
    }
}
