/* AVX-512 flash-attention block kernel (contract in attention.h). Per block of 64 keys: K tiles and V
 * rows are widened to fp32 once (L1/L2-resident buffers, reused by all R query rows), S = Q·Kᵀ with a
 * 4-row × 4-tile register block (16 accumulators, one broadcast of q per row and one K-tile load per
 * tile per head dim), online-softmax update with a vector exp, then O = O·α + P·V with 4 rows × 4 vectors.
 * Decode (≤ 8 rows) reads the cache directly: over a bf16 cache with its own loop (block_bf16_pairs:
 * address-order reads, paced prefetch, pair widening), over f32 / f16 with the loops above. */
#include <immintrin.h>
#include <math.h>

#include "attention.h"
#include "flash_softmax_avx512.h"
#include "kernels.h"

/* Decode over an f32 / f16 cache (few rows): K/V prefetch distance in blocks of CB_FLASH_BK keys, and the
 * cache level it targets. Measured on transformer-xs (hd 128: 32 KiB of K+V per block): 1 block into L1 beat
 * 2 (L1 or L2), 4, 8. (The bf16 loop paces its own prefetches: see block_bf16_pairs.) */
#ifndef PF_BLOCKS
#define PF_BLOCKS 1
#endif
#ifndef PF_HINT
#define PF_HINT _MM_HINT_T0
#endif


/* 16 consecutive elements as fp32 (t is a compile-time constant after inlining) */
static inline __attribute__((always_inline)) __m512 ld16(const char *p, cb_dtype t) {
    if (t == CB_F32) return _mm512_loadu_ps(p);
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (t == CB_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline __m512 widen16(const void *p, cb_dtype t, __mmask16 mk) {
    if (t == CB_F32) return _mm512_maskz_loadu_ps(mk, p);
    __m256i h = _mm256_maskz_loadu_epi16(mk, p);
    if (t == CB_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* S[R][64] = Q·Kᵀ for 4 tiles of 16 keys (kt[t]: tile t, [hd][16] in dtype t): 4 rows x 4 tiles per pass */
static inline __attribute__((always_inline)) void qk_block(int R, const float *Q, int hd, const char *const *kt,
                                                           cb_dtype t, float *S, const char *pk, const char *pv) {
    const size_t es = t == CB_F32 ? 4 : 2;
    for (int r0 = 0; r0 < R; r0 += 4) {
        const float *q0 = Q + (int64_t)CB_MIN(r0 + 0, R - 1) * hd, *q1 = Q + (int64_t)CB_MIN(r0 + 1, R - 1) * hd;
        const float *q2 = Q + (int64_t)CB_MIN(r0 + 2, R - 1) * hd, *q3 = Q + (int64_t)CB_MIN(r0 + 3, R - 1) * hd;
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        const char *t0 = kt[0], *t1 = kt[1], *t2 = kt[2], *t3 = kt[3];
        for (int d = 0; d < hd; d++) {
            size_t off = (size_t)d * 16 * es;
            if (pk && r0 == 0) /* a later block's K and V (hd·es lines each), spread over this loop */
                for (size_t i = 0; i < es; i++) {
                    _mm_prefetch(pk + (d * es + i) * 64, PF_HINT);
                    _mm_prefetch(pv + (d * es + i) * 64, PF_HINT);
                }
            __m512 k0 = ld16(t0 + off, t), k1 = ld16(t1 + off, t), k2 = ld16(t2 + off, t), k3 = ld16(t3 + off, t);
#define QK_ROW(i)                                                                                                  \
    {                                                                                                              \
        __m512 qb = _mm512_set1_ps(q##i[d]);                                                                       \
        a##i##0 = _mm512_fmadd_ps(qb, k0, a##i##0), a##i##1 = _mm512_fmadd_ps(qb, k1, a##i##1);                    \
        a##i##2 = _mm512_fmadd_ps(qb, k2, a##i##2), a##i##3 = _mm512_fmadd_ps(qb, k3, a##i##3);                    \
    }
            QK_ROW(0) QK_ROW(1) QK_ROW(2) QK_ROW(3)
#undef QK_ROW
        }
        float *s0 = S + r0 * CB_FLASH_BK;
#define ST_ROW(i)                                                                                                  \
    if (r0 + i < R) {                                                                                              \
        _mm512_store_ps(s0 + i * CB_FLASH_BK, a##i##0), _mm512_store_ps(s0 + i * CB_FLASH_BK + 16, a##i##1);      \
        _mm512_store_ps(s0 + i * CB_FLASH_BK + 32, a##i##2), _mm512_store_ps(s0 + i * CB_FLASH_BK + 48, a##i##3);  \
    }
        ST_ROW(0) ST_ROW(1) ST_ROW(2) ST_ROW(3)
#undef ST_ROW
    }
}

/* O[r] = O[r]·alpha[r] + Σ_j P[r][j]·V[j] over nb rows of V (vb: [nb][hd] in dtype t) */
static inline __attribute__((always_inline)) void pv_block(int R, int hd, int nb, const char *vb, cb_dtype t,
                                                           const float *S, const float *alpha, float *O) {
    const size_t es = t == CB_F32 ? 4 : 2, vstride = (size_t)hd * es;
    const int nv = hd / 16;
    for (int r0 = 0; r0 < R; r0 += 4) {
        int rr[4];
        for (int i = 0; i < 4; i++) rr[i] = CB_MIN(r0 + i, R - 1);
        const float *p0 = S + rr[0] * CB_FLASH_BK, *p1 = S + rr[1] * CB_FLASH_BK;
        const float *p2 = S + rr[2] * CB_FLASH_BK, *p3 = S + rr[3] * CB_FLASH_BK;
        int v = 0;
        for (; v + 4 <= nv; v += 4) {
#define LD_ROW(i)                                                                                                  \
    __m512 b##i##0, b##i##1, b##i##2, b##i##3;                                                                     \
    {                                                                                                              \
        __m512 ab = _mm512_set1_ps(alpha[rr[i]]);                                                                  \
        const float *o = O + (int64_t)rr[i] * hd + 16 * v;                                                         \
        b##i##0 = _mm512_mul_ps(_mm512_loadu_ps(o), ab), b##i##1 = _mm512_mul_ps(_mm512_loadu_ps(o + 16), ab);     \
        b##i##2 = _mm512_mul_ps(_mm512_loadu_ps(o + 32), ab), b##i##3 = _mm512_mul_ps(_mm512_loadu_ps(o + 48), ab); \
    }
            LD_ROW(0) LD_ROW(1) LD_ROW(2) LD_ROW(3)
#undef LD_ROW
            const char *vr = vb + (size_t)16 * v * es;
            for (int j = 0; j < nb; j++, vr += vstride) {
                __m512 v0 = ld16(vr, t), v1 = ld16(vr + 16 * es, t), v2 = ld16(vr + 32 * es, t), v3 = ld16(vr + 48 * es, t);
#define PV_ROW(i)                                                                                                  \
    {                                                                                                              \
        __m512 pb = _mm512_set1_ps(p##i[j]);                                                                       \
        b##i##0 = _mm512_fmadd_ps(pb, v0, b##i##0), b##i##1 = _mm512_fmadd_ps(pb, v1, b##i##1);                    \
        b##i##2 = _mm512_fmadd_ps(pb, v2, b##i##2), b##i##3 = _mm512_fmadd_ps(pb, v3, b##i##3);                    \
    }
                PV_ROW(0) PV_ROW(1) PV_ROW(2) PV_ROW(3)
#undef PV_ROW
            }
#define ST_ROW(i)                                                                                                  \
    if (r0 + i < R) {                                                                                              \
        float *o = O + (int64_t)(r0 + i) * hd + 16 * v;                                                            \
        _mm512_storeu_ps(o, b##i##0), _mm512_storeu_ps(o + 16, b##i##1);                                          \
        _mm512_storeu_ps(o + 32, b##i##2), _mm512_storeu_ps(o + 48, b##i##3);                                      \
    }
            ST_ROW(0) ST_ROW(1) ST_ROW(2) ST_ROW(3)
#undef ST_ROW
        }
        for (; v < nv; v++) {
            __m512 acc[4];
            for (int i = 0; i < 4; i++)
                acc[i] = _mm512_mul_ps(_mm512_loadu_ps(O + (int64_t)rr[i] * hd + 16 * v), _mm512_set1_ps(alpha[rr[i]]));
            const char *vr = vb + (size_t)16 * v * es;
            for (int j = 0; j < nb; j++, vr += vstride) {
                __m512 vj = ld16(vr, t);
                acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(p0[j]), vj, acc[0]);
                acc[1] = _mm512_fmadd_ps(_mm512_set1_ps(p1[j]), vj, acc[1]);
                acc[2] = _mm512_fmadd_ps(_mm512_set1_ps(p2[j]), vj, acc[2]);
                acc[3] = _mm512_fmadd_ps(_mm512_set1_ps(p3[j]), vj, acc[3]);
            }
            for (int i = 0; i < 4 && r0 + i < R; i++) _mm512_storeu_ps(O + (int64_t)(r0 + i) * hd + 16 * v, acc[i]);
        }
    }
}

static inline __attribute__((always_inline)) void block(int R, const float *Q, const int64_t *qpos, int hd, int64_t kb,
                                                        int nb, const char *const *kt, const char *vb, cb_dtype t,
                                                        float *S, float *m, __m512 *lsum, float *alpha, float *O,
                                                        const char *pk, const char *pv) {
    qk_block(R, Q, hd, kt, t, S, pk, pv);
    softmax_block(R, qpos, kb, nb, S, m, lsum, alpha);
    pv_block(R, hd, nb, vb, t, S, alpha, O);
}

/* ---- few rows over a bf16 cache (decode): sequential reads, pair widening, paced prefetch ----
 * Measured on one Zen 5 core streaming 32K keys from DRAM (hd 128, 4 rows): the generic loops above reach
 * 20 GB/s against 40 for a plain read loop. Three causes, three fixes:
 *  - access order: they read a block's 4 K tiles interleaved and its V rows in column passes, which the
 *    hardware prefetcher does not follow. Here K tiles are read two at a time, each in address order.
 *  - prefetch pacing: requests for the next data must be spread over all the arithmetic; a burst in one
 *    phase leaves memory idle in the others. Q·Kᵀ of block b requests V of block b (used right after),
 *    P·V of block b requests K of block b+1, evenly per step, so ~16 KiB are in flight at any time (more
 *    overflows the 48 KiB L1, and prefetch hints for L2 measured no better on this core). With a 32 KiB L1
 *    (Zen 4) a block's K, V and those lines do not fit together: there the requests go to L2 (PF_TO,
 *    cb_kernels_prefetch_l2; docs/performance.md, "Flash decode: prefetch into L1 or L2").
 *  - widening: bf16 K tiles store dims d, d+1 of each key side by side (attention.h), so a 64-byte load
 *    gives dim d of 16 keys with one shift and dim d+1 with one and, against scalar q_d, q_d+1; a 64-byte
 *    load of a V row gives its even and its odd columns, and O is kept in that split order within a
 *    block. Each score is the sum over even d plus the sum over odd d (rounding differs from the generic
 *    loops, nothing else). */
static inline __m512 bf_even(__m512i x) { return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)); }
static inline __m512 bf_odd(__m512i x) { return _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32((int)0xFFFF0000u))); }

/* S[r][16 t ..] for NR rows from r0 (clamped to R - 1) and NT tiles from t0 (2·NR·NT accumulators: even and
 * odd dims apart); pf: NT lines prefetched per step (NULL: none). A 64-byte load of a pair tile holds dims
 * 2p and 2p+1 of its 16 keys: the shift gives dim 2p, the and dim 2p+1. */
static inline __attribute__((always_inline)) void qk_pairs(int R, int r0, int NR, int t0, int NT, const float *Q,
                                                           int hd, const char *kt0, float *S, const char *pf, bool l2) {
    __m512 e[4][4], o[4][4];
    const float *q[4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) q[i] = Q + (size_t)CB_MIN(r0 + i, R - 1) * hd;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) e[i][t] = o[i][t] = _mm512_setzero_ps();
    const size_t tile = (size_t)hd * 32; /* bytes of one 16-key bf16 tile */
    const char *k = kt0 + (size_t)t0 * tile;
    for (int p = 0; p < hd / 2; p++) {
        __m512 ke[4], ko[4];
        if (pf)
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) PF_TO(pf + (size_t)((t0 + t) * (hd / 2) + p) * 64, l2);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            __m512i x = _mm512_loadu_si512(k + t * tile + (size_t)p * 64);
            ke[t] = bf_even(x), ko[t] = bf_odd(x);
        }
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const __m512 qe = _mm512_set1_ps(q[i][2 * p]), qo = _mm512_set1_ps(q[i][2 * p + 1]);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) e[i][t] = _mm512_fmadd_ps(qe, ke[t], e[i][t]), o[i][t] = _mm512_fmadd_ps(qo, ko[t], o[i][t]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            if (r0 + i < R) _mm512_store_ps(S + (r0 + i) * CB_FLASH_BK + 16 * (t0 + t), _mm512_add_ps(e[i][t], o[i][t]));
}

/* O[r][c0 .. c0 + 32·NU) = O·alpha + Σ_j P[r][j]·V[j] for NR rows from r0 (2·NR·NU accumulators);
 * prefetches pf_per_j lines from pf + 64·pf_per_j·j per step (pf NULL: none). */
static inline __attribute__((always_inline)) void pv_pairs(int R, int r0, int NR, int c0, int NU, int hd, int nb,
                                                           const char *vb, const float *S, const float *alpha, float *O,
                                                           const char *pf, int pf_per_j, const char *pf_end, bool l2) {
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    __m512 be[4][4], bo[4][4];
    const float *p[4];
    int rr[4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        rr[i] = CB_MIN(r0 + i, R - 1), p[i] = S + rr[i] * CB_FLASH_BK;
        const __m512 ab = _mm512_set1_ps(alpha[rr[i]]);
        const float *oi = O + (size_t)rr[i] * hd + c0;
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) {
            __m512 n0 = _mm512_loadu_ps(oi + 32 * u), n1 = _mm512_loadu_ps(oi + 32 * u + 16);
            be[i][u] = _mm512_mul_ps(_mm512_permutex2var_ps(n0, ev, n1), ab);
            bo[i][u] = _mm512_mul_ps(_mm512_permutex2var_ps(n0, od, n1), ab);
        }
    }
    const size_t vstride = (size_t)hd * 2;
    const char *vr = vb + (size_t)c0 * 2;
    for (int j = 0; j < nb; j++, vr += vstride) {
        __m512 ve[4], vo[4];
        if (pf)
            for (int u = 0; u < pf_per_j; u++, pf += 64)
                if (pf < pf_end) PF_TO(pf, l2);
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) {
            __m512i x = _mm512_loadu_si512(vr + 64 * u);
            ve[u] = bf_even(x), vo[u] = bf_odd(x);
        }
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const __m512 pb = _mm512_set1_ps(p[i][j]);
#pragma GCC unroll 4
            for (int u = 0; u < NU; u++) be[i][u] = _mm512_fmadd_ps(pb, ve[u], be[i][u]), bo[i][u] = _mm512_fmadd_ps(pb, vo[u], bo[i][u]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
        if (r0 + i < R) {
            float *oi = O + (size_t)(r0 + i) * hd + c0;
#pragma GCC unroll 4
            for (int u = 0; u < NU; u++) {
                _mm512_storeu_ps(oi + 32 * u, _mm512_permutex2var_ps(be[i][u], lo, bo[i][u]));
                _mm512_storeu_ps(oi + 32 * u + 16, _mm512_permutex2var_ps(be[i][u], hi, bo[i][u]));
            }
        }
}

/* One block of keys whose 4 tiles are full in memory, R <= DIRECT_MAX_ROWS rows, hd % 32 == 0.
 * Row groups: Q·Kᵀ 4 rows x 2 tiles (R == 1: 1 x 4, R == 2: 2 x 2); P·V 4 rows x 64 columns (R <= 2:
 * R rows x 128 columns). Groups after the first re-read K / V from L1. */
static inline __attribute__((always_inline)) void block_bf16_pairs(int R, const float *Q, const int64_t *qpos, int hd,
                                                                   int64_t kb, int nb, const char *kt0, const char *vb,
                                                                   float *S, float *m, __m512 *lsum, float *alpha,
                                                                   float *O, bool l2) {
    const size_t bytes = (size_t)CB_FLASH_BK * hd * 2; /* of K (and of V) per block */
    if (R == 1) qk_pairs(R, 0, 1, 0, 4, Q, hd, kt0, S, vb, l2);
    else if (R == 2)
        for (int t = 0; t < 4; t += 2) qk_pairs(R, 0, 2, t, 2, Q, hd, kt0, S, vb, l2);
    else
        for (int t = 0; t < 4; t += 2)
            for (int r0 = 0; r0 < R; r0 += 4) qk_pairs(R, r0, 4, t, 2, Q, hd, kt0, S, r0 ? NULL : vb, l2);
    softmax_block(R, qpos, kb, nb, S, m, lsum, alpha);

    /* P·V passes; the next block's K (bytes/64 lines) is requested evenly over all of them */
    const int ncw = R <= 2 ? 128 : 64, nr = R <= 2 ? R : 4;
    const int passes = ((hd + ncw - 1) / ncw) * ((R + nr - 1) / nr);
    const int per_j = (int)((bytes / 64 + (size_t)passes * CB_FLASH_BK - 1) / ((size_t)passes * CB_FLASH_BK));
    const char *pf = kt0 + bytes, *pf_end = pf + bytes;
    for (int c0 = 0; c0 < hd; c0 += ncw) {
        const int nu = CB_MIN(ncw, hd - c0) / 32;
        for (int r0 = 0; r0 < R; r0 += nr, pf += (size_t)64 * per_j * CB_FLASH_BK) {
#define PV(NR, NU) pv_pairs(R, r0, NR, c0, NU, hd, nb, vb, S, alpha, O, pf, per_j, pf_end, l2)
            if (R == 1) switch (nu) { case 4: PV(1, 4); break; case 3: PV(1, 3); break; case 2: PV(1, 2); break; default: PV(1, 1); }
            else if (R == 2) switch (nu) { case 4: PV(2, 4); break; case 3: PV(2, 3); break; case 2: PV(2, 2); break; default: PV(2, 1); }
            else if (nu == 2) PV(4, 2);
            else PV(4, 1);
#undef PV
        }
    }
}

/* Few rows (decode, R <= 8): K/V are widened in registers straight from the cache (bf16: block_bf16_pairs).
 * Many rows (prefill): a block is widened once into fp32 buffers and reused by every row. */
#define DIRECT_MAX_ROWS 8

void cb_attn_flash_avx512(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0,
                          int64_t k1, float *m, float *l, float *O) {
    const int hd = kv->hd, nv = hd / 16;
    const size_t es = cb_dtype_size(kv->dtype);
    const int64_t full_end = kv->cap & ~(int64_t)15; /* tiles before this are 16 wide */
    float Kf[4 * CB_FLASH_MAX_HD * 16] __attribute__((aligned(64)));     /* 4 tiles [hd][16] */
    float Vf[CB_FLASH_BK * CB_FLASH_MAX_HD] __attribute__((aligned(64))); /* [64][hd] */
    float S[CB_FLASH_MAX_ROWS * CB_FLASH_BK] __attribute__((aligned(64)));
    float alpha[CB_FLASH_MAX_ROWS + 4];
    __m512 lsum[CB_FLASH_MAX_ROWS];
    for (int r = 0; r < R; r++) lsum[r] = _mm512_mask_mov_ps(_mm512_setzero_ps(), 1, _mm512_set1_ps(l[r]));
    const bool kpairs = cb_kv_k_pairs(kv->dtype, hd);  /* K tiles in d-pairs (attention.h) */
    const bool pairs = R <= DIRECT_MAX_ROWS && kpairs && hd % 32 == 0;
    const bool l2 = pairs && cb_kernels_prefetch_l2(NULL);

    for (int64_t kb = k0; kb < k1; kb += CB_FLASH_BK) {
        const int nb = (int)CB_MIN((int64_t)CB_FLASH_BK, k1 - kb), nt = (nb + 15) / 16;
        int any = 0; /* rows that see at least one key of this block */
        for (int r = 0; r < R; r++) any |= qpos[r] >= kb;
        if (!any) continue;
        const char *kt[4];
        if (R <= DIRECT_MAX_ROWS && kb + CB_FLASH_BK <= full_end && (pairs || !kpairs)) {
            /* 4 full tiles in memory (keys past nb are finite and masked) */
            for (int t = 0; t < 4; t++) kt[t] = (const char *)kv->k + (size_t)cb_kv_k_offset(kb + 16 * t, 0, hd, kv->cap, kv->dtype) * es;
            const char *vb = (const char *)kv->v + (size_t)kb * hd * es;
            if (pairs) {
                if (l2) block_bf16_pairs(R, Q, qpos, hd, kb, nb, kt[0], vb, S, m, lsum, alpha, O, true);
                else block_bf16_pairs(R, Q, qpos, hd, kb, nb, kt[0], vb, S, m, lsum, alpha, O, false);
                continue;
            }
            /* Few rows keep this loop close to memory-bound: the K tiles and V rows of the block PF_BLOCKS
             * ahead are requested during this block's Q·Kᵀ (a burst of requests would stall it), the first
             * blocks at entry. Prefetches past k1 or the cache end are harmless: they never fault. */
            const size_t bytes = (size_t)CB_FLASH_BK * hd * es;
            if (kb == k0)
                for (size_t o = bytes; o < (size_t)PF_BLOCKS * bytes; o += 64) {
                    _mm_prefetch(kt[0] + o, PF_HINT);
                    _mm_prefetch(vb + o, PF_HINT);
                }
            const char *pk = kt[0] + (size_t)PF_BLOCKS * bytes, *pv = vb + (size_t)PF_BLOCKS * bytes;
            switch (kv->dtype) {
            case CB_BF16: block(R, Q, qpos, hd, kb, nb, kt, vb, CB_BF16, S, m, lsum, alpha, O, pk, pv); break;
            case CB_F16: block(R, Q, qpos, hd, kb, nb, kt, vb, CB_F16, S, m, lsum, alpha, O, pk, pv); break;
            default: block(R, Q, qpos, hd, kb, nb, kt, vb, CB_F32, S, m, lsum, alpha, O, pk, pv); break;
            }
            continue;
        }
        /* widen K tiles (narrow tiles padded to 16) and V rows into fp32 buffers */
        for (int t = 0; t < nt; t++) {
            int64_t p0 = kb + 16 * t;
            int64_t w = CB_MIN((int64_t)16, kv->cap - p0);
            const char *src = (const char *)kv->k + (size_t)cb_kv_k_offset(p0, 0, hd, kv->cap, kv->dtype) * es;
            __mmask16 mk = (__mmask16)((1u << w) - 1u);
            if (kpairs) /* [hd/2][w][2]: dims d, d+1 of each key side by side */
                for (int d = 0; d < hd; d += 2) {
                    __m512i x = _mm512_maskz_loadu_epi16((__mmask32)(((uint64_t)1 << (2 * w)) - 1u), src + (size_t)d * w * es);
                    _mm512_store_ps(Kf + (t * hd + d) * 16, bf_even(x));
                    _mm512_store_ps(Kf + (t * hd + d + 1) * 16, bf_odd(x));
                }
            else
                for (int d = 0; d < hd; d++)
                    _mm512_store_ps(Kf + (t * hd + d) * 16, widen16(src + (size_t)d * w * es, kv->dtype, mk));
        }
        for (int t = nt; t < 4; t++) /* unused tiles of a short block: zeros (their scores are masked) */
            for (int d = 0; d < hd; d++) _mm512_store_ps(Kf + (t * hd + d) * 16, _mm512_setzero_ps());
        const char *src = (const char *)kv->v + (size_t)kb * hd * es;
        for (int j = 0; j < nb; j++)
            for (int v = 0; v < nv; v++)
                _mm512_store_ps(Vf + j * hd + 16 * v, widen16(src + ((size_t)j * hd + 16 * v) * es, kv->dtype, 0xffff));
        for (int t = 0; t < 4; t++) kt[t] = (const char *)(Kf + t * hd * 16);
        block(R, Q, qpos, hd, kb, nb, kt, (const char *)Vf, CB_F32, S, m, lsum, alpha, O, NULL, NULL);
    }
    for (int r = 0; r < R; r++) l[r] = _mm512_reduce_add_ps(lsum[r]);
}
