/* The chunked SSD kernel (both paths) against a token-by-token recurrence in double precision. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../engines/kernels/ssd.h"

typedef struct {
    int T, H, P, N, G;
    float *x, *bc, *dt, *A, *D, *S0; /* x [T, H*P]; bc [T, 2*G*N] (B then C); dt [T, H]; S0 [H, P, N] */
} ssd_case;

static ssd_case make_case(int T, int H, int P, int N, int G, float a_log_hi, float dt_lo, float dt_hi, uint64_t seed) {
    cb_rng r = { seed };
    ssd_case c = { T, H, P, N, G, NULL, NULL, NULL, NULL, NULL, NULL };
    c.x = malloc(sizeof(float) * (size_t)T * H * P);
    c.bc = malloc(sizeof(float) * (size_t)T * 2 * G * N);
    c.dt = malloc(sizeof(float) * (size_t)T * H);
    c.A = malloc(sizeof(float) * H);
    c.D = malloc(sizeof(float) * H);
    c.S0 = malloc(sizeof(float) * (size_t)H * P * N);
    for (size_t i = 0; i < (size_t)T * H * P; i++) c.x[i] = cb_rng_uniform(&r);
    for (size_t i = 0; i < (size_t)T * 2 * G * N; i++) c.bc[i] = cb_rng_uniform(&r);
    for (size_t i = 0; i < (size_t)T * H; i++) c.dt[i] = dt_lo + (dt_hi - dt_lo) * 0.5f * (cb_rng_uniform(&r) + 1.0f);
    for (int h = 0; h < H; h++) {
        /* A_log spread over [-1, a_log_hi]: mild to strong decay */
        float alog = -1.0f + (a_log_hi + 1.0f) * (float)h / (float)(H > 1 ? H - 1 : 1);
        c.A[h] = -expf(alog);
        c.D[h] = cb_rng_uniform(&r);
    }
    for (size_t i = 0; i < (size_t)H * P * N; i++) c.S0[i] = cb_rng_uniform(&r);
    return c;
}

static void free_case(ssd_case *c) {
    free(c->x); free(c->bc); free(c->dt); free(c->A); free(c->D); free(c->S0);
}

/* Reference: the plain recurrence in double; y [T, H*P], S [H, P, N] in double. */
static void recurrence(const ssd_case *c, double *y, double *S) {
    const int H = c->H, P = c->P, N = c->N, G = c->G;
    for (size_t i = 0; i < (size_t)H * P * N; i++) S[i] = c->S0[i];
    for (int t = 0; t < c->T; t++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / G);
            const float *B = c->bc + (size_t)t * 2 * G * N + (size_t)g * N, *C = B + (size_t)G * N;
            double dt = c->dt[(size_t)t * H + h], e = exp(dt * c->A[h]);
            for (int p = 0; p < P; p++) {
                double *s = S + ((size_t)h * P + p) * N, xv = c->x[(size_t)t * H * P + (size_t)h * P + p], acc = 0;
                for (int n = 0; n < N; n++) {
                    s[n] = e * s[n] + dt * xv * B[n];
                    acc += s[n] * C[n];
                }
                y[(size_t)t * H * P + (size_t)h * P + p] = acc + c->D[h] * xv;
            }
        }
}

/* Run the chunked kernel over the case in pieces of `split` tokens (continuing the state). */
static void run_chunked(const ssd_case *c, int Q, int split, float *y, float *S, bool step, bool shared_cb) {
    const int H = c->H, P = c->P, N = c->N, G = c->G;
    for (size_t i = 0; i < (size_t)H * P * N; i++) S[i] = c->S0[i];
    float *ws = malloc(sizeof(float) * cb_ssd_workspace_floats(Q, P, N));
    size_t per_group = (size_t)((split + Q - 1) / Q) * Q * Q;
    float *cbuf = malloc(sizeof(float) * per_group * G);
    for (int t0 = 0; t0 < c->T; t0 += split) {
        int T = CB_MIN(split, c->T - t0);
        for (int g = 0; g < G && shared_cb; g++) {
            const float *B = c->bc + (size_t)t0 * 2 * G * N + (size_t)g * N;
            cb_ssd_cb(T, Q, N, B, B + (size_t)G * N, 2 * G * N, cbuf + g * per_group, ws);
        }
        for (int h = 0; h < H; h++) {
            int g = h / (H / G);
            cb_ssd_head hv = { .T = T, .P = P, .N = N, .x = c->x + (size_t)t0 * H * P + (size_t)h * P, .ldx = H * P,
                               .B = c->bc + (size_t)t0 * 2 * G * N + (size_t)g * N,
                               .C = c->bc + (size_t)t0 * 2 * G * N + (size_t)G * N + (size_t)g * N, .ldbc = 2 * G * N,
                               .dt = c->dt + (size_t)t0 * H + h, .lddt = H, .A = c->A[h], .D = c->D[h],
                               .y = y + (size_t)t0 * H * P + (size_t)h * P, .ldy = H * P,
                               .S = S + (size_t)h * P * N,
                               .CB = shared_cb ? cbuf + (h / (H / G)) * per_group : NULL };
            if (step) cb_ssd_step(&hv);
            else cb_ssd_chunked(&hv, Q, ws);
        }
    }
    free(ws);
    free(cbuf);
}

static double max_rel(const float *a, const double *ref, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(a[i] - ref[i]));
    return err / fmax(scale, 1e-30);
}

static void check(int T, int H, int P, int N, int G, float a_log_hi, float dt_lo, float dt_hi, int Q, int split,
                  bool step, uint64_t seed) {
    ssd_case c = make_case(T, H, P, N, G, a_log_hi, dt_lo, dt_hi, seed);
    size_t ny = (size_t)T * H * P, ns = (size_t)H * P * N;
    double *yr = malloc(sizeof(double) * ny), *Sr = malloc(sizeof(double) * ns);
    float *y = malloc(sizeof(float) * ny), *S = malloc(sizeof(float) * ns);
    recurrence(&c, yr, Sr);
    const cb_kpath paths[] = { CB_PATH_PORTABLE, CB_PATH_AVX2, CB_PATH_AVX512 };
    for (int pi = 0; pi < 3; pi++) {
        if (cb_kernels_set_path(paths[pi])) continue; /* a path this CPU lacks */
        for (int shared = 0; shared <= (step ? 0 : 1); shared++) {
            run_chunked(&c, Q, split, y, S, step, shared);
            double ey = max_rel(y, yr, ny), es = max_rel(S, Sr, ns);
            cr_expect(ey <= 1e-4 && es <= 1e-4,
                      "%s T=%d H=%d P=%d N=%d G=%d A_log<=%g dt[%g,%g] Q=%d split=%d step=%d shared C·Bᵀ=%d: y rel %.3g, "
                      "state rel %.3g",
                      cb_kpath_name(paths[pi]), T, H, P, N, G, a_log_hi, dt_lo, dt_hi, Q, split, step, shared, ey, es);
        }
    }
    cb_kernels_set_path(cb_kernels_best_path());
    free(yr); free(Sr); free(y); free(S);
    free_case(&c);
}

Test(ssd, chunk_sizes_and_ragged_lengths) {
    const int Qs[] = { 1, 8, 16, 64, 256 };
    for (int i = 0; i < 5; i++) {
        check(300, 4, 16, 32, 2, 1.0f, 0.001f, 0.5f, Qs[i], 300, false, 11 + i); /* 300 = not a multiple */
        check(77, 2, 20, 24, 1, 0.5f, 0.01f, 0.2f, Qs[i], 77, false, 21 + i);    /* P, N not multiples of 16 */
    }
}

Test(ssd, groups) {
    const int Gs[] = { 1, 2, 4, 8 };
    for (int i = 0; i < 4; i++) check(130, 8, 16, 16, Gs[i], 1.0f, 0.01f, 1.0f, 16, 130, false, 31 + i);
}

Test(ssd, strong_decay_and_clamp_limits) {
    /* A_log up to 4 (A ≈ −55) with dt up to 20: per-token decay to exp(−1100) — must give 0, never inf/NaN */
    check(200, 4, 16, 32, 1, 4.0f, 1.0f, 20.0f, 64, 200, false, 41);
    /* dt at a tiny lower clamp: almost no decay, state accumulates */
    check(200, 4, 16, 32, 1, 0.0f, 1e-4f, 1e-4f, 64, 200, false, 42);
    /* dt at an upper clamp with mild A */
    check(200, 4, 16, 32, 1, -0.5f, 0.1f, 0.1f, 256, 200, false, 43);
}

Test(ssd, continues_state_across_calls) {
    /* several calls (at depth) == one call == the recurrence; starting state is nonzero */
    check(250, 4, 16, 32, 2, 1.0f, 0.01f, 0.5f, 16, 37, false, 51);
    check(250, 4, 16, 32, 2, 1.0f, 0.01f, 0.5f, 64, 100, false, 52);
}

Test(ssd, decode_step_matches_recurrence) {
    check(40, 4, 16, 32, 2, 1.0f, 0.01f, 0.5f, 1, 1, true, 61);
    check(40, 2, 20, 24, 1, 1.0f, 0.01f, 0.5f, 1, 1, true, 62); /* N not a multiple of 16 */
}

/* The AVX2 decode step is the AVX-512 one on 8-lane halves: the same bits, N a multiple of 16 or not. */
Test(ssd, decode_step_avx2_same_bits_as_avx512) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("no AVX-512 here to compare the AVX2 step with");
    const int Ns[] = { 16, 24, 128, 5 };
    for (int i = 0; i < 4; i++) {
        ssd_case c = make_case(1, 1, 8, Ns[i], 1, 1.0f, 0.01f, 0.5f, 70 + (uint64_t)i);
        const size_t ns = (size_t)8 * Ns[i];
        float *S2 = malloc(ns * 4), *S5 = malloc(ns * 4), y2[8], y5[8];
        for (size_t k = 0; k < ns; k++) S2[k] = S5[k] = (float)((int)(k * 37 % 101) - 50) * 0.01f;
        cb_ssd_head h = { .T = 1, .P = 8, .N = Ns[i], .x = c.x, .ldx = 8, .B = c.bc, .C = c.bc + Ns[i],
                          .ldbc = 2 * Ns[i], .dt = c.dt, .lddt = 1, .A = -1.5f, .D = 0.25f, .y = y2, .ldy = 8, .S = S2 };
        cb_ssd_step_avx2(&h);
        h.y = y5, h.S = S5;
        cb_ssd_step_avx512(&h);
        cr_assert_eq(memcmp(S2, S5, ns * 4), 0, "N %d: state differs", Ns[i]);
        cr_assert_eq(memcmp(y2, y5, sizeof y2), 0, "N %d: y differs", Ns[i]);
        free(S2), free(S5);
        free_case(&c);
    }
}

Test(ssd, silu_paths_agree) {
    float x[100], a[100], b[100];
    for (int i = 0; i < 100; i++) x[i] = (float)(i - 50) * (i % 2 ? 0.1f : 3.0f); /* up to ±150 */
    memcpy(a, x, sizeof x);
    memcpy(b, x, sizeof x);
    cb_ssd_silu_ref(100, a);
    if (cb_kernels_best_path() >= CB_PATH_AVX512) cb_ssd_silu_avx512(100, b);
    else cb_ssd_silu_ref(100, b);
    for (int i = 0; i < 100; i++) {
        double ref = x[i] / (1.0 + exp(-(double)x[i]));
        cr_expect(fabs(a[i] - ref) <= 1e-6 * fmax(1.0, fabs(ref)) && fabs(b[i] - ref) <= 1e-6 * fmax(1.0, fabs(ref)),
                  "silu(%g): ref %g avx512 %g exact %g", (double)x[i], (double)a[i], (double)b[i], ref);
    }
}

/* The chunked SSD's elementwise steps do one operation per element on every path: the AVX-512 ones must
 * give the portable twins' bits exactly, on ragged shapes and strides (docs/engines.md, Mamba2 mixer). */
#include "../engines/kernels/ssd_internal.h"
static void fill(float *v, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((int)(seed >> 8) % 20001 - 10000) * 1e-3f;
    }
}
static void elementwise_vs_twins(const cb_ssd_ops *v, const char *path) {
    const int shapes[][2] = { { 1, 1 }, { 15, 17 }, { 16, 16 }, { 33, 128 }, { 100, 64 }, { 256, 16 }, { 7, 200 } };
    enum { CAP = 300 * 300 };
    static float src[CAP], s[CAP], a[CAP], b[CAP], c[CAP], d[CAP];
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int m = shapes[k][0], n = shapes[k][1];
        int64_t lds = n + 3, ldd = m + 5; /* padded rows: strides are honoured, padding untouched */
        fill(src, CAP, 7u + (unsigned)k);
        fill(s, CAP, 99u + (unsigned)k);
        memset(a, 0x5a, sizeof a), memset(b, 0x5a, sizeof b);
        cb_ssd_transpose_ref(m, n, src, lds, a, ldd);
        v->transpose(m, n, src, lds, b, ldd);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "%s transpose %dx%d", path, m, n);
        memset(a, 0x5a, sizeof a), memset(b, 0x5a, sizeof b);
        cb_ssd_scale_rows_ref(m, n, s, 3, src, lds, a, n + 1);
        v->scale_rows(m, n, s, 3, src, lds, b, n + 1);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "%s scale_rows %dx%d", path, m, n);
        for (int i = 0; i < m; i++) c[i] = -0.01f * (float)i; /* a_i as the chunk's cumulative decay */
        memcpy(a, s, sizeof a), memcpy(b, s, sizeof b);
        cb_ssd_skip_ref(m, n, c, 0.75f, src, lds, a, n + 2);
        v->skip(m, n, c, 0.75f, src, lds, b, n + 2);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "%s skip %dx%d", path, m, n);
        memcpy(a, src, sizeof a), memcpy(b, src, sizeof b);
        cb_ssd_scale_cols_ref(m, n, s, a);
        v->scale_cols(m, n, s, b);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "%s scale_cols %dx%d", path, m, n);
        if (m == n || k == 3) { /* decay_mask (square q x q): zeros above the diagonal exactly, exps within ulps */
            int q = m;
            for (int i = 0; i < q; i++) d[i] = -0.05f * (float)i;
            memset(a, 0x5a, sizeof a), memset(b, 0x5a, sizeof b);
            cb_ssd_decay_mask_ref(q, d, src, a, q + 1);
            v->decay_mask(q, d, src, b, q + 1);
            for (int i = 0; i < q; i++)
                for (int j = 0; j < q; j++) {
                    float x = a[i * (q + 1) + j], y = b[i * (q + 1) + j];
                    cr_assert(j > i ? x == 0 && y == 0 : fabsf(x - y) <= 1e-6f * fabsf(x) + 1e-30f, /* vector exp vs expf: a few ulps */
                              "%s decay_mask q=%d [%d][%d]: %g vs %g", path, q, i, j, (double)x, (double)y);
                }
        }
    }
}

Test(ssd, elementwise_steps_bit_identical_to_the_twins) {
    const bool avx2 = cb_kernels_best_path() >= CB_PATH_AVX2, avx512 = cb_kernels_best_path() >= CB_PATH_AVX512;
    if (!avx2) cr_skip_test("no AVX2 here: only the portable steps exist");
    elementwise_vs_twins(cb_ssd_ops_avx2(), "avx2");
    if (avx512) elementwise_vs_twins(cb_ssd_ops_avx512(), "avx512");
}

/* The AVX2 chunked steps give the AVX-512 ones' bits: the GEMM (one FMA per k in k order per output, ragged
 * shapes, causal, accumulate) and the decay mask under the kernels' flushed MXCSR (dispatch.c runs the SSD so). */
Test(ssd, chunked_steps_avx2_same_bits_as_avx512) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("no AVX-512 here: nothing to compare the AVX2 steps with");
    const cb_ssd_ops *v2 = cb_ssd_ops_avx2(), *v5 = cb_ssd_ops_avx512();
    const int shapes[][3] = { { 1, 1, 1 }, { 5, 7, 3 }, { 6, 16, 6 }, { 13, 33, 13 }, { 64, 64, 64 }, { 100, 128, 100 }, { 256, 64, 256 } };
    enum { CAP = 300 * 300 };
    static float A[CAP], B[CAP], c2[CAP], c5[CAP], a[300];
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int m = shapes[t][0], n = shapes[t][1], k = shapes[t][2];
        for (int causal = 0; causal <= 1; causal++)
            for (int acc = 0; acc <= 1; acc++) {
                fill(A, CAP, 3u + (unsigned)t), fill(B, CAP, 5u + (unsigned)t), fill(c2, CAP, 11u), memcpy(c5, c2, sizeof c5);
                if (causal) /* the causal contract: A is zero beyond the diagonal */
                    for (int i = 0; i < m; i++)
                        for (int l = i + 1; l < k; l++) A[i * (k + 1) + l] = 0.0f;
                v2->gemm(m, n, k, A, k + 1, B, n + 2, c2, n + 3, acc, causal);
                v5->gemm(m, n, k, A, k + 1, B, n + 2, c5, n + 3, acc, causal);
                cr_assert_eq(memcmp(c2, c5, sizeof c2), 0, "gemm %dx%dx%d causal=%d accumulate=%d", m, n, k, causal, acc);
            }
        if (m == k) {
            const int q = m;
            for (int i = 0; i < q; i++) a[i] = -0.7f * (float)i; /* down to exp(-180): 0 under the flush */
            memset(c2, 0x5a, sizeof c2), memset(c5, 0x5a, sizeof c5);
            const unsigned csr = cb_subnormals_flush_begin();
            v2->decay_mask(q, a, B, c2, q + 1);
            v5->decay_mask(q, a, B, c5, q + 1);
            cb_subnormals_flush_end(csr);
            cr_assert_eq(memcmp(c2, c5, sizeof c2), 0, "decay_mask q=%d", q);
        }
    }
}

/* The SSD flushes subnormals for its own duration only (docs/engines.md): the caller's MXCSR comes back
 * unchanged, and a head whose decays fall through the subnormal range (A = −16) still matches the
 * double-precision recurrence. */
#include <xmmintrin.h>
Test(ssd, subnormal_flush_is_scoped_and_harmless) {
    unsigned before = _mm_getcsr();
    check(300, 2, 16, 32, 1, logf(16.0f), 0.05f, 0.3f, 256, 300, false, 71);
    check(40, 2, 16, 32, 1, logf(16.0f), 0.05f, 0.3f, 1, 1, true, 72);
    cr_assert_eq(_mm_getcsr() & ~0x3fu, before & ~0x3fu, "MXCSR control bits changed: %#x -> %#x", before, _mm_getcsr());
}
