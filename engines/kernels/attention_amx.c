/* AMX flash-attention block kernel for prefill over a bf16 cache with head_dim % 32 == 0 (contract in
 * attention.h; dispatched from attention_ref.c for R >= CB_ATTN_AMX_MIN_ROWS). Per block of CB_FLASH_BK keys:
 *   S = Q·Kᵀ on the tiles: the cache's K tiles are already the B operand (16 keys × dims d, d+1 side by
 *     side, attention.h), so they load straight from the cache; Q is split once per call into three bf16
 *     parts (hi + mid + lo = all 24 bits of each fp32 q, as in gemm_amx.c), one tile product per part;
 *   the online-softmax update of the AVX-512 kernel (flash_softmax_avx512.h: same rounding, same running
 *     sums);
 *   O = O·α + P·V on the tiles: P split into three bf16 parts the same way, V rows interleaved in pairs of
 *     keys into B tiles once per block (reused by every row).
 * Products of exact parts against exact bf16 keys and values with fp32 sums: the numbers are the AVX-512
 * kernel's up to fp32 summation order. O is accumulated in an fp32 buffer of whole tiles (rows padded to
 * 32); a block that runs past the last full 16-key tile of the capacity is staged with zeros. */
#include <math.h>
#include <stdlib.h>

#include "amx_internal.h"
#include "attention.h"
#include "flash_softmax_avx512.h"
#include "kernels_amx.h"

#define PARTS 3
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

static _Thread_local flash_buf *t_buf;

/* V rows [kb, kb + nb) -> B tiles: row r of step s holds keys 32s + 2r, 32s + 2r + 1 of 16 dims (low half
 * first); keys past nb are zero. */
static void pack_v(const uint16_t *v, int hd, int nb, uint32_t *vt) {
    for (int s = 0; s < 2; s++)
        for (int r = 0; r < 16; r++) {
            const int j0 = 32 * s + 2 * r, j1 = j0 + 1;
            for (int g = 0; g < hd / 16; g++) {
                __m512i a = j0 < nb ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(v + (size_t)j0 * hd + 16 * g)))
                                    : _mm512_setzero_si512();
                __m512i b = j1 < nb ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(v + (size_t)j1 * hd + 16 * g)))
                                    : _mm512_setzero_si512();
                _mm512_store_si512(vt + (size_t)(2 * g + s) * TILE_U32 + 16 * r, _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
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

void cb_attn_flash_amx(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                       float *m, float *l, float *O) {
    const int hd = kv->hd, ks = hd / 32;
    if (!t_buf) t_buf = aligned_alloc(64, sizeof(flash_buf));
    if (!t_buf) { /* out of memory: the AVX-512 kernel (same contract) */
        cb_attn_flash_avx512(R, Q, qpos, kv, k0, k1, m, l, O);
        return;
    }
    flash_buf *b = t_buf;
    const int Rp = (R + 31) & ~31;
    const int64_t full_end = kv->cap & ~(int64_t)15; /* tiles before this are 16 wide */
    split_rows(R, Q, hd, hd, Rp, ks, PARTS, b->qa);
    for (int r = 0; r < Rp; r++) {
        if (r < R) memcpy(b->O + (size_t)r * hd, O + (size_t)r * hd, sizeof(float) * (size_t)hd);
        else memset(b->O + (size_t)r * hd, 0, sizeof(float) * (size_t)hd);
    }
    __m512 lsum[CB_FLASH_MAX_ROWS];
    for (int r = 0; r < R; r++) lsum[r] = _mm512_mask_mov_ps(_mm512_setzero_ps(), 1, _mm512_set1_ps(l[r]));
    c_ctx cs __attribute__((aligned(64))), co __attribute__((aligned(64)));
    cs.Y = b->S, cs.ldy = CB_FLASH_BK, cs.M = Rp, cs.N = CB_FLASH_BK;
    co.Y = b->O, co.ldy = hd, co.M = Rp, co.N = hd;
    const size_t qblock = (size_t)ks * PARTS * TILE_U16, pblock = (size_t)2 * PARTS * TILE_U16; /* 16 rows */
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
                block32(&cs, m0, n0, false, false, a0, a0 + qblock, b0, b0 + ktile, ks, PARTS);
            }
        softmax_block(R, qpos, kb, nb, b->S, m, lsum, b->alpha);
        pack_v((const uint16_t *)kv->v + (size_t)kb * hd, hd, nb, b->vt);
        split_rows(R, b->S, CB_FLASH_BK, CB_FLASH_BK, Rp, 2, PARTS, b->pa);
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(b->alpha[r]);
            float *o = b->O + (size_t)r * hd;
            for (int d = 0; d < hd; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(o + d), a));
        }
        const int psteps = (nb + 31) / 32; /* a second step of only zero keys is skipped */
        for (int m0 = 0; m0 < Rp; m0 += 32)
            for (int n0 = 0; n0 < hd; n0 += 32) {
                const uint16_t *a0 = b->pa + (size_t)(m0 / 16) * pblock;
                const uint32_t *b0 = b->vt + (size_t)(n0 / 16) * 2 * TILE_U32;
                block32(&co, m0, n0, true, false, a0, a0 + pblock, b0, b0 + 2 * TILE_U32, psteps, PARTS);
            }
    }
    _tile_release();
    for (int r = 0; r < R; r++) {
        memcpy(O + (size_t)r * hd, b->O + (size_t)r * hd, sizeof(float) * (size_t)hd);
        l[r] = _mm512_reduce_add_ps(lsum[r]);
    }
}
