/* AMX flash-attention block kernel for prefill over a bf16 cache with head_dim % 32 == 0 (contract in
 * attention.h; dispatched from attention_ref.c for R >= CB_ATTN_AMX_MIN_ROWS). Per block of CB_FLASH_BK keys:
 *   S = Q·Kᵀ on the tiles: the cache's K tiles are already the B operand (16 keys × dims d, d+1 side by
 *     side, attention.h), so they load straight from the cache; Q is split once per call into three bf16
 *     parts (hi + mid + lo = all 24 bits of each fp32 q, as in gemm_amx.c), one tile product per part;
 *   the online-softmax update of the AVX-512 kernel (flash_softmax_avx512.h's operations), fused with the
 *     split of P into its three parts, written straight into the A tiles (softmax_parts), the next
 *     block's K and V prefetched into L2 meanwhile;
 *   O = O·α + P·V on the tiles (rows whose max did not move have α = 1 exactly and are not rescaled), V
 *     rows interleaved in pairs of keys into B tiles once per block (reused by every row).
 * Products of exact parts against exact bf16 keys and values with fp32 sums: the numbers are the AVX-512
 * kernel's up to fp32 summation order. Fast mode (cb_attn_flash_fast): one bf16 part of Q and of P.
 * O is accumulated in an fp32 buffer of whole tiles (rows padded to 32); a block that runs past the last
 * full 16-key tile of the capacity is staged with zeros. docs/performance.md, "AMX attention prefill". */
#include <math.h>
#include <stdlib.h>

#include "amx_internal.h"
#include "attention.h"
#include "flash_softmax_avx512.h"
#include "kernels_amx.h"
#include "thread_scratch.h"

#define PARTS 3 /* exact mode; fast mode: 1 */
#define MAX_PAIRS (CB_FLASH_MAX_HD / 2)

typedef struct {
    uint16_t qa[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD * PARTS]; /* Q tiles (split_rows layout) */
    uint16_t pa[CB_FLASH_MAX_ROWS * CB_FLASH_BK * PARTS];     /* P tiles */
    uint32_t kst[4 * MAX_PAIRS * 16];                         /* staged K tiles: [tile][pair][16 keys] */
    uint32_t vt[(CB_FLASH_BK / 2) * CB_FLASH_MAX_HD];         /* V tiles: (16-dim group g, 32-key step s) at (2g + s)·256 */
    float S[CB_FLASH_MAX_ROWS * CB_FLASH_BK];
    float O[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD];
    float alpha[CB_FLASH_MAX_ROWS];
} flash_buf;

static _Thread_local cb_tscratch t_buf;

/* V rows [kb, kb + nb) -> B tiles: row r of step s holds keys 32s + 2r, 32s + 2r + 1 of 16 dims (low half
 * first); keys past nb are zero. One 64-byte row of each key in, two interleaved 64-byte rows out. */
static void pack_v(const uint16_t *v, int hd, int nb, uint32_t *vt) {
    const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5,
                                        36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    for (int s = 0; s < 2; s++)
        for (int r = 0; r < 16; r++) {
            const int j0 = 32 * s + 2 * r, j1 = j0 + 1;
            const __mmask32 k0 = j0 < nb ? ~(__mmask32)0 : 0, k1 = j1 < nb ? ~(__mmask32)0 : 0;
            for (int h = 0; h < hd / 32; h++) {
                const __m512i a = _mm512_maskz_loadu_epi16(k0, v + (size_t)j0 * hd + 32 * h);
                const __m512i b = _mm512_maskz_loadu_epi16(k1, v + (size_t)j1 * hd + 32 * h);
                _mm512_store_si512(vt + (size_t)(4 * h + s) * TILE_U32 + 16 * r, _mm512_permutex2var_epi16(a, lo, b));
                _mm512_store_si512(vt + (size_t)(4 * h + 2 + s) * TILE_U32 + 16 * r, _mm512_permutex2var_epi16(a, hi, b));
            }
        }
}

/* The 4 K tiles of the block at kb as 16-key pair tiles, zero past nb (or past the capacity). */
static void stage_k(const cb_kv_view *kv, int64_t kb, int nb, uint32_t *kst) {
    const int np = kv->hd / 2;
    for (int t = 0; t < 4; t++) {
        uint32_t *dst = kst + (size_t)t * np * 16;
        const int64_t p0 = kb + 16 * t;
        memset(dst, 0, sizeof(uint32_t) * (size_t)np * 16);
        if (16 * t >= nb) continue;
        const int64_t w = CB_MIN((int64_t)16, kv->cap - p0);
        const int keep = (int)CB_MIN(w, (int64_t)(nb - 16 * t));
        const uint32_t *src = (const uint32_t *)((const uint16_t *)kv->k + cb_kv_k_offset(p0, 0, kv->hd, kv->cap, CB_BF16));
        for (int p = 0; p < np; p++) memcpy(dst + (size_t)p * 16, src + (size_t)p * w, sizeof(uint32_t) * (size_t)keep);
    }
}

/* The online-softmax update of flash_softmax_avx512.h (same operations, same rounding) fused with the
 * 3-part split of P into the A tiles at pa (split_rows' layout, 2 k steps of 32 keys; the parts by
 * truncation: each remainder is exact, so hi + mid + lo = p as with split_rows' rounding), 16 rows
 * at a time so the 16 rescales exp(m_old − m_new) are one vector exp; rows that see no key of the block get
 * zero parts and alpha 1. Returns whether any row's alpha differs from 1 (O then needs rescaling). */
static inline __attribute__((always_inline)) bool softmax_parts(int R, const int64_t *qpos, int64_t kb, int nb,
                                                                const float *S, float *m, __m512 *lsum, float *alpha,
                                                                uint16_t *pa, const char *pf_k, const char *pf_v,
                                                                int pf_lines, const int parts) {
    const int pf_per_row = (pf_lines + R - 1) / R;
    int pf = 0;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i top = _mm512_set1_epi32((int)0xFFFF0000u); /* a float's bf16 truncation */
    __mmask16 rescale = 0;
    for (int r0 = 0; r0 < R; r0 += 16) {
        const int n = CB_MIN(16, R - r0);
        float mo[16] __attribute__((aligned(64))), mn[16] __attribute__((aligned(64)));
        __mmask16 seen = 0;
        for (int i = 0; i < n; i++) { /* pass 1: the new running max of each row */
            const int r = r0 + i;
            const int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
            mo[i] = mn[i] = m[r];
            if (vis <= 0) continue;
            seen |= (__mmask16)(1u << i);
            const float *s = S + r * CB_FLASH_BK;
            __m512 s0 = _mm512_load_ps(s), s1 = _mm512_load_ps(s + 16), s2 = _mm512_load_ps(s + 32), s3 = _mm512_load_ps(s + 48);
            if (vis < CB_FLASH_BK) {
                const uint64_t keep = (1ull << vis) - 1ull;
                s0 = _mm512_mask_mov_ps(ninf, (__mmask16)keep, s0), s1 = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> 16), s1);
                s2 = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> 32), s2), s3 = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> 48), s3);
            }
            mn[i] = fmaxf(m[r], _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(s0, s1), _mm512_max_ps(s2, s3))));
        }
        const __m512 mnv = _mm512_load_ps(mn);
        const __m512 av = _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), seen, cb_exp512(_mm512_sub_ps(_mm512_load_ps(mo), mnv)));
        _mm512_storeu_ps(alpha + r0, av); /* alpha has room for 16 past R */
        rescale |= _mm512_mask_cmp_ps_mask(seen, av, _mm512_set1_ps(1.0f), _CMP_NEQ_UQ);
        uint16_t *dst = pa + (size_t)(r0 / 16) * 2 * parts * TILE_U16;
        for (int i = 0; i < n; i++) { /* pass 2: P = exp(S − m_new) straight into the tile parts */
            const int r = r0 + i;
            uint16_t *d = dst + 32 * i;
            for (int j = 0; j < pf_per_row && pf < pf_lines; j++, pf++) { /* the next block's K and V, into L2 */
                _mm_prefetch(pf_k + 64 * (size_t)pf, _MM_HINT_T1);
                _mm_prefetch(pf_v + 64 * (size_t)pf, _MM_HINT_T1);
            }
            if (!(seen >> i & 1)) {
                for (int t = 0; t < 2 * parts; t++) _mm512_store_si512((__m512i *)(d + (size_t)t * TILE_U16), _mm512_setzero_si512());
                continue;
            }
            const int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
            const float *s = S + r * CB_FLASH_BK;
            __m512 p[4] = { _mm512_load_ps(s), _mm512_load_ps(s + 16), _mm512_load_ps(s + 32), _mm512_load_ps(s + 48) };
            if (vis < CB_FLASH_BK) {
                const uint64_t keep = (1ull << vis) - 1ull;
                for (int t = 0; t < 4; t++) p[t] = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> (16 * t)), p[t]);
            }
            const __m512 mb = _mm512_set1_ps(mn[i]);
            for (int t = 0; t < 4; t++) p[t] = cb_exp512(_mm512_sub_ps(p[t], mb));
            const __m512 a = _mm512_permutexvar_ps(_mm512_set1_epi32(i), av);
            m[r] = mn[i];
            if (parts == 1) { /* fast mode: P rounded to bf16 (RNE), and l sums the rounded weights */
                for (int st = 0; st < 2; st++) {
                    const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(p[2 * st + 1], p[2 * st]);
                    _mm512_store_si512((__m512i *)(d + (size_t)st * TILE_U16), b);
                    p[2 * st] = bf16_lo_f32(b), p[2 * st + 1] = bf16_hi_f32(b);
                }
                lsum[r] = _mm512_fmadd_ps(lsum[r], a, _mm512_add_ps(_mm512_add_ps(p[0], p[1]), _mm512_add_ps(p[2], p[3])));
                continue;
            }
            lsum[r] = _mm512_fmadd_ps(lsum[r], a, _mm512_add_ps(_mm512_add_ps(p[0], p[1]), _mm512_add_ps(p[2], p[3])));
            for (int st = 0; st < 2; st++) { /* parts by truncation: p = hi + mid + lo exactly (p is finite) */
                __m512i lo = _mm512_castps_si512(p[2 * st]), hi = _mm512_castps_si512(p[2 * st + 1]);
                for (int q = 0; q < PARTS; q++) {
                    const __m512i tl = q + 1 < PARTS ? _mm512_and_si512(lo, top) : lo;
                    const __m512i th = q + 1 < PARTS ? _mm512_and_si512(hi, top) : hi;
                    _mm512_store_si512((__m512i *)(d + (size_t)(st * PARTS + q) * TILE_U16), (__m512i)_mm512_cvtne2ps_pbh(
                                           _mm512_castsi512_ps(th), _mm512_castsi512_ps(tl))); /* exact: bf16 values */
                    if (q + 1 < PARTS)
                        lo = _mm512_castps_si512(_mm512_sub_ps(_mm512_castsi512_ps(lo), _mm512_castsi512_ps(tl))),
                        hi = _mm512_castps_si512(_mm512_sub_ps(_mm512_castsi512_ps(hi), _mm512_castsi512_ps(th)));
                }
            }
        }
    }
    return rescale != 0;
}

static inline __attribute__((always_inline)) void flash(int R, const float *Q, const int64_t *qpos,
                                                       const cb_kv_view *kv, int64_t k0, int64_t k1, float *m, float *l,
                                                       float *O, flash_buf *b, const int parts) {
    const int hd = kv->hd, ks = hd / 32;
    const int Rp = (R + 31) & ~31;
    const int64_t full_end = kv->cap & ~(int64_t)15; /* tiles before this are 16 wide */
    split_rows(R, Q, hd, hd, Rp, ks, parts, b->qa);
    for (int r = 0; r < Rp; r++) {
        if (r < R) memcpy(b->O + (size_t)r * hd, O + (size_t)r * hd, sizeof(float) * (size_t)hd);
        else memset(b->O + (size_t)r * hd, 0, sizeof(float) * (size_t)hd);
    }
    /* P parts of the padding rows R..Rp stay zero; softmax_parts writes the others every block */
    memset(b->pa, 0, sizeof(uint16_t) * (size_t)Rp * CB_FLASH_BK * parts);
    __m512 lsum[CB_FLASH_MAX_ROWS];
    for (int r = 0; r < R; r++) lsum[r] = _mm512_mask_mov_ps(_mm512_setzero_ps(), 1, _mm512_set1_ps(l[r]));
    c_ctx cs __attribute__((aligned(64))), co __attribute__((aligned(64)));
    cs.Y = b->S, cs.ldy = CB_FLASH_BK, cs.M = Rp, cs.N = CB_FLASH_BK;
    co.Y = b->O, co.ldy = hd, co.M = Rp, co.N = hd;
    const size_t qblock = (size_t)ks * parts * TILE_U16, pblock = (size_t)2 * parts * TILE_U16; /* 16 rows */
    tiles_on();
    for (int64_t kb = k0; kb < k1; kb += CB_FLASH_BK) {
        const int nb = (int)CB_MIN((int64_t)CB_FLASH_BK, k1 - kb);
        int any = 0; /* rows that see at least one key of this block */
        for (int r = 0; r < R; r++) any |= qpos[r] >= kb;
        if (!any) continue;
        const uint32_t *kt; /* 4 tiles of 16 keys, hd/2 pairs × 16 keys each */
        if (kb + CB_FLASH_BK <= full_end)
            kt = (const uint32_t *)((const uint16_t *)kv->k + cb_kv_k_offset(kb, 0, hd, kv->cap, CB_BF16));
        else {
            stage_k(kv, kb, nb, b->kst);
            kt = b->kst;
        }
        const size_t ktile = (size_t)(hd / 2) * 16; /* uint32 per 16-key tile */
        for (int m0 = 0; m0 < Rp; m0 += 32)
            for (int n0 = 0; n0 < CB_FLASH_BK; n0 += 32) {
                const uint16_t *a0 = b->qa + (size_t)(m0 / 16) * qblock;
                const uint32_t *b0 = kt + (size_t)(n0 / 16) * ktile;
                block32(&cs, m0, n0, false, false, a0, a0 + qblock, b0, b0 + ktile, ks, parts);
            }
        /* prefetches past k1 or the cache end are harmless: they never fault */
        const size_t bbytes = (size_t)CB_FLASH_BK * hd * 2; /* of K, and of V, per block */
        const char *pk = (const char *)kt + bbytes, *pv = (const char *)kv->v + (size_t)kb * hd * 2 + bbytes;
        const bool rescale = softmax_parts(R, qpos, kb, nb, b->S, m, lsum, b->alpha, b->pa, pk, pv,
                                           kb + CB_FLASH_BK < k1 && kt != b->kst ? (int)(bbytes / 64) : 0, parts);
        pack_v((const uint16_t *)kv->v + (size_t)kb * hd, hd, nb, b->vt);
        for (int r = 0; rescale && r < R; r++) { /* alpha is exactly 1 wherever the row's max did not move */
            if (b->alpha[r] == 1.0f) continue;
            const __m512 a = _mm512_set1_ps(b->alpha[r]);
            float *o = b->O + (size_t)r * hd;
            for (int d = 0; d < hd; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(o + d), a));
        }
        const int psteps = (nb + 31) / 32; /* a second step of only zero keys is skipped */
        for (int m0 = 0; m0 < Rp; m0 += 32)
            for (int n0 = 0; n0 < hd; n0 += 32) {
                const uint16_t *a0 = b->pa + (size_t)(m0 / 16) * pblock;
                const uint32_t *b0 = b->vt + (size_t)(n0 / 16) * 2 * TILE_U32;
                block32(&co, m0, n0, true, false, a0, a0 + pblock, b0, b0 + 2 * TILE_U32, psteps, parts);
            }
    }
    _tile_release();
    for (int r = 0; r < R; r++) {
        memcpy(O + (size_t)r * hd, b->O + (size_t)r * hd, sizeof(float) * (size_t)hd);
        l[r] = _mm512_reduce_add_ps(lsum[r]);
    }
}

void cb_attn_flash_amx(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                       float *m, float *l, float *O, bool fast) {
    flash_buf *buf = cb_tscratch_get(&t_buf, sizeof(flash_buf));
    if (!buf) { /* out of memory: the AVX-512 kernel (same contract; exact in both modes) */
        cb_attn_flash_avx512(R, Q, qpos, kv, k0, k1, m, l, O);
        return;
    }
    if (fast) flash(R, Q, qpos, kv, k0, k1, m, l, O, buf, 1);
    else flash(R, Q, qpos, kv, k0, k1, m, l, O, buf, PARTS);
}
