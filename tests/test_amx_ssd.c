/* The chunked SSD's GEMMs on AMX tiles (engines/kernels/ssd_amx.c) against the portable GEMM on awkward shapes
 * (m, n, k = 1..33 and off the 16/32 multiples, causal, accumulate, row strides), and the whole chunked SSD on
 * the amx path against the portable path (chunk sizes that do not divide T, shared C·Bᵀ or not), exact and
 * fast mode (measured: exact ≤ 4.4e-7, fast ≤ 4.3e-3 relative to the largest output; bars 2e-6 and 1e-2). On a CPU (or OS) without AMX every test here is skipped with the reason cpu.c found. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../engines/kernels/ssd.h"
#include "../engines/kernels/ssd_internal.h"

static void need_amx(void) {
    if (cb_kernels_best_path() < CB_PATH_AMX) cr_skip_test("no AMX here: %s", cb_cpu()->amx_why);
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AMX), 0);
}

static void fill(float *v, size_t n, cb_rng *r, float scale) {
    for (size_t i = 0; i < n; i++) v[i] = scale * cb_rng_uniform(r) * (i % 11 == 0 ? 8.0f : 1.0f); /* mixed magnitudes */
}

/* Bound per element, relative to Σ_l |a_il|·|b_lj|: the parts dropped (terms 6: a₂b₃ + a₃b₂ + a₃b₃ ≤ ~2⁻²⁵;
 * 3: a₂b₂ + a₁b₃ + a₃b₁ ≤ ~2⁻¹⁶; 1: bf16 rounding of both operands ≤ 2⁻⁸) plus fp32 sums of both GEMMs. */
static double bound(int terms, int k) {
    const double sums = 2.0 * (k + 8) * 0x1p-24;
    return (terms == 6 ? 0x1p-23 : terms == 3 ? 0x1p-15 : 0x1p-7) + sums;
}

static void check_gemm(int m, int n, int k, bool causal, bool acc, int terms, uint64_t seed) {
    const int64_t lda = k + 3, ldb = n + 5, ldc = n + 7;
    cb_rng r = { seed };
    float *A = malloc(sizeof(float) * (size_t)(m * lda + 1)), *B = malloc(sizeof(float) * (size_t)(k * ldb + 1));
    float *C0 = malloc(sizeof(float) * (size_t)(m * ldc + 1)), *Cr = malloc(sizeof(float) * (size_t)(m * ldc + 1)),
          *Ct = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    fill(A, (size_t)(m * lda + 1), &r, 1.0f); /* causal: A past the diagonal is garbage the kernel must not read */
    fill(B, (size_t)(k * ldb + 1), &r, 1.0f);
    fill(C0, (size_t)(m * ldc + 1), &r, 1.0f);
    memcpy(Cr, C0, sizeof(float) * (size_t)(m * ldc + 1));
    memcpy(Ct, C0, sizeof(float) * (size_t)(m * ldc + 1));
    /* operands at +1: not 64-byte aligned */
    cb_ssd_gemm_ref(m, n, k, A + 1, lda, B + 1, ldb, Cr + 1, ldc, acc, causal);
    cb_ssd_gemm_amx(m, n, k, A + 1, lda, B + 1, ldb, Ct + 1, ldc, acc, causal, terms);
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            const int64_t o = 1 + i * ldc + j;
            if (j >= n) { /* the row padding is never written */
                cr_assert(Ct[o] == C0[o], "m=%d n=%d k=%d: padding [%d][%lld] written", m, n, k, i, (long long)j);
                continue;
            }
            double mag = acc ? fabs(C0[o]) : 0;
            const int kk = causal ? CB_MIN(k, i + 1) : k;
            for (int l = 0; l < kk; l++) mag += fabs((double)A[1 + i * lda + l] * B[1 + l * ldb + j]);
            const double err = fabs((double)Ct[o] - Cr[o]) / fmax(mag, 1e-30);
            if (err > worst) worst = err;
        }
    cr_expect(worst <= bound(terms, k), "m=%d n=%d k=%d causal=%d acc=%d terms=%d: error %.3g of Σ|a||b| > %.3g", m, n,
              k, causal, acc, terms, worst, bound(terms, k));
    free(A), free(B), free(C0), free(Cr), free(Ct);
}

Test(ssd_amx, tile_gemm_vs_portable_awkward_shapes) {
    need_amx();
    const int dims[] = { 1, 2, 7, 15, 16, 17, 31, 32, 33 };
    const int nd = (int)(sizeof dims / sizeof dims[0]);
    const int terms[] = { 6, 3, 1 };
    uint64_t seed = 1;
    for (int t = 0; t < 3; t++)
        for (int a = 0; a < nd; a++)
            for (int b = 0; b < nd; b++)
                for (int c = 0; c < nd; c += 2) /* k over 1, 7, 16, 31, 33 */
                    check_gemm(dims[a], dims[b], dims[c], (a + b) % 2 == 0, (a + c) % 3 == 0, terms[t], seed++);
    /* the SSD's own shapes and past them: several 32-row blocks, k steps, causal with m ≠ k */
    const int big[][3] = { { 256, 64, 128 }, { 256, 256, 128 }, { 256, 64, 256 }, { 128, 64, 256 },
                           { 100, 20, 24 },  { 77, 77, 77 },    { 65, 40, 300 },  { 300, 16, 40 } };
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 8; i++)
            for (int mode = 0; mode < 4; mode++)
                check_gemm(big[i][0], big[i][1], big[i][2], mode & 1, mode & 2, terms[t], seed++);
    cb_kernels_set_path(cb_kernels_best_path());
}

Test(ssd_amx, zero_k_and_empty_shapes) {
    need_amx();
    float A[4] = { 1, 2, 3, 4 }, B[4] = { 1, 2, 3, 4 }, C[4] = { 5, 6, 7, 8 };
    cb_ssd_gemm_amx(2, 2, 0, A, 2, B, 2, C, 2, true, false, 6); /* accumulate over nothing: unchanged */
    cr_assert(C[0] == 5 && C[3] == 8);
    cb_ssd_gemm_amx(2, 2, 0, A, 2, B, 2, C, 2, false, false, 6); /* overwrite with an empty sum: zeros */
    cr_assert(C[0] == 0 && C[1] == 0 && C[2] == 0 && C[3] == 0);
    cb_ssd_gemm_amx(0, 2, 2, A, 2, B, 2, C, 2, false, false, 6);
    cb_kernels_set_path(cb_kernels_best_path());
}

/* ---- the whole chunked SSD: amx path (every GEMM on the tiles) vs the portable path ---- */
typedef struct {
    int T, P, N;
    float *x, *bc, *dt, *S0;
    float A, D;
} head_case;

static head_case make_head(int T, int P, int N, float A, uint64_t seed) {
    cb_rng r = { seed };
    head_case h = { T, P, N, malloc(sizeof(float) * (size_t)T * P), malloc(sizeof(float) * (size_t)T * 2 * N),
                    malloc(sizeof(float) * (size_t)T), malloc(sizeof(float) * (size_t)P * N), A, 0.5f };
    fill(h.x, (size_t)T * P, &r, 1.0f);
    fill(h.bc, (size_t)T * 2 * N, &r, 0.3f);
    for (int t = 0; t < T; t++) h.dt[t] = 0.01f + 0.2f * 0.5f * (cb_rng_uniform(&r) + 1.0f);
    fill(h.S0, (size_t)P * N, &r, 1.0f);
    return h;
}

/* Run T tokens in chunks of Q (shared C·Bᵀ or not); y [T, P], S [P, N]. */
static void run_head(const head_case *c, int Q, bool shared, bool fast, float *y, float *S) {
    memcpy(S, c->S0, sizeof(float) * (size_t)c->P * c->N);
    float *ws = malloc(sizeof(float) * cb_ssd_workspace_floats(Q, c->P, c->N));
    float *cb = malloc(sizeof(float) * (size_t)((c->T + Q - 1) / Q) * Q * Q);
    if (shared) (fast ? cb_ssd_cb_fast : cb_ssd_cb)(c->T, Q, c->N, c->bc, c->bc + c->N, 2 * c->N, cb, ws);
    cb_ssd_head h = { .T = c->T, .P = c->P, .N = c->N, .x = c->x, .ldx = c->P, .B = c->bc, .C = c->bc + c->N,
                      .ldbc = 2 * c->N, .dt = c->dt, .lddt = 1, .A = c->A, .D = c->D, .y = y, .ldy = c->P, .S = S,
                      .CB = shared ? cb : NULL };
    (fast ? cb_ssd_chunked_fast : cb_ssd_chunked)(&h, Q, ws);
    free(ws), free(cb);
}

static double rel(const float *a, const float *ref, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i])), err = fmax(err, fabs(a[i] - ref[i]));
    return err / fmax(scale, 1e-30);
}

static void check_chunked(int T, int P, int N, int Q, float A, bool fast, double tol, uint64_t seed) {
    head_case c = make_head(T, P, N, A, seed);
    const size_t ny = (size_t)T * P, ns = (size_t)P * N;
    float *yr = malloc(sizeof(float) * ny), *Sr = malloc(sizeof(float) * ns), *y = malloc(sizeof(float) * ny),
          *S = malloc(sizeof(float) * ns);
    for (int shared = 0; shared <= 1; shared++) {
        cr_assert_eq(cb_kernels_set_path(CB_PATH_PORTABLE), 0);
        run_head(&c, Q, shared, false, yr, Sr);
        cr_assert_eq(cb_kernels_set_path(CB_PATH_AMX), 0);
        run_head(&c, Q, shared, fast, y, S);
        const double ey = rel(y, yr, ny), es = rel(S, Sr, ns);
        cr_expect(ey <= tol && es <= tol, "T=%d P=%d N=%d Q=%d A=%g %s shared C·Bᵀ=%d: y rel %.3g, state rel %.3g (bar %.3g)",
                  T, P, N, Q, (double)A, fast ? "fast" : "exact", shared, ey, es, tol);
    }
    free(yr), free(Sr), free(y), free(S);
    free(c.x), free(c.bc), free(c.dt), free(c.S0);
}

Test(ssd_amx, chunked_amx_vs_portable) {
    need_amx();
    cb_ssd_amx_min_work(1); /* every GEMM on the tiles, however small */
    const int Qs[] = { 16, 33, 64, 100, 256 };
    for (int i = 0; i < 5; i++) {
        check_chunked(300, 64, 128, Qs[i], -0.5f, false, 2e-6, 11 + i); /* the xs head shape; 300 = no multiple */
        check_chunked(77, 20, 24, Qs[i], -2.0f, false, 2e-6, 21 + i);   /* P, N off the 16-multiples */
        check_chunked(300, 64, 128, Qs[i], -0.5f, true, 1e-2, 31 + i);  /* fast mode: bf16 operands */
        check_chunked(77, 20, 24, Qs[i], -2.0f, true, 1e-2, 41 + i);
    }
    cb_ssd_amx_min_work(-1);
    /* at the default crossovers the small GEMMs stay on AVX-512: same bar */
    check_chunked(300, 64, 128, 256, -0.5f, false, 2e-6, 51);
    check_chunked(300, 64, 128, 100, -0.5f, true, 1e-2, 52);
    cb_kernels_set_path(cb_kernels_best_path());
}
