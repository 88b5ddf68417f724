/* AVX-512 flash attention over an 8-bit KV cache (fp8 E4M3 / int8 codes with per-position fp32 scales;
 * layout and contract in attention.h).
 * Decode (<= DIRECT_MAX_ROWS rows, blocks whose 4 tiles are full): codes are widened to fp32 in registers
 * straight from the cache (fp8 by bit placement, stream16). A tile's 16 scores are Σ_d q_d·value(code) times the tile's 16 K scales; the
 * V scales are folded into the softmax weights (p_j·vs_j), so the inner loops are plain FMAs.
 * Reads go in address order (K tiles one after another, V rows top to bottom) and the next data is
 * requested evenly over the arithmetic, as in the bf16 decode loop (attention_avx512.c explains why).
 * Prefill (more rows) and partial blocks: one block of 64 keys is widened and scaled into L1-resident
 * fp32 tiles, which the f32 kernel then consumes as a 64-key cache; the cache itself is never expanded. */
#include <immintrin.h>
#include <math.h>

#include "attention.h"
#include "flash_softmax_avx512.h"

#define DIRECT_MAX_ROWS 8
/* Decode prefetch distance in blocks of CB_FLASH_BK keys (a block of an 8-bit cache is half a bf16 one's
 * bytes, so one block ahead leaves half the time to hide the latency). */
#ifndef PF_AHEAD
#define PF_AHEAD 2
#endif

/* 16 codes as fp32 values before scaling. int8: sign extension. fp8: the code's bits placed in an f16
 * (s.eeee.mmm -> s.0eeee.mmm0000000) give value / 256 exactly, subnormals included; UNIT folds the 256
 * back into the scales. */
static inline __attribute__((always_inline)) __m512 dec16(__m128i b, cb_dtype t) {
    if (t == CB_I8) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
    __m256i w = _mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8);
    w = _mm256_and_si256(_mm256_srai_epi16(w, 1), _mm256_set1_epi16((short)0xbfff));
    return _mm512_cvtph_ps(w);
}
static inline __attribute__((always_inline)) __m512 ld16(const uint8_t *p, cb_dtype t) {
    return dec16(_mm_loadu_si128((const __m128i *)p), t);
}
#define UNIT(t) ((t) == CB_F8_E4M3 ? 256.0f : 1.0f)

/* The decode loop's fp8 in 3 instructions per 16 codes (as the fp8 GEMV, gemm8_avx512.c): sign-extend,
 * shift by 20, keep sign and code bits: an fp32 worth value · 2^-120 exactly (subnormals too). Against
 * queries scaled by 2^64 the products are q · value · 2^-56 (scores: · 2^56 · ks); the P·V products are
 * p · vs · 2^64 · value · 2^-120, so O is carried in units of 2^-56 inside the block (OUNIT). All
 * scalings are powers of two, far from fp32's range limits. */
#define FP8_Q_SCALE 0x1p64f
#define KUNIT(t) ((t) == CB_F8_E4M3 ? 0x1p56f : 1.0f)
#define VUNIT(t) ((t) == CB_F8_E4M3 ? 0x1p64f : 1.0f)
#define OUNIT(t) ((t) == CB_F8_E4M3 ? 0x1p-56f : 1.0f)
static inline __attribute__((always_inline)) __m512 stream16(const uint8_t *p, cb_dtype t) {
    __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p));
    if (t == CB_I8) return _mm512_cvtepi32_ps(v);
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(v, 20), _mm512_set1_epi32((int)0x87F00000u)));
}

/* S[r][16 t ..] for NR rows from r0 (clamped to R - 1) and NT tiles from t0; pf: one line per head dim
 * prefetched (NULL: none). */
static inline __attribute__((always_inline)) void qk8(int R, int r0, int NR, int t0, int NT, const float *Q, int hd,
                                                      const uint8_t *kt0, const float *ks, cb_dtype t, float *S,
                                                      const char *pf) {
    __m512 a[4][4];
    const float *q[4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) q[i] = Q + (size_t)CB_MIN(r0 + i, R - 1) * hd;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) a[i][j] = _mm512_setzero_ps();
    const size_t tile = (size_t)hd * 16; /* bytes of one 16-key tile */
    const uint8_t *k = kt0 + (size_t)t0 * tile;
    for (int d = 0; d < hd; d++) {
        __m512 kv[4];
        if (pf) _mm_prefetch(pf + (size_t)d * 64, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) kv[j] = stream16(k + j * tile + (size_t)d * 16, t);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const __m512 qb = _mm512_set1_ps(q[i][d]);
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) a[i][j] = _mm512_fmadd_ps(qb, kv[j], a[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) {
        const __m512 sc = _mm512_mul_ps(_mm512_loadu_ps(ks + 16 * (t0 + j)), _mm512_set1_ps(KUNIT(t)));
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
            if (r0 + i < R) _mm512_store_ps(S + (r0 + i) * CB_FLASH_BK + 16 * (t0 + j), _mm512_mul_ps(a[i][j], sc));
    }
}

/* O[r][c0 .. c0 + 16·NU) = O·alpha + Σ_j P[r][j]·V[j] for NR rows from r0 (P already holds p·vs);
 * prefetches pf_per_j lines per key from pf (NULL: none), never past pf_end. */
static inline __attribute__((always_inline)) void pv8(int R, int r0, int NR, int c0, int NU, int hd, int nb,
                                                      const uint8_t *vb, cb_dtype t, const float *S,
                                                      const float *alpha, float *O, const char *pf, int pf_per_j,
                                                      const char *pf_end) {
    __m512 b[4][8];
    const float *p[4];
    int rr[4];
    for (int i = 0; i < 4; i++) /* (only NR x NU are used; this keeps gcc's uninitialised-use analysis quiet) */
        for (int u = 0; u < 8; u++) b[i][u] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        rr[i] = CB_MIN(r0 + i, R - 1), p[i] = S + rr[i] * CB_FLASH_BK;
        const __m512 ab = _mm512_set1_ps(alpha[rr[i]] * OUNIT(t));
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) b[i][u] = _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)rr[i] * hd + c0 + 16 * u), ab);
    }
    const uint8_t *vr = vb + c0;
    for (int j = 0; j < nb; j++, vr += hd) {
        __m512 vv[8] = { _mm512_setzero_ps() };
        if (pf)
            for (int u = 0; u < pf_per_j; u++, pf += 64)
                if (pf < pf_end) _mm_prefetch(pf, _MM_HINT_T0);
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) vv[u] = stream16(vr + 16 * u, t);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const __m512 pb = _mm512_set1_ps(p[i][j]);
#pragma GCC unroll 8
            for (int u = 0; u < NU; u++) b[i][u] = _mm512_fmadd_ps(pb, vv[u], b[i][u]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
        if (r0 + i < R)
#pragma GCC unroll 8
            for (int u = 0; u < NU; u++)
                _mm512_storeu_ps(O + (size_t)(r0 + i) * hd + c0 + 16 * u, _mm512_mul_ps(b[i][u], _mm512_set1_ps(1.0f / OUNIT(t))));
}

/* One block of 64 keys whose 4 tiles are full in memory, R <= DIRECT_MAX_ROWS. Q·Kᵀ: 4 tiles x 1, 2 or
 * 4 rows per pass (the first pass requests this block's V); P·V: R <= 2 rows x 128 columns or 4 rows x
 * 64 columns per pass (the passes request the next block's K). Later passes re-read from L1. */
static inline __attribute__((always_inline)) void block8(int R, const float *Q, const int64_t *qpos, int hd,
                                                         int64_t kb, int nb, const uint8_t *kt0, const uint8_t *vb,
                                                         const float *ks, const float *vs, cb_dtype t, float *S,
                                                         float *m, __m512 *lsum, float *alpha, float *O) {
    const size_t bytes = (size_t)CB_FLASH_BK * hd; /* of K (and of V) per block */
    /* K tiles two at a time, each read in address order (the hardware prefetcher follows two streams, not
     * four 2 KiB apart; as block_bf16_pairs in attention_avx512.c) */
    /* the next block's V and scales are requested during this block's Q·Kᵀ, its K during P·V, so every
     * block finds its data in L1 (the call's first block is requested at entry) */
    const char *pfv = (const char *)vb + PF_AHEAD * bytes;
    _mm_prefetch((const char *)(ks + PF_AHEAD * CB_FLASH_BK), _MM_HINT_T0), _mm_prefetch((const char *)(ks + PF_AHEAD * CB_FLASH_BK + 32), _MM_HINT_T0);
    _mm_prefetch((const char *)(vs + PF_AHEAD * CB_FLASH_BK), _MM_HINT_T0), _mm_prefetch((const char *)(vs + PF_AHEAD * CB_FLASH_BK + 32), _MM_HINT_T0);
    if (R == 1) qk8(R, 0, 1, 0, 4, Q, hd, kt0, ks, t, S, pfv);
    else if (R == 2)
        for (int t0 = 0; t0 < 4; t0 += 2) qk8(R, 0, 2, t0, 2, Q, hd, kt0, ks, t, S, t0 ? NULL : pfv);
    else
        for (int t0 = 0; t0 < 4; t0 += 2)
            for (int r0 = 0; r0 < R; r0 += 4) qk8(R, r0, 4, t0, 2, Q, hd, kt0, ks, t, S, r0 || t0 ? NULL : pfv);
    softmax_block(R, qpos, kb, nb, S, m, lsum, alpha);
    const __m512 u = _mm512_set1_ps(VUNIT(t));
    __m512 w[4];
    for (int i = 0; i < 4; i++) w[i] = _mm512_mul_ps(_mm512_loadu_ps(vs + 16 * i), u);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < 4; i++)
            _mm512_store_ps(S + r * CB_FLASH_BK + 16 * i, _mm512_mul_ps(_mm512_load_ps(S + r * CB_FLASH_BK + 16 * i), w[i]));

    const int ncw = R <= 2 ? 128 : 64, nr = R <= 2 ? R : 4;
    const int passes = ((hd + ncw - 1) / ncw) * ((R + nr - 1) / nr);
    const int per_j = (int)((bytes / 64 + (size_t)passes * CB_FLASH_BK - 1) / ((size_t)passes * CB_FLASH_BK));
    const char *pf = (const char *)kt0 + PF_AHEAD * bytes, *pf_end = pf + bytes;
    for (int c0 = 0; c0 < hd; c0 += ncw) {
        const int nu = CB_MIN(ncw, hd - c0) / 16;
        for (int r0 = 0; r0 < R; r0 += nr, pf += (size_t)64 * per_j * CB_FLASH_BK) {
#define PV(NR, NU) pv8(R, r0, NR, c0, NU, hd, nb, vb, t, S, alpha, O, pf, per_j, pf_end)
            if (R <= 2) {
                if (R == 1) switch (nu) { case 8: PV(1, 8); break; case 4: PV(1, 4); break; default: PV(1, nu); }
                else switch (nu) { case 8: PV(2, 8); break; case 4: PV(2, 4); break; default: PV(2, nu); }
            } else if (nu == 4) PV(4, 4);
            else PV(4, nu);
#undef PV
        }
    }
}

/* Keys [kb, kb + nb) widened and scaled into fp32 tiles Kf [4][hd][16] (narrow or missing tiles padded
 * with zeros) and rows Vf [64][hd]: the layout of an f32 cache of capacity 64. */
static void widen_block(const cb_kv_view *kv, int64_t kb, int nb, float *Kf, float *Vf) {
    const int hd = kv->hd, nt = (nb + 15) / 16;
    const float unit = UNIT(kv->dtype);
    const bool fp8 = kv->dtype == CB_F8_E4M3;
    for (int t = 0; t < 4; t++) {
        if (t >= nt) {
            for (int d = 0; d < hd; d++) _mm512_store_ps(Kf + (t * hd + d) * 16, _mm512_setzero_ps());
            continue;
        }
        const int64_t p0 = kb + 16 * t, w = CB_MIN((int64_t)16, kv->cap - p0);
        const __mmask16 mk = (__mmask16)((1u << w) - 1u);
        const uint8_t *src = (const uint8_t *)kv->k + cb_kv_k_offset(p0, 0, hd, kv->cap, kv->dtype);
        const __m512 sc = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, kv->ks + p0), _mm512_set1_ps(unit));
        for (int d = 0; d < hd; d++) {
            __m128i b = _mm_maskz_loadu_epi8(mk, src + (size_t)d * w);
            _mm512_store_ps(Kf + (t * hd + d) * 16, _mm512_mul_ps(fp8 ? dec16(b, CB_F8_E4M3) : dec16(b, CB_I8), sc));
        }
    }
    const uint8_t *src = (const uint8_t *)kv->v + (size_t)kb * hd;
    for (int j = 0; j < nb; j++) {
        const __m512 sc = _mm512_set1_ps(kv->vs[kb + j] * unit);
        for (int c = 0; c < hd; c += 16) {
            const uint8_t *p = src + (size_t)j * hd + c;
            _mm512_store_ps(Vf + j * hd + c, _mm512_mul_ps(fp8 ? ld16(p, CB_F8_E4M3) : ld16(p, CB_I8), sc));
        }
    }
}

void cb_attn_flash_q8_avx512(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0,
                             int64_t k1, float *m, float *l, float *O) {
    const int hd = kv->hd;
    const int64_t full_end = kv->cap & ~(int64_t)15; /* tiles before this are 16 wide */
    float Kf[4 * CB_FLASH_MAX_HD * 16] __attribute__((aligned(64)));
    float Vf[CB_FLASH_BK * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
    float S[DIRECT_MAX_ROWS * CB_FLASH_BK] __attribute__((aligned(64)));
    float alpha[DIRECT_MAX_ROWS + 4];
    __m512 lsum[DIRECT_MAX_ROWS];
    const bool direct = R <= DIRECT_MAX_ROWS;
    float Qs[DIRECT_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64))); /* fp8: Q · 2^64 (stream16) */
    if (direct && kv->dtype == CB_F8_E4M3)
        for (int i = 0; i < R * hd; i++) Qs[i] = Q[i] * FP8_Q_SCALE;
    if (direct)
        for (int r = 0; r < R; r++) lsum[r] = _mm512_mask_mov_ps(_mm512_setzero_ps(), 1, _mm512_set1_ps(l[r]));
    for (int64_t kb = k0; kb < k1; kb += CB_FLASH_BK) {
        const int nb = (int)CB_MIN((int64_t)CB_FLASH_BK, k1 - kb);
        int any = 0; /* rows that see at least one key of this block */
        for (int r = 0; r < R; r++) any |= qpos[r] >= kb;
        if (!any) continue;
        if (direct && kb + CB_FLASH_BK <= full_end) {
            const uint8_t *kt0 = (const uint8_t *)kv->k + cb_kv_k_offset(kb, 0, hd, kv->cap, kv->dtype);
            const uint8_t *vb = (const uint8_t *)kv->v + (size_t)kb * hd;
            if (kb == k0) /* the first block: K, V and scales */
                for (size_t o = 0; o < (size_t)PF_AHEAD * CB_FLASH_BK * hd; o += 64) {
                    _mm_prefetch((const char *)kt0 + o, _MM_HINT_T0), _mm_prefetch((const char *)vb + o, _MM_HINT_T0);
                    if (o < PF_AHEAD * CB_FLASH_BK * sizeof(float))
                        _mm_prefetch((const char *)(kv->ks + kb) + o, _MM_HINT_T0), _mm_prefetch((const char *)(kv->vs + kb) + o, _MM_HINT_T0);
                }
            if (kv->dtype == CB_F8_E4M3)
                block8(R, Qs, qpos, hd, kb, nb, kt0, vb, kv->ks + kb, kv->vs + kb, CB_F8_E4M3, S, m, lsum, alpha, O);
            else
                block8(R, Q, qpos, hd, kb, nb, kt0, vb, kv->ks + kb, kv->vs + kb, CB_I8, S, m, lsum, alpha, O);
            continue;
        }
        /* one widened block through the f32 kernel, positions relative to kb */
        widen_block(kv, kb, nb, Kf, Vf);
        int64_t qp[CB_FLASH_MAX_ROWS];
        for (int r = 0; r < R; r++) qp[r] = qpos[r] - kb;
        if (direct)
            for (int r = 0; r < R; r++) l[r] = _mm512_reduce_add_ps(lsum[r]);
        const cb_kv_view f = { .k = Kf, .v = Vf, .dtype = CB_F32, .hd = hd, .cap = CB_FLASH_BK };
        cb_attn_flash_avx512(R, Q, qp, &f, 0, nb, m, l, O);
        if (direct)
            for (int r = 0; r < R; r++) lsum[r] = _mm512_mask_mov_ps(_mm512_setzero_ps(), 1, _mm512_set1_ps(l[r]));
    }
    if (direct)
        for (int r = 0; r < R; r++) l[r] = _mm512_reduce_add_ps(lsum[r]);
}
