/* 8-bit weights: exact fp8 E4M3 codes (all 256), int8 rounding, per-row quantisation bounds, and the
 * 8-bit GEMMs: AVX-512 vs portable twins on ragged sizes for both formats and both modes, 1 vs 2
 * threads bit-identical, and the dequantised GEMM vs the fp32 GEMM within each format's error bound. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/gemm8.h"

/* Independent fp8 decoder from the OCP definition (bias 7, subnormal step 2^-9, S.1111.111 NaN). */
static double fp8_spec(int c) {
    int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
    if (e == 15 && m == 7) return NAN;
    double v = e == 0 ? m * pow(2, -9) : (1 + m / 8.0) * pow(2, e - 7);
    return s ? -v : v;
}

Test(quant, fp8_decode_all_codes) {
    for (int c = 0; c < 256; c++) {
        double want = fp8_spec(c);
        float got = cb_fp8_to_f32((uint8_t)c);
        if (isnan(want)) cr_assert(isnan(got), "code %#x must be NaN", c);
        else cr_assert_eq((double)got, want, "code %#x: %g != %g", c, (double)got, want);
    }
    cr_assert_eq(cb_fp8_to_f32(0x7e), 448.0f);
    cr_assert_eq(cb_fp8_to_f32(0x01), 0x1p-9f);
}

Test(quant, fp8_roundtrip_and_rne) {
    for (int c = 0; c < 256; c++) {
        float v = cb_fp8_to_f32((uint8_t)c);
        if (isnan(v)) { cr_assert_eq(cb_f32_to_fp8(v) & 0x7f, CB_FP8_NAN); continue; }
        if (c == 0x80) { cr_assert_eq(cb_f32_to_fp8(v), 0x80); continue; } /* -0 keeps its sign */
        cr_assert_eq(cb_f32_to_fp8(v), c, "code %#x does not round-trip", c);
    }
    /* Every finite code pair (a < b adjacent): values strictly between go to the nearer, the midpoint to
     * the even code (even mantissa). Checked on the positive codes 0..0x7e. */
    for (int c = 0; c < 0x7e; c++) {
        float a = cb_fp8_to_f32((uint8_t)c), b = cb_fp8_to_f32((uint8_t)(c + 1));
        float mid = (a + b) / 2; /* exact in fp32 */
        int even = (c & 1) ? c + 1 : c;
        cr_assert_eq(cb_f32_to_fp8(mid), even, "midpoint of %#x/%#x", c, c + 1);
        cr_assert_eq(cb_f32_to_fp8(nextafterf(mid, 0)), c);
        cr_assert_eq(cb_f32_to_fp8(nextafterf(mid, 1000)), c + 1);
        cr_assert_eq(cb_f32_to_fp8(-nextafterf(mid, 0)), c | 0x80);
    }
    /* Saturation, never NaN for finite or infinite inputs. */
    cr_assert_eq(cb_f32_to_fp8(449.0f), 0x7e);
    cr_assert_eq(cb_f32_to_fp8(1e30f), 0x7e);
    cr_assert_eq(cb_f32_to_fp8(-INFINITY), 0xfe);
    cr_assert_eq(cb_f32_to_fp8(NAN) & 0x7f, 0x7f);
    cr_assert_eq(cb_f32_to_fp8(1e-30f), 0x00);
    cr_assert_eq(cb_f32_to_fp8(0x1p-10f), 0x00);                  /* half the smallest subnormal: tie to even 0 */
    cr_assert_eq(cb_f32_to_fp8(nextafterf(0x1p-10f, 1)), 0x01);
}

Test(quant, int8_rounding) {
    cr_assert_eq(cb_f32_to_i8(0.5f), 0);
    cr_assert_eq(cb_f32_to_i8(1.5f), 2);
    cr_assert_eq(cb_f32_to_i8(2.5f), 2);
    cr_assert_eq(cb_f32_to_i8(-2.5f), -2);
    cr_assert_eq(cb_f32_to_i8(126.6f), 127);
    cr_assert_eq(cb_f32_to_i8(300.0f), 127);
    cr_assert_eq(cb_f32_to_i8(-300.0f), -127);
    cr_assert_eq(cb_f32_to_i8(NAN), 0);
}

static float frand(cb_rng *r) { return cb_rng_uniform(r); }

/* Per-row quantisation: error of each element within half a quantisation step of its row. */
Test(quant, quantize_rows_bounds) {
    const int64_t R = 37, C = 101;
    cb_rng rng = { 7 };
    uint16_t *src = malloc(R * C * 2);
    for (int64_t i = 0; i < R * C; i++) src[i] = cb_f32_to_bf16(frand(&rng) * (float)(1 + i % 5));
    memset(src + 3 * C, 0, C * 2); /* an all-zero row */
    uint8_t *q = malloc(R * C);
    float *s = malloc(R * sizeof(float));
    cb_dtype fmts[] = { CB_F8_E4M3, CB_I8 };
    for (int f = 0; f < 2; f++) {
        cr_assert_eq(cb_quantize_rows(src, CB_BF16, R, C, fmts[f], q, s, NULL), 0);
        for (int64_t r = 0; r < R; r++) {
            float amax = 0;
            for (int64_t k = 0; k < C; k++) amax = fmaxf(amax, fabsf(cb_bf16_to_f32(src[r * C + k])));
            for (int64_t k = 0; k < C; k++) {
                float w = cb_bf16_to_f32(src[r * C + k]);
                float dq = fmts[f] == CB_I8 ? s[r] * (int8_t)q[r * C + k] : s[r] * cb_fp8_to_f32(q[r * C + k]);
                /* int8: half a step (amax/254); fp8: half an ulp of 3 mantissa bits (2^-4 relative) or half
                 * the subnormal step (scale·2^-10) */
                double bound = fmts[f] == CB_I8 ? amax / 254.0 * 1.0001 : fmax(fabs(w) / 16.0, s[r] * 0x1p-10) * 1.0001;
                cr_assert_leq(fabs(dq - w), bound + 1e-12, "fmt %d row %lld col %lld: %g vs %g", f, (long long)r,
                              (long long)k, (double)dq, (double)w);
            }
        }
        cr_assert_eq(s[3], 1.0f);
    }
    float bad[2] = { 1.0f, NAN };
    cb_err e;
    cr_assert_eq(cb_quantize_rows(bad, CB_F32, 1, 2, CB_I8, q, s, &e), -1);
    cr_assert(strstr(e.msg, "row 0"), "%s", e.msg);
    cr_assert_eq(cb_quantize_rows(bad, CB_I32, 1, 2, CB_I8, q, s, &e), -1);
    free(src); free(q); free(s);
}

typedef struct {
    cb_weight w;
    uint8_t *q;
    float *s, *wf; /* original fp32 weights */
} qweight;

static qweight make_q(cb_dtype fmt, int64_t N, int64_t K, uint64_t seed) {
    qweight o;
    cb_rng rng = { seed };
    o.wf = malloc(N * K * sizeof(float));
    o.q = malloc(N * K + 1);
    o.s = malloc(N * sizeof(float));
    for (int64_t i = 0; i < N * K; i++) o.wf[i] = frand(&rng) * (float)(1 + (i / K) % 3);
    cr_assert_eq(cb_quantize_rows(o.wf, CB_F32, N, K, fmt, o.q, o.s, NULL), 0);
    o.w = (cb_weight){ .data = o.q, .dtype = fmt, .rows = N, .cols = K, .scale = o.s };
    return o;
}
static void free_q(qweight *o) { free(o->wf); free(o->q); free(o->s); }

typedef void (*gemm_fn)(int, const float *, int64_t, const cb_weight *, float *, int64_t, bool);

static float *run(gemm_fn f, int M, const float *X, int64_t ldx, const cb_weight *W, int threads, bool acc) {
    float *Y = malloc((size_t)M * (W->rows + 3) * sizeof(float));
    for (int64_t i = 0; i < M * (W->rows + 3); i++) Y[i] = 0.25f;
    omp_set_num_threads(threads);
    f(M, X, ldx, W, Y, W->rows + 3, acc);
    omp_set_num_threads(2);
    return Y;
}

static const int MS[] = { 1, 3, 17, 40 };
static const int64_t NS[] = { 1, 17, 65 };
static const int64_t KS[] = { 1, 15, 63, 130, 257 };

static void twins(bool fast, bool vnni) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("CPU lacks AVX-512");
    if ((fast || vnni) && !__builtin_cpu_supports("avx512vnni")) cr_skip_test("CPU lacks AVX512_VNNI");
    cr_assert_eq(cb_kernels_set_path(cb_kernels_best_path()), 0);
    cb_kernels_set_vnni(vnni);
    cb_dtype fmts[] = { CB_F8_E4M3, CB_I8 };
    cb_rng rng = { 11 };
    for (int f = 0; f < 2; f++)
        for (size_t a = 0; a < sizeof MS / sizeof *MS; a++)
            for (size_t b = 0; b < sizeof NS / sizeof *NS; b++)
                for (size_t c = 0; c < sizeof KS / sizeof *KS; c++) {
                    int M = MS[a];
                    int64_t N = NS[b], K = KS[c], ldx = K + 5;
                    qweight q = make_q(fmts[f], N, K, 100 + a * 31 + b * 7 + c);
                    float *X = malloc(M * ldx * sizeof(float));
                    for (int64_t i = 0; i < M * ldx; i++) X[i] = frand(&rng);
                    bool acc = (a + c) % 2;
                    float *yr = run(fast ? cb_matmul_q8_fast_ref : cb_matmul_q8_ref, M, X, ldx, &q.w, 2, acc);
                    float *y1 = run(fast ? cb_matmul_q8_fast_avx512 : cb_matmul_q8_avx512, M, X, ldx, &q.w, 1, acc);
                    float *y2 = run(fast ? cb_matmul_q8_fast_avx512 : cb_matmul_q8_avx512, M, X, ldx, &q.w, 2, acc);
                    for (int m = 0; m < M; m++)
                        for (int64_t n = 0; n < N; n++) {
                            int64_t i = m * (N + 3) + n;
                            cr_assert_eq(memcmp(&y1[i], &y2[i], 4), 0, "1 vs 2 threads differ");
                            /* bound: fp32 reassociation, relative to Σ|x||w| */
                            double mag = 0.25;
                            for (int64_t k = 0; k < K; k++) mag += fabs(X[m * ldx + k] * q.wf[n * K + k]) * 1.1;
                            bool exact_int = fast && fmts[f] == CB_I8;
                            double tol = exact_int ? 0 : 1e-6 * mag;
                            cr_assert_leq(fabs(y1[i] - yr[i]), tol, "fmt %d fast %d M %d N %lld K %lld: %g vs %g",
                                          f, fast, M, (long long)N, (long long)K, (double)y1[i], (double)yr[i]);
                        }
                    free(yr); free(y1); free(y2); free(X); free_q(&q);
                }
    cb_kernels_set_vnni(true);
}

/* Exact mode: int8 decode on VNNI (24-bit fixed-point activations) and the fp32 loop a CPU without VNNI
 * takes; fast mode's int8 needs VNNI on this path. */
Test(quant, gemm_exact_avx512_vs_portable) { twins(false, true); }
Test(quant, gemm_exact_avx512_no_vnni_vs_portable) { twins(false, false); }
Test(quant, gemm_fast_avx512_vs_portable) { twins(true, true); }

/* The fixed-point int8 decode on rows the format cannot hold: a NaN or an infinity sends the call to the fp32
 * loop (bit-identical to VNNI off, the NaN propagated); an all-zero row gives zeros; a row spanning 2^40
 * stays within the twins' bound (its small elements fall below 2^-24 of the largest). */
Test(quant, gemm_exact_int8_fixed_point_edges) {
    if (cb_kernels_best_path() < CB_PATH_AVX512 || !__builtin_cpu_supports("avx512vnni"))
        cr_skip_test("CPU lacks AVX-512 with VNNI");
    cr_assert_eq(cb_kernels_set_path(cb_kernels_best_path()), 0);
    const int M = 3;
    const int64_t N = 17, K = 130;
    qweight q = make_q(CB_I8, N, K, 77);
    float X[3 * 130];
    cb_rng rng = { 5 };
    for (int i = 0; i < M * K; i++) X[i] = frand(&rng);
    for (int64_t k = 0; k < K; k++) X[K + k] = 0.0f;                       /* row 1: zeros */
    for (int64_t k = 0; k < K; k++) X[2 * K + k] = ldexpf(X[2 * K + k], (int)(k % 41)); /* row 2: 2^0 .. 2^40 */
    float *yv = run(cb_matmul_q8_avx512, M, X, K, &q.w, 2, false), *yr = run(cb_matmul_q8_ref, M, X, K, &q.w, 2, false);
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double mag = 0.25;
            for (int64_t k = 0; k < K; k++) mag += fabs(X[m * K + k] * q.wf[n * K + k]) * 1.1;
            float a = yv[m * (N + 3) + n], b = yr[m * (N + 3) + n];
            if (m == 1) cr_assert_eq(a, 0.0f, "zero row: %g", (double)a);
            cr_assert_leq(fabs(a - b), 1e-6 * mag, "row %d out %lld: %g vs %g", m, (long long)n, (double)a, (double)b);
        }
    X[5] = NAN, X[2 * K + 7] = INFINITY;
    float *y1 = run(cb_matmul_q8_avx512, M, X, K, &q.w, 2, false);
    cb_kernels_set_vnni(false);
    float *y0 = run(cb_matmul_q8_avx512, M, X, K, &q.w, 2, false);
    cb_kernels_set_vnni(true);
    cr_assert_eq(memcmp(y1, y0, (size_t)M * (N + 3) * sizeof(float)), 0, "NaN / inf rows: VNNI on and off differ");
    cr_assert(isnan(y1[0]), "the NaN reaches the output");
    free(yv); free(yr); free(y1); free(y0); free_q(&q);
}

/* Several weights of one K on the same activations in one call (q/k/v, gate/up at decode): each output bit
 * for bit what one call per weight gives, on 1 and 2 threads, both formats, both modes, on the portable path
 * and the AVX-512 one, sizes across the fork threshold and the tail, mixed fp8 / int8 in exact mode. */
static void multi_case(bool fast, int M, const int64_t *rows, int n, int64_t K, const cb_dtype *fmt, uint64_t seed) {
    qweight q[4];
    const cb_weight *W[4];
    float *Y[4], *Z[4];
    int64_t ld[4];
    cb_rng rng = { seed };
    const int64_t ldx = K + 3;
    float *X = malloc((size_t)M * ldx * sizeof(float));
    for (int64_t i = 0; i < M * ldx; i++) X[i] = frand(&rng);
    for (int i = 0; i < n; i++) {
        q[i] = make_q(fmt[i], rows[i], K, seed + 13 * (uint64_t)i);
        W[i] = &q[i].w, ld[i] = rows[i] + 2;
        Z[i] = run(fast ? cb_matmul_q8_fast : cb_matmul_q8, M, X, ldx, W[i], 2, false);
    }
    for (int threads = 1; threads <= 2; threads++) {
        for (int i = 0; i < n; i++) {
            Y[i] = malloc((size_t)M * ld[i] * sizeof(float));
            for (int64_t j = 0; j < M * ld[i]; j++) Y[i][j] = 0.25f;
        }
        omp_set_num_threads(threads);
        (fast ? cb_matmul_q8_fast_multi : cb_matmul_q8_multi)(M, X, ldx, n, W, Y, ld);
        omp_set_num_threads(2);
        for (int i = 0; i < n; i++) {
            for (int m = 0; m < M; m++)
                for (int64_t r = 0; r < rows[i]; r++)
                    cr_assert_eq(memcmp(&Y[i][m * ld[i] + r], &Z[i][m * (rows[i] + 3) + r], 4), 0,
                                 "fast %d M %d weight %d row %lld K %lld threads %d: %g vs %g", fast, M, i, (long long)r,
                                 (long long)K, threads, (double)Y[i][m * ld[i] + r], (double)Z[i][m * (rows[i] + 3) + r]);
            free(Y[i]);
        }
    }
    for (int i = 0; i < n; i++) free(Z[i]), free_q(&q[i]);
    free(X);
}

Test(quant, multi_bit_identical_to_single_calls) {
    const cb_kpath paths[2] = { CB_PATH_PORTABLE, cb_kernels_best_path() };
    const int64_t small[3] = { 17, 5, 5 }, big[2] = { 300, 257 }, one[1] = { 65 };
    const cb_dtype f8[3] = { CB_F8_E4M3, CB_F8_E4M3, CB_F8_E4M3 }, i8[3] = { CB_I8, CB_I8, CB_I8 },
                   mix[2] = { CB_F8_E4M3, CB_I8 };
    for (int p = 0; p < 2; p++) {
        cr_assert_eq(cb_kernels_set_path(paths[p]), 0);
        for (int fast = 0; fast <= 1; fast++)
            for (int M = 1; M <= 5; M += 2) {
                multi_case(fast, M, small, 3, 130, f8, 7);
                multi_case(fast, M, small, 3, 130, i8, 8);
                multi_case(fast, M, big, 2, 513, f8, 9); /* past the fork threshold */
                multi_case(fast, M, big, 2, 513, i8, 10);
                multi_case(fast, M, one, 1, 63, f8, 11);
                if (!fast) multi_case(false, M, big, 2, 513, mix, 12);
            }
    }
    cr_assert_eq(cb_kernels_set_path(cb_kernels_best_path()), 0);
}

/* The int8 decode on VNNI takes 4 weight rows per pass (docs/performance.md, "8-bit GEMV, several rows per
 * pass"), the fp32 loop one: each output bit for bit what the same kernel gives for that row alone (a 1-row
 * weight), for row counts that leave 1, 2 or 3 rows over in a thread's slice, on 1 and 2 threads (K large
 * enough that 2 threads do split the rows), int8 on VNNI (both modes), and fp8 with E4M3 subnormals in some
 * rows' blocks and int8 through the fp32 loop (exact mode, VNNI off), ragged K tails. */
Test(quant, rows_per_pass_bit_identical_to_single_rows) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("CPU lacks AVX-512");
    const bool vnni = __builtin_cpu_supports("avx512vnni");
    cr_assert_eq(cb_kernels_set_path(cb_kernels_best_path()), 0);
    static const int64_t ns[] = { 1, 3, 5, 17 }, ks[] = { 63, 130, 512, 33400, 100100 };
    cb_rng rng = { 31 };
    for (int variant = 0; variant < 5; variant++) { /* fp8 exact, fp8 fast, int8 exact VNNI / fp32, int8 fast */
        const bool fp8 = variant < 2, fast = variant == 1 || variant == 4, use_vnni = variant != 3;
        if (!fp8 && use_vnni && !vnni) continue; /* the fp32 loop (variant 3) is still covered */
        cb_kernels_set_vnni(use_vnni);
        gemm_fn f = fast ? cb_matmul_q8_fast_avx512 : cb_matmul_q8_avx512;
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
                const int64_t N = ns[a], K = ks[b];
                if (N * K > 600000) continue; /* the large K only for the few rows that need it to fork */
                qweight q = make_q(fp8 ? CB_F8_E4M3 : CB_I8, N, K, 500 + a * 11 + b);
                if (fp8)
                    for (int64_t n = 1; n < N; n += 3) q.q[n * K + (n * 37) % K] = (uint8_t)(0x80 * (n & 1) | 3);
                for (int M = 1; M <= 3; M++) {
                    float *X = malloc((size_t)(M * K) * sizeof(float));
                    for (int64_t i = 0; i < M * K; i++) X[i] = frand(&rng);
                    const bool acc = (M + b) % 2;
                    float *ys = malloc((size_t)(M * N) * sizeof(float));
                    for (int64_t n = 0; n < N; n++) {
                        cb_weight w1 = { .data = q.q + n * K, .dtype = q.w.dtype, .rows = 1, .cols = K,
                                         .scale = q.s + n };
                        float *y = run(f, M, X, K, &w1, 1, acc);
                        for (int m = 0; m < M; m++) ys[m * N + n] = y[m * 4];
                        free(y);
                    }
                    for (int threads = 1; threads <= 2; threads++) {
                        float *y = run(f, M, X, K, &q.w, threads, acc);
                        for (int m = 0; m < M; m++)
                            for (int64_t n = 0; n < N; n++)
                                cr_assert_eq(memcmp(&y[m * (N + 3) + n], &ys[m * N + n], 4), 0,
                                             "variant %d N %lld K %lld M %d threads %d row %lld: %a vs %a alone",
                                             variant, (long long)N, (long long)K, M, threads, (long long)n,
                                             (double)y[m * (N + 3) + n], (double)ys[m * N + n]);
                        free(y);
                    }
                    free(ys), free(X);
                }
                free_q(&q);
            }
    }
    cb_kernels_set_vnni(true);
}

/* Every one of the 256 fp8 codes (NaN codes as 0) through the exact GEMV (M = 1..3, the weight-streaming
 * decode) and the panel GEMM (M = 17), in 64-code blocks with and without E4M3 subnormals and in the ragged
 * tail, against the portable twin bit for bit: activations in {-1, 0, 1} with at most 64 nonzero per row
 * make every partial sum exact (multiples of 2^-9 below 2^15), so any order gives the same bits.
 * docs/quantization.md, "Subnormal codes". */
static uint8_t fp8_code_ok(uint64_t r) { uint8_t c = (uint8_t)r; return (c & 0x7f) == 0x7f ? 0 : c; }

Test(quant, fp8_every_code_exact_vs_portable) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("CPU lacks AVX-512");
    cr_assert_eq(cb_kernels_set_path(cb_kernels_best_path()), 0);
    const int64_t N = 256 + 64, K = 64 * 4 + 21, ldx = K;
    uint8_t *q = malloc((size_t)(N * K));
    float *s = malloc(sizeof(float) * (size_t)N);
    cb_rng rng = { 3 };
    for (int64_t n = 0; n < N; n++) {
        s[n] = 0.75f + 0.001f * (float)n;
        for (int64_t k = 0; k < K; k++) {
            uint8_t c;
            if (n < 256) c = fp8_code_ok((uint64_t)n); /* the row of one code */
            else if (n < 256 + 32) c = fp8_code_ok(cb_rng_next(&rng)); /* every code mixed */
            else c = (uint8_t)(cb_rng_next(&rng) & 0x87); /* subnormals and zeros only */
            /* the first block of the mixed rows: one row without subnormals (fast blocks), one with a single one */
            if (n >= 256 && n < 256 + 16 && k < 64 && (c & 0x78) == 0) c |= 0x08;
            if (n >= 256 && n < 256 + 8 && k == 37) c = 0x83;
            q[n * K + k] = c;
        }
    }
    cb_weight w = { .data = q, .dtype = CB_F8_E4M3, .rows = N, .cols = K, .scale = s };
    const int Ms[] = { 1, 2, 3, 17 };
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
        const int M = Ms[mi];
        float *X = calloc((size_t)(M * ldx), sizeof(float));
        for (int m = 0; m < M; m++)
            for (int j = 0; j < 64; j++) {
                int64_t k = (int64_t)(cb_rng_next(&rng) % (uint64_t)K);
                X[m * ldx + k] = (cb_rng_next(&rng) & 1) ? 1.0f : -1.0f;
            }
        X[0] = 1.0f, X[K - 1] = -1.0f; /* the first block and the tail always count */
        for (int acc = 0; acc < 2; acc++) {
            float *yr = run(cb_matmul_q8_ref, M, X, ldx, &w, 2, acc);
            float *y1 = run(cb_matmul_q8_avx512, M, X, ldx, &w, 1, acc);
            float *y2 = run(cb_matmul_q8_avx512, M, X, ldx, &w, 2, acc);
            for (int m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    int64_t i = m * (N + 3) + n;
                    cr_assert_eq(memcmp(&y1[i], &yr[i], 4), 0, "M %d row %lld (code %#x): %a vs portable %a", M,
                                 (long long)n, q[n * K], (double)y1[i], (double)yr[i]);
                    cr_assert_eq(memcmp(&y1[i], &y2[i], 4), 0, "1 vs 2 threads differ");
                }
            free(yr), free(y1), free(y2);
        }
        free(X);
    }
    free(q), free(s);
}

/* Many subnormal codes with arbitrary activations: weights whose codes are E4M3 subnormals (and normal codes
 * of exponent <= 8) against the same weights as codes worth 2^6 times as much (all normal: the clean decode)
 * with the scales divided by 2^6. Every product and partial sum differs by that power of two only, so the
 * GEMV results must agree bit for bit: the subnormal-safe decode gives what the clean decode gives. */
Test(quant, fp8_many_subnormals_bit_identical) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("CPU lacks AVX-512");
    cr_assert_eq(cb_kernels_set_path(cb_kernels_best_path()), 0);
    const int64_t N = 40, K = 64 * 5 + 7;
    uint8_t *qs = malloc((size_t)(N * K)), *qn = malloc((size_t)(N * K));
    float *ss = malloc(sizeof(float) * (size_t)N), *sn = malloc(sizeof(float) * (size_t)N);
    cb_rng rng = { 21 };
    for (int64_t n = 0; n < N; n++) {
        ss[n] = 0.5f + frand(&rng) * 0.25f, sn[n] = ss[n] * 0x1p-6f;
        const int every = (int)(n % 4) * 3 + 1; /* 1 in 1, 4, 7, 10 codes subnormal */
        for (int64_t k = 0; k < K; k++) {
            uint64_t r = cb_rng_next(&rng);
            uint8_t c = (k % every == 0) ? (uint8_t)((r >> 8 & 0x80) | (1 + r % 7)) : (uint8_t)((r >> 8 & 0x80) | (1 + r % 71));
            qs[n * K + k] = c;
            float v = cb_fp8_to_f32(c) * 0x1p6f;
            uint8_t c2 = cb_f32_to_fp8(v);
            cr_assert_eq(cb_fp8_to_f32(c2), v, "code %#x times 2^6 must be a code", c);
            cr_assert_neq(c2 & 0x78, 0, "the twin of %#x must be normal", c);
            qn[n * K + k] = c2;
        }
    }
    cb_weight ws = { .data = qs, .dtype = CB_F8_E4M3, .rows = N, .cols = K, .scale = ss };
    cb_weight wn = { .data = qn, .dtype = CB_F8_E4M3, .rows = N, .cols = K, .scale = sn };
    for (int M = 1; M <= 4; M += 3) {
        float *X = malloc(sizeof(float) * (size_t)(M * K));
        for (int64_t i = 0; i < M * K; i++) X[i] = frand(&rng) * (float)(1 + i % 7);
        float *y1 = run(cb_matmul_q8_avx512, M, X, K, &ws, 2, false);
        float *y2 = run(cb_matmul_q8_avx512, M, X, K, &wn, 2, false);
        float *yr = run(cb_matmul_q8_ref, M, X, K, &ws, 2, false);
        for (int m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                int64_t i = m * (N + 3) + n;
                cr_assert_eq(memcmp(&y1[i], &y2[i], 4), 0, "M %d row %lld: %a vs %a", M, (long long)n, (double)y1[i],
                             (double)y2[i]);
                cr_assert_leq(fabsf(y1[i] - yr[i]), 1e-5f * (1.0f + fabsf(yr[i])), "vs portable");
            }
        free(X), free(y1), free(y2), free(yr);
    }
    free(qs), free(qn), free(ss), free(sn);
}

/* Dequantised GEMM vs the fp32 GEMM on the original weights: |Δy| ≤ Σ_k |x_k|·|Δw_k|, with the per-element
 * weight bound of the format (checked in quantize_rows_bounds) + fp32 slack; fast modes add the
 * activation rounding (bf16: 2^-9 relative; int8: half a step max|x|/254). */
Test(quant, gemm_vs_fp32_within_format_bound) {
    cb_kernels_set_path(cb_kernels_best_path());
    const int M = 5;
    const int64_t N = 33, K = 300;
    cb_rng rng = { 5 };
    cb_dtype fmts[] = { CB_F8_E4M3, CB_I8 };
    for (int f = 0; f < 2; f++) {
        qweight q = make_q(fmts[f], N, K, 77 + f);
        float *X = malloc(M * K * sizeof(float));
        for (int64_t i = 0; i < M * K; i++) X[i] = frand(&rng);
        for (int fast = 0; fast < 2; fast++) {
            float *Y = run(fast ? cb_matmul_q8_fast : cb_matmul_q8, M, X, K, &q.w, 2, false);
            for (int m = 0; m < M; m++) {
                float xmax = 0;
                for (int64_t k = 0; k < K; k++) xmax = fmaxf(xmax, fabsf(X[m * K + k]));
                for (int64_t n = 0; n < N; n++) {
                    double exact = 0, bound = 0, amax = 0;
                    for (int64_t k = 0; k < K; k++) amax = fmax(amax, fabs(q.wf[n * K + k]));
                    for (int64_t k = 0; k < K; k++) {
                        double x = X[m * K + k], w = q.wf[n * K + k];
                        exact += x * w;
                        double dw = fmts[f] == CB_I8 ? amax / 254 : fmax(fabs(w) / 16, amax / 448 * 0x1p-10);
                        double dx = !fast ? 0 : fmts[f] == CB_I8 ? xmax / 254.0 : fabs(x) * 0x1p-9;
                        bound += fabs(x) * dw + dx * (fabs(w) + dw) + 1e-6 * fabs(x * w);
                    }
                    cr_assert_leq(fabs(Y[m * (N + 3) + n] - exact), bound, "fmt %d fast %d", f, fast);
                    /* and not trivially: the bound is far below the output scale */
                }
            }
            free(Y);
        }
        free(X);
        free_q(&q);
    }
}

#include "../engines/model/quantize.h"

/* A hand-built one-layer model: linear weights become 8-bit, embeddings / norms / SSM parameters stay,
 * a tied lm_head stays with the embedding, bytes by dtype add up, release frees everything. */
Test(quant, model_quantize_scope_and_bytes) {
    cb_model m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "hand");
    m.cfg.n_layers = 2;
    const int d = 32, ff = 48;
    uint16_t *buf = calloc(100000, 2);
    cb_rng rng = { 3 };
    for (int i = 0; i < 100000; i++) buf[i] = cb_f32_to_bf16(frand(&rng));
    size_t off = 0;
#define W(r, c) ((cb_weight){ .data = buf + (off += (size_t)(r) * (c)) - (size_t)(r) * (c), .dtype = CB_BF16, .rows = (r), .cols = (c) })
    m.embed = W(64, d);
    m.lm_head = m.embed;
    m.final_norm = W(1, d);
    m.layers[0].kind = CB_MIXER_ATTENTION;
    m.layers[0].in_norm = W(1, d);
    m.layers[0].attn.q = W(d, d); m.layers[0].attn.k = W(16, d); m.layers[0].attn.v = W(16, d); m.layers[0].attn.o = W(d, d);
    m.layers[0].ff_norm = W(1, d);
    m.layers[0].mlp.gate = W(ff, d); m.layers[0].mlp.up = W(ff, d); m.layers[0].mlp.down = W(d, ff);
    m.layers[1].kind = CB_MIXER_MAMBA2;
    m.layers[1].in_norm = W(1, d);
    m.layers[1].mamba.in_proj = W(150, d); m.layers[1].mamba.out_proj = W(d, 64);
    m.layers[1].mamba.conv_w = W(96, 4); m.layers[1].mamba.A_log = W(1, 4); m.layers[1].mamba.D = W(1, 4);
    m.layers[1].mamba.dt_bias = W(1, 4); m.layers[1].mamba.norm = W(1, 64);
#undef W
    size_t before[CB_DTYPE_COUNT], after[CB_DTYPE_COUNT];
    cb_weight_bytes_by_dtype(&m, before);
    m.weight_bytes = before[CB_BF16];
    cr_assert_eq(before[CB_BF16], off * 2);
    cr_assert_eq(cb_model_quantize(&m, CB_F8_E4M3, NULL), 0);
    cb_weight_bytes_by_dtype(&m, after);
    size_t lin = (size_t)d * d * 2 + 16 * d * 2 + ff * d * 3 + 150 * d + d * 64;
    size_t rows = d * 2 + 32 + ff * 2 + d + 150 + d;
    cr_assert_eq(after[CB_F8_E4M3], lin + rows * 4);
    cr_assert_eq(after[CB_BF16], (off - lin) * 2, "embeddings, norms and SSM parameters stay bf16");
    cr_assert_eq(m.weight_bytes, after[CB_BF16] + after[CB_F8_E4M3]);
    cr_assert_eq(m.lm_head.dtype, CB_BF16, "tied lm_head stays the embedding");
    cr_assert_eq(m.layers[1].mamba.A_log.dtype, CB_BF16);
    cr_assert_eq(m.layers[0].attn.q.dtype, CB_F8_E4M3);
    cr_assert_not_null(m.layers[0].attn.q.scale);
    /* idempotent for the same format, refused for the other */
    cr_assert_eq(cb_model_quantize(&m, CB_F8_E4M3, NULL), 0);
    cb_err e;
    cr_assert_eq(cb_model_quantize(&m, CB_I8, &e), -1);
    cr_assert(strstr(e.msg, "layer 0 q_proj"), "%s", e.msg);
    cr_assert_eq(cb_model_quantize(&m, CB_BF16, &e), -1);
    cb_model_quant_release(&m);
    cr_assert_null(m.quant_owned);
    free(buf);
}

/* Pre-quantised F8_E4M3 checkpoint tensors: per-channel [out, 1] and per-tensor scalar scales. */
Test(quant, quantized_bind_layouts) {
    cb_model m;
    memset(&m, 0, sizeof m);
    uint8_t codes[6] = { 0x38, 0x40, 0xb8, 0x00, 0x7e, 0x01 };
    float sc[3] = { 0.5f, 2.0f, 0.25f };
    uint16_t sc1 = cb_f32_to_bf16(3.0f);
    cb_tensor w = { .name = "x.weight", .dtype = CB_F8_E4M3, .ndim = 2, .shape = { 3, 2 }, .data = codes };
    cb_tensor s = { .name = "x.weight_scale", .dtype = CB_F32, .ndim = 2, .shape = { 3, 1 }, .data = sc };
    cb_tensor s1 = { .name = "x.weight_scale", .dtype = CB_BF16, .ndim = 0, .data = &sc1 };
    cb_weight out;
    cr_assert_eq(cb_quantized_bind(&m, &w, &s, "x.weight", &out, NULL), 0);
    cr_assert_eq(out.rows, 3); cr_assert_eq(out.cols, 2);
    cr_assert_eq(out.scale[1], 2.0f);
    cr_assert(w.used && s.used);
    cr_assert_eq(cb_quantized_bind(&m, &w, &s1, "x.weight", &out, NULL), 0);
    cr_assert_eq(out.scale[2], 3.0f);
    /* y = scale · Σ x·q through the GEMM: row 0 codes 1.0, 2.0 → 0.5·(1 + 2·2)... with per-tensor 3 */
    float x[2] = { 1.0f, 2.0f }, y[3];
    cb_matmul_q8(1, x, 2, &out, y, 3, false);
    cr_assert_float_eq(y[0], 3.0f * (1.0f + 2.0f * 2.0f), 1e-6);
    cr_assert_float_eq(y[2], 3.0f * (448.0f + 2.0f * 0x1p-9f), 1e-3);
    cb_err e;
    cb_tensor bad = s;
    bad.shape[0] = 2;
    cr_assert_eq(cb_quantized_bind(&m, &w, &bad, "x.weight", &out, &e), -1);
    cr_assert(strstr(e.msg, "x.weight_scale"), "%s", e.msg);
    cr_assert_eq(cb_quantized_bind(&m, &w, NULL, "x.weight", &out, &e), -1);
    cb_model_quant_release(&m);
}

/* ---- AVX2 path (CPUs without AVX-512): the same contracts against the portable twins ---- */

#include "../engines/kernels/kernels_avx2.h"
#include <immintrin.h>

static bool avx2_begin(void) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) return false;
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX2), 0);
    return true;
}
static void avx2_end(void) { cr_assert_eq(cb_kernels_set_path(cb_kernels_best_path()), 0); }

/* Both formats against the portable twin on ragged sizes across the decode (M <= 16) and panel (M > 16)
 * kernels: within the reassociation bound (fast int8: bit for bit), 1 and 2 threads bit-identical,
 * accumulate on and off. A NaN in one activation row of the fast int8 case reaches the quantiser of both
 * twins alike. */
static void avx2_twins(bool fast) {
    if (!avx2_begin()) cr_skip_test("no AVX2 on this CPU");
    static const int ms[] = { 1, 2, 3, 5, 17, 64 };
    static const int64_t ns[] = { 1, 19, 67 }, ks[] = { 1, 7, 31, 33, 100, 513 };
    const cb_dtype fmts[] = { CB_F8_E4M3, CB_I8 };
    cb_rng rng = { 41 };
    gemm_fn ref = fast ? cb_matmul_q8_fast_ref : cb_matmul_q8_ref, f = fast ? cb_matmul_q8_fast_avx2 : cb_matmul_q8_avx2;
    for (int fi = 0; fi < 2; fi++)
        for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                    const int M = ms[a];
                    const int64_t N = ns[b], K = ks[c], ldx = K + 3;
                    qweight q = make_q(fmts[fi], N, K, 900 + a * 37 + b * 11 + c);
                    float *X = malloc((size_t)(M * ldx) * sizeof(float));
                    for (int64_t i = 0; i < M * ldx; i++) X[i] = frand(&rng) * (float)(1 + i % 3);
                    const bool exact_int = fast && fmts[fi] == CB_I8;
                    if (exact_int && M > 1) X[ldx + K / 2] = NAN;
                    for (int acc = 0; acc < 2; acc++) {
                        float *yr = run(ref, M, X, ldx, &q.w, 2, acc);
                        float *y1 = run(f, M, X, ldx, &q.w, 1, acc);
                        float *y2 = run(f, M, X, ldx, &q.w, 2, acc);
                        for (int m = 0; m < M; m++)
                            for (int64_t n = 0; n < N; n++) {
                                const int64_t i = m * (N + 3) + n;
                                cr_assert_eq(memcmp(&y1[i], &y2[i], 4), 0, "fmt %d M %d N %lld K %lld: 1 vs 2 threads",
                                             fi, M, (long long)N, (long long)K);
                                if (exact_int) {
                                    cr_assert_eq(memcmp(&y1[i], &yr[i], 4), 0, "int8 fast M %d N %lld K %lld: %a vs %a",
                                                 M, (long long)N, (long long)K, (double)y1[i], (double)yr[i]);
                                    continue;
                                }
                                double mag = 0.25;
                                for (int64_t k = 0; k < K; k++) mag += fabs(X[m * ldx + k] * q.wf[n * K + k]) * 1.1;
                                cr_assert_leq(fabs(y1[i] - yr[i]), 1e-6 * mag, "fmt %d fast %d M %d N %lld K %lld acc %d: %g vs %g",
                                              fi, fast, M, (long long)N, (long long)K, acc, (double)y1[i], (double)yr[i]);
                            }
                        for (int64_t n = N; n < N + 3; n++) cr_assert_eq(y1[n], 0.25f, "wrote past N");
                        free(yr), free(y1), free(y2);
                    }
                    free(X), free_q(&q);
                }
    avx2_end();
}

Test(quant, avx2_exact_vs_portable) { avx2_twins(false); }
Test(quant, avx2_fast_vs_portable) { avx2_twins(true); }

/* Fast int8 on shapes with K past a few cache lines and rows that fork: bit for bit the portable twin, through
 * the public entry point (the dispatch to the AVX2 kernel), activations of widely different magnitudes. */
Test(quant, avx2_fast_int8_bit_identical) {
    if (!avx2_begin()) cr_skip_test("no AVX2 on this CPU");
    static const int ms[] = { 1, 4, 16, 33 };
    static const int64_t ks[] = { 64, 4099 };
    cb_rng rng = { 43 };
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
            const int M = ms[a];
            const int64_t N = 301, K = ks[c];
            qweight q = make_q(CB_I8, N, K, 70 + a + c);
            float *X = malloc((size_t)(M * K) * sizeof(float));
            for (int64_t i = 0; i < M * K; i++) X[i] = ldexpf(frand(&rng), (int)(i % 23) - 11);
            float *yr = run(cb_matmul_q8_fast_ref, M, X, K, &q.w, 2, false);
            for (int threads = 1; threads <= 2; threads++) {
                float *y = run(cb_matmul_q8_fast, M, X, K, &q.w, threads, false);
                cr_assert_eq(memcmp(y, yr, (size_t)M * (size_t)(N + 3) * sizeof(float)), 0,
                             "M %d K %lld threads %d: not bit-identical to the portable twin", M, (long long)K, threads);
                free(y);
            }
            free(yr), free(X), free_q(&q);
        }
    avx2_end();
}

/* Every fp8 code (NaN codes as 0) decoded exactly: a K = 1 weight against x = 1 gives the code's value
 * times its scale exactly (subnormals and ±448 included), then the mixed-code matrix of
 * fp8_every_code_exact_vs_portable whose partial sums are exact in any order, bit for bit the portable twin,
 * on the decode and the panel kernels, both modes (x in {-1, 0, 1} is unchanged by the bf16 rounding). */
Test(quant, avx2_fp8_every_code_exact) {
    if (!avx2_begin()) cr_skip_test("no AVX2 on this CPU");
    uint8_t codes[256];
    float ones[64 * 1];
    for (int c = 0; c < 256; c++) codes[c] = fp8_code_ok((uint64_t)c);
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    float sc[256];
    for (int c = 0; c < 256; c++) sc[c] = 1.0f;
    cb_weight w1 = { .data = codes, .dtype = CB_F8_E4M3, .rows = 256, .cols = 1, .scale = sc };
    for (int M = 1; M <= 17; M += 16)
        for (int fast = 0; fast < 2; fast++) {
            float *y = run(fast ? cb_matmul_q8_fast_avx2 : cb_matmul_q8_avx2, M, ones, 1, &w1, 2, false);
            for (int m = 0; m < M; m++)
                for (int c = 0; c < 256; c++)
                    cr_assert_eq(y[m * 259 + c], cb_fp8_to_f32(codes[c]), "M %d fast %d code %#x: %a", M, fast, codes[c],
                                 (double)y[m * 259 + c]); /* -0 sums to +0, as in the twin */
            cr_assert_eq(y[0x7e], 448.0f);
            cr_assert_eq(y[0xfe], -448.0f);
            cr_assert_eq(y[0x01], 0x1p-9f);
            free(y);
        }
    const int64_t N = 256 + 64, K = 64 * 4 + 21;
    uint8_t *q = malloc((size_t)(N * K));
    float *s = malloc(sizeof(float) * (size_t)N);
    cb_rng rng = { 3 };
    for (int64_t n = 0; n < N; n++) {
        s[n] = 0.75f + 0.001f * (float)n;
        for (int64_t k = 0; k < K; k++)
            q[n * K + k] = n < 256 ? fp8_code_ok((uint64_t)n)
                         : n < 256 + 32 ? fp8_code_ok(cb_rng_next(&rng))
                                        : (uint8_t)(cb_rng_next(&rng) & 0x87); /* subnormals and zeros */
    }
    cb_weight w = { .data = q, .dtype = CB_F8_E4M3, .rows = N, .cols = K, .scale = s };
    const int Ms[] = { 1, 2, 3, 17, 64 };
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
        const int M = Ms[mi];
        float *X = calloc((size_t)(M * K), sizeof(float));
        for (int m = 0; m < M; m++)
            for (int j = 0; j < 64; j++) X[m * K + (int64_t)(cb_rng_next(&rng) % (uint64_t)K)] = (cb_rng_next(&rng) & 1) ? 1.0f : -1.0f;
        X[0] = 1.0f, X[K - 1] = -1.0f;
        for (int fast = 0; fast < 2; fast++) { /* accumulate in fast mode only, to take both */
            float *yr = run(cb_matmul_q8_ref, M, X, K, &w, 2, fast);
            float *y1 = run(fast ? cb_matmul_q8_fast_avx2 : cb_matmul_q8_avx2, M, X, K, &w, 1, fast);
            float *y2 = run(fast ? cb_matmul_q8_fast_avx2 : cb_matmul_q8_avx2, M, X, K, &w, 2, fast);
            cr_assert_eq(memcmp(y1, yr, (size_t)M * (size_t)(N + 3) * sizeof(float)), 0, "M %d fast %d: vs portable", M, fast);
            cr_assert_eq(memcmp(y1, y2, (size_t)M * (size_t)(N + 3) * sizeof(float)), 0, "M %d fast %d: 1 vs 2 threads", M, fast);
            free(yr), free(y1), free(y2);
        }
        free(X);
    }
    free(q), free(s);
    avx2_end();
}

/* The multi entry points on the AVX2 path: each output bit for bit what one call per weight gives, 1 and 2
 * threads, both modes, fp8 / int8 / mixed, sizes across the fork threshold and the panel kernels. */
Test(quant, avx2_multi_bit_identical_to_single_calls) {
    if (!avx2_begin()) cr_skip_test("no AVX2 on this CPU");
    const int64_t small[3] = { 17, 5, 5 }, big[2] = { 300, 257 }, one[1] = { 65 }, four[4] = { 40, 9, 9, 33 };
    const cb_dtype f8[4] = { CB_F8_E4M3, CB_F8_E4M3, CB_F8_E4M3, CB_F8_E4M3 }, i8[4] = { CB_I8, CB_I8, CB_I8, CB_I8 },
                   mix[4] = { CB_F8_E4M3, CB_I8, CB_I8, CB_F8_E4M3 };
    static const int ms[] = { 1, 2, 3, 5, 17 };
    for (int fast = 0; fast <= 1; fast++)
        for (size_t a = 0; a < sizeof ms / sizeof *ms; a++) {
            const int M = ms[a];
            multi_case(fast, M, small, 3, 130, f8, 7);
            multi_case(fast, M, small, 3, 33, i8, 8);
            multi_case(fast, M, big, 2, 513, f8, 9);
            multi_case(fast, M, big, 2, 513, i8, 10);
            multi_case(fast, M, one, 1, 7, f8, 11);
            multi_case(fast, M, big, 2, 513, mix, 12);
            multi_case(fast, M, four, 4, 100, mix, 13);
        }
    avx2_end();
}

/* On a CPU with AVX-512 the AVX2 decode keeps the AVX-512 fp32 loop's order of operations: fp8 (both modes)
 * and int8 exact with VNNI off give the same bits on both paths. */
Test(quant, avx2_decode_same_bits_as_avx512) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("CPU lacks AVX-512");
    cb_kernels_set_vnni(false);
    cb_rng rng = { 47 };
    static const int64_t ks[] = { 7, 100, 513 };
    for (int v = 0; v < 3; v++) { /* fp8 exact, fp8 fast, int8 exact */
        const bool fast = v == 1;
        for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
            for (int M = 1; M <= 16; M += 15) {
                const int64_t N = 67, K = ks[c];
                qweight q = make_q(v < 2 ? CB_F8_E4M3 : CB_I8, N, K, 60 + c);
                float *X = malloc((size_t)(M * K) * sizeof(float));
                for (int64_t i = 0; i < M * K; i++) X[i] = frand(&rng);
                cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX512), 0);
                float *ya = run(fast ? cb_matmul_q8_fast_avx512 : cb_matmul_q8_avx512, M, X, K, &q.w, 2, false);
                cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX2), 0);
                float *yb = run(fast ? cb_matmul_q8_fast_avx2 : cb_matmul_q8_avx2, M, X, K, &q.w, 2, false);
                cr_assert_eq(memcmp(ya, yb, (size_t)M * (size_t)(N + 3) * sizeof(float)), 0, "variant %d K %lld M %d", v,
                             (long long)K, M);
                free(ya), free(yb), free(X), free_q(&q);
            }
    }
    cb_kernels_set_vnni(true);
    avx2_end();
}

/* The subnormal-safe fp8 decode of the AVX2 stream against the clean one, as fp8_many_subnormals_bit_identical:
 * codes with E4M3 subnormals in most 64-code blocks vs the same weights as codes 2^6 times larger (all normal)
 * with the scales divided by 2^6 give the same bits, both modes, decode and multi-row sizes. */
static void avx2_fp8_subnormal_blocks(void) {
    const int64_t N = 40, K = 64 * 5 + 7;
    uint8_t *qs = malloc((size_t)(N * K)), *qn = malloc((size_t)(N * K));
    float *ss = malloc(sizeof(float) * (size_t)N), *sn = malloc(sizeof(float) * (size_t)N);
    cb_rng rng = { 23 };
    for (int64_t n = 0; n < N; n++) {
        ss[n] = 0.5f + frand(&rng) * 0.25f, sn[n] = ss[n] * 0x1p-6f;
        const int every = (int)(n % 5) * 40 + 1; /* 1 in 1, 41, 81, ... codes subnormal: clean blocks too */
        for (int64_t k = 0; k < K; k++) {
            uint64_t r = cb_rng_next(&rng);
            uint8_t c = (k % every == 0) ? (uint8_t)((r >> 8 & 0x80) | (1 + r % 7)) : (uint8_t)((r >> 8 & 0x80) | (1 + r % 71));
            qs[n * K + k] = c, qn[n * K + k] = cb_f32_to_fp8(cb_fp8_to_f32(c) * 0x1p6f);
        }
    }
    cb_weight ws = { .data = qs, .dtype = CB_F8_E4M3, .rows = N, .cols = K, .scale = ss };
    cb_weight wn = { .data = qn, .dtype = CB_F8_E4M3, .rows = N, .cols = K, .scale = sn };
    for (int M = 1; M <= 4; M += 3)
        for (int fast = 0; fast < 2; fast++) {
            gemm_fn f = fast ? cb_matmul_q8_fast_avx2 : cb_matmul_q8_avx2;
            float *X = malloc(sizeof(float) * (size_t)(M * K));
            for (int64_t i = 0; i < M * K; i++) X[i] = frand(&rng) * (float)(1 + i % 7);
            float *y1 = run(f, M, X, K, &ws, 2, false), *y2 = run(f, M, X, K, &wn, 2, false);
            float *yr = run(fast ? cb_matmul_q8_fast_ref : cb_matmul_q8_ref, M, X, K, &ws, 2, false);
            for (int m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    const int64_t i = m * (N + 3) + n;
                    cr_assert_eq(memcmp(&y1[i], &y2[i], 4), 0, "M %d fast %d row %lld: %a vs %a", M, fast, (long long)n,
                                 (double)y1[i], (double)y2[i]);
                    cr_assert_leq(fabsf(y1[i] - yr[i]), 1e-5f * (1.0f + fabsf(yr[i])), "vs portable");
                }
            free(X), free(y1), free(y2), free(yr);
        }
    free(qs), free(qn), free(ss), free(sn);
}
Test(quant, avx2_fp8_subnormal_blocks_bit_identical) {
    if (!avx2_begin()) cr_skip_test("no AVX2 on this CPU");
    avx2_fp8_subnormal_blocks();
    avx2_end();
}

/* The per-block subnormal test skipped (as on a core whose FMAs take subnormal inputs at full rate): the
 * codes placed as fp32 subnormals give the same bits as the test's f16 decode, and as the all-normal codes
 * 2^6 larger. Under DAZ the test runs whatever was forced, since a subnormal weight would then read as 0. */
Test(quant, avx2_fp8_subnormal_test_skipped_same_bits) {
    if (!avx2_begin()) cr_skip_test("no AVX2 on this CPU");
    cb_q8_avx2_force_fp8_subnormal_test(0);
    cr_assert(!cb_q8_avx2_fp8_subnormal_test(NULL), "forced off with DAZ off: the test must be skipped");
    avx2_fp8_subnormal_blocks();
    cb_q8_avx2_force_fp8_subnormal_test(1);
    cr_assert(cb_q8_avx2_fp8_subnormal_test(NULL));
    avx2_fp8_subnormal_blocks();
    const int64_t N = 9, K = 200;
    uint8_t q[9 * 200];
    float sc[9], x[200];
    cb_rng rng = { 29 };
    for (int64_t i = 0; i < N * K; i++) q[i] = (uint8_t)(cb_rng_next(&rng) & 0x87); /* subnormals and zeros */
    for (int64_t n = 0; n < N; n++) sc[n] = 1.0f + 0.125f * (float)n;
    for (int64_t k = 0; k < K; k++) x[k] = frand(&rng);
    const cb_weight w = { .data = q, .dtype = CB_F8_E4M3, .rows = N, .cols = K, .scale = sc };
    float *yr = run(cb_matmul_q8_avx2, 1, x, K, &w, 1, false);
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x40u); /* DAZ on the calling thread, which runs the whole 1-thread call */
    cb_q8_avx2_force_fp8_subnormal_test(0);
    const bool on = cb_q8_avx2_fp8_subnormal_test(NULL);
    float *yd = run(cb_matmul_q8_avx2, 1, x, K, &w, 1, false);
    _mm_setcsr(csr);
    cb_q8_avx2_force_fp8_subnormal_test(-1);
    cr_assert(on, "DAZ on: the subnormal test must run even when forced off");
    cr_assert_eq(memcmp(yr, yd, sizeof(float) * (size_t)N), 0, "DAZ on: not the bits of DAZ off");
    bool nonzero = false;
    for (int64_t n = 0; n < N; n++) nonzero = nonzero || yr[n] != 0.0f;
    cr_assert(nonzero, "subnormal weights summed to zero everywhere");
    free(yr), free(yd);
    avx2_end();
}
