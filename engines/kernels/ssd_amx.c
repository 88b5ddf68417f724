/* The chunked SSD's GEMMs (C·Bᵀ, L∘C·Bᵀ · dt·x, C·S, Bᵀ·dt·x) on the tile unit; its elementwise steps are the
 * AVX-512 ones (ssd_avx512.c). Both operands are fp32 activations, so both are split into bf16 parts
 * (split_rows of amx_internal.h for A; pack_b below for B, the same rounding) and the product is a sum of
 * part-by-part tile products (TDPBF16PS: bf16 products exact, fp32 sums):
 *   terms 1 (fast mode): a₁b₁, operands rounded to bf16;
 *   terms 3: a₁b₁ + a₁b₂ + a₂b₁ (2 parts each; what is dropped is ~2⁻¹⁶ relative per product);
 *   terms 6: + a₁b₃ + a₂b₂ + a₃b₁ (3 parts each; what is dropped is ~2⁻²⁴: fp32's own rounding).
 * Exact mode's default and the shape crossover below which the AVX-512 GEMM runs instead are measured in
 * docs/performance.md "Mamba2 SSD on the tiles". Each call runs on the calling thread (the SSD is
 * parallel over heads). */
#include <immintrin.h>
#include <stdlib.h>

#include "amx_internal.h"
#include "kernels_amx.h"
#include "ssd_internal.h"
#include "thread_scratch.h"

/* ---- the B operand: fp32 [k × n] rows -> bf16 pair tiles, parts consecutive ----
 * Tile (g, s, p) — columns 16g..16g+15, k 32s..32s+31, part p — at bt + ((g·S + s)·parts + p)·TILE_U32; row r
 * holds (B[32s + 2r][16g + c], B[32s + 2r + 1][16g + c]) in column c, low half first, zeros past k and n. */
static void pack_b(int k, int n, const float *B, int64_t ldb, int64_t S, int parts, uint32_t *bt) {
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const int G = (n + 15) / 16;
    for (int g = 0; g < G; g++) {
        const int left = n - 16 * g;
        const __mmask16 mc = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        for (int64_t s = 0; s < S; s++) {
            uint32_t *dst = bt + (size_t)(g * S + s) * (size_t)parts * TILE_U32;
            for (int r = 0; r < 16; r++) {
                const int k0 = 32 * (int)s + 2 * r;
                __m512 x0 = k0 < k ? _mm512_maskz_loadu_ps(mc, B + (int64_t)k0 * ldb + 16 * g) : _mm512_setzero_ps();
                __m512 x1 = k0 + 1 < k ? _mm512_maskz_loadu_ps(mc, B + (int64_t)(k0 + 1) * ldb + 16 * g)
                                       : _mm512_setzero_ps();
                for (int p = 0; p < parts; p++) {
                    const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(x1, x0); /* RNE; x0's 16 in the low half */
                    _mm512_store_si512((__m512i *)(dst + (size_t)p * TILE_U32 + 16 * r), _mm512_permutexvar_epi16(ilv, b));
                    if (p + 1 < parts) x0 = split_rest(x0, bf16_lo_f32(b)), x1 = split_rest(x1, bf16_hi_f32(b));
                }
            }
        }
    }
}

/* causal: row i of A uses only k ≤ i. Zero the parts past the diagonal in the last k step of a 32-row block
 * at m0 whose split holds ks steps (the steps past it are never split nor read). */
static void mask_diagonal(int m0, int ks, int parts, uint16_t *act) {
    for (int r = 0; r < 32; r++) {
        const int keep = m0 + r - 32 * (ks - 1) + 1; /* k − 32(ks − 1) ≤ row − 32(ks − 1) */
        if (keep >= 32) continue;
        const __mmask32 m = (__mmask32)((1u << keep) - 1);
        for (int p = 0; p < parts; p++) {
            uint16_t *row = act + ((size_t)((r / 16) * ks + ks - 1) * (size_t)parts + (size_t)p) * TILE_U16 + 32 * (r % 16);
            _mm512_store_si512((__m512i *)row, _mm512_maskz_mov_epi16(m, _mm512_load_si512((const __m512i *)row)));
        }
    }
}

/* One 32 × 32 block of C over ks k steps: for each B part pb, its two B tiles against A parts pa < order − pb
 * (order 1, 2, 3 = terms 1, 3, 6). a0 / a1 the A tiles of the two 16-row blocks at the first step (parts
 * consecutive), b0 / b1 the B tiles of the two 16-column groups (parts consecutive). */
static inline __attribute__((always_inline)) void xblock(c_ctx *c, int m0, int64_t n0, bool load, bool skip_c1,
                                                         const uint16_t *a0, const uint16_t *a1, const uint32_t *b0,
                                                         const uint32_t *b1, int ks, const int order) {
    const bool two_n = !skip_c1;
    C_LOAD_2X2(two_n);
    for (int s = 0; s < ks; s++)
        for (int pb = 0; pb < order; pb++) {
            _tile_loadd(6, b0 + (s * order + pb) * TILE_U32, 64);
            if (two_n) _tile_loadd(7, b1 + (s * order + pb) * TILE_U32, 64);
            for (int pa = 0; pa < order - pb; pa++)
                DP_2X2(two_n, a0 + (s * order + pa) * TILE_U16, a1 + (s * order + pa) * TILE_U16);
        }
    C_STORE_2X2(two_n);
}

static _Thread_local cb_tscratch t_buf;
static void *buffer(size_t bytes) { return cb_tscratch_get(&t_buf, bytes); }

static int exact_terms; /* 0: not read yet */
int cb_ssd_amx_terms(int terms) {
    if (terms == 1 || terms == 3 || terms == 6) exact_terms = terms;
    if (!exact_terms) {
        const char *e = getenv("CTXBENCH_SSD_AMX_TERMS");
        const int t = e ? atoi(e) : 0;
        exact_terms = t == 1 || t == 3 || t == 6 ? t : CB_SSD_AMX_TERMS_DEFAULT;
    }
    return exact_terms;
}
static int64_t min_work; /* 0: not read yet; −1: the defaults */
int64_t cb_ssd_amx_min_work(int64_t mnk) {
    if (mnk != 0) min_work = mnk > 0 ? mnk : -1;
    if (!min_work) {
        const char *e = getenv("CTXBENCH_SSD_AMX_MIN");
        min_work = e && atoll(e) > 0 ? atoll(e) : -1;
    }
    return min_work > 0 ? min_work : CB_SSD_AMX_MIN_DEFAULT;
}
static int64_t min_work_fast(void) {
    (void)cb_ssd_amx_min_work(0);
    return min_work > 0 ? min_work : CB_SSD_AMX_MIN_FAST_DEFAULT;
}

void cb_ssd_gemm_amx(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                     int64_t ldc, bool accumulate, bool causal, int terms) {
    if (m <= 0 || n <= 0) return;
    const int order = terms >= 6 ? 3 : terms >= 3 ? 2 : 1;
    const int Mp = (m + 31) & ~31, G = (n + 15) / 16;
    const int64_t S = (k + 31) / 32;
    /* A is split one 32-row block at a time (its parts stay in L1 for the block's column pairs); B once */
    const size_t abytes = (size_t)32 * (size_t)S * 32 * (size_t)order * 2, bbytes = (size_t)G * (size_t)S * (size_t)order * TILE_U32 * 4;
    uint8_t *buf = k > 0 ? buffer(abytes + bbytes) : NULL;
    if (!buf) { /* k = 0, or out of memory: the AVX-512 GEMM (same contract) */
        cb_ssd_gemm_avx512(m, n, k, A, lda, B, ldb, C, ldc, accumulate, causal);
        return;
    }
    uint16_t *act = (uint16_t *)buf;
    uint32_t *bt = (uint32_t *)(buf + abytes);
    pack_b(k, n, B, ldb, S, order, bt);
    c_ctx c __attribute__((aligned(64)));
    c.Y = C, c.ldy = ldc, c.M = m, c.N = n;
    const size_t bgroup = (size_t)S * (size_t)order * TILE_U32;
    tiles_on();
    for (int m0 = 0; m0 < Mp; m0 += 32) {
        const int ks = causal ? (int)CB_MIN(S, (int64_t)(m0 / 32 + 1)) : (int)S; /* k steps past the diagonal: zero */
        for (int mb = 0; mb < 2; mb++) /* split_rows' tiles, without its OpenMP region: one thread per head */
            for (int st = 0; st < ks; st++)
                split_tile(m - m0, A + (int64_t)m0 * lda, lda, k, mb, 32 * st, order,
                           act + (size_t)(mb * ks + st) * (size_t)order * TILE_U16);
        if (causal) mask_diagonal(m0, ks, order, act);
        const size_t ablock = (size_t)ks * (size_t)order * TILE_U16;
        for (int g = 0; g < G; g += 2) {
            const uint32_t *b0 = bt + (size_t)g * bgroup;
            const bool one = g + 1 >= G;
            switch (order) {
            case 1: xblock(&c, m0, 16 * g, accumulate, one, act, act + ablock, b0, b0 + bgroup, ks, 1); break;
            case 2: xblock(&c, m0, 16 * g, accumulate, one, act, act + ablock, b0, b0 + bgroup, ks, 2); break;
            default: xblock(&c, m0, 16 * g, accumulate, one, act, act + ablock, b0, b0 + bgroup, ks, 3); break;
            }
        }
    }
    _tile_release();
}

/* The ops' GEMMs: on the tiles from the crossover in m·n·k up, else the AVX-512 one. */
static void gemm_exact(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                       int64_t ldc, bool accumulate, bool causal) {
    if ((int64_t)m * n * k >= cb_ssd_amx_min_work(0))
        cb_ssd_gemm_amx(m, n, k, A, lda, B, ldb, C, ldc, accumulate, causal, cb_ssd_amx_terms(0));
    else cb_ssd_gemm_avx512(m, n, k, A, lda, B, ldb, C, ldc, accumulate, causal);
}
static void gemm_fast(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                      int64_t ldc, bool accumulate, bool causal) {
    if ((int64_t)m * n * k >= min_work_fast()) cb_ssd_gemm_amx(m, n, k, A, lda, B, ldb, C, ldc, accumulate, causal, 1);
    else cb_ssd_gemm_avx512(m, n, k, A, lda, B, ldb, C, ldc, accumulate, causal);
}

static const cb_ssd_ops amx_exact = { gemm_exact, cb_ssd_decay_mask_avx512, cb_ssd_transpose_avx512, cb_ssd_scale_rows_avx512,
                                      cb_ssd_skip_avx512, cb_ssd_scale_cols_avx512 };
static const cb_ssd_ops amx_fast = { gemm_fast, cb_ssd_decay_mask_avx512, cb_ssd_transpose_avx512, cb_ssd_scale_rows_avx512,
                                     cb_ssd_skip_avx512, cb_ssd_scale_cols_avx512 };

const cb_ssd_ops *cb_ssd_ops_amx(bool fast) { return fast ? &amx_fast : &amx_exact; }
