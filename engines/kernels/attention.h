/* Flash-attention block kernel shared by prefill and decode (engines/layers/attention_layer.c).
 *
 * KV cache layout of one (sequence, KV head) with capacity `cap` positions, storage dtype f32/f16/bf16:
 *   K: tiles of 16 positions, each tile stored transposed [head_dim][w] with w = min(16, cap - 16·tile)
 *      (only the very last tile of the capacity can be narrower), so the 16 scores of a tile are one
 *      vector FMA chain over head_dim and the size is exactly cap·head_dim elements; bf16 with an even
 *      head_dim stores each tile as [head_dim/2][w][2] instead (dims d, d+1 of a key side by side), so
 *      one 64-byte load widens to dims d and d+1 of 16 keys with a shift and an and;
 *   V: row-major [cap][head_dim].
 * 8-bit caches (fp8 E4M3 / int8, engines/kernels/kv8.h) keep the same K tiles and V rows of 1-byte codes
 * plus one fp32 scale per position for K (ks[cap]) and one for V (vs[cap]): K[pos][d] = ks[pos] ·
 * value(code), likewise V. The kernels apply ks to the 16 scores of a tile and fold vs into the softmax
 * weights, so codes are only ever widened in registers (or, for prefill, one 64-key block at a time).
 * int8 with head_dim % 4 == 0 stores 4-byte groups instead, the operands of a byte dot product
 * (vpdpbusd) as they lie in memory (docs/quantization.md, "int8 KV layout"):
 *   K: each tile [head_dim/4][w][4] (dims 4c..4c+3 of a key side by side);
 *   V: groups of 4 positions, each [head_dim][u] with u = min(4, cap - 4·group) (positions 4g..4g+3 of
 *      one column side by side; only the last group of the capacity can be narrower).
 *
 * cb_attn_flash folds keys [k0, k1) into the online-softmax state of R query rows:
 *   Q [R][hd] fp32, already multiplied by 1/sqrt(hd); qpos[r]: row r may see key j iff j <= qpos[r];
 *   m[r] (running max, -INF initially), l[r] (running sum), O[R][hd] (unnormalised output).
 * Keys are visited in blocks of CB_FLASH_BK starting at k0 (k0 must be a multiple of 16), always in the
 * same order, so every result is independent of how callers spread work over threads.
 * Rows that see no key of [k0, k1) are left unchanged. Positions at k1 and after (not written yet, or left
 * by an earlier sequence) may hold anything, NaN scales included: no result depends on them. A non-finite
 * value or 8-bit scale among the keys reaches the rows that see it, on every path.
 * R <= CB_FLASH_MAX_ROWS, hd <= CB_FLASH_MAX_HD. */
#ifndef CB_KERNELS_ATTENTION_H
#define CB_KERNELS_ATTENTION_H

#include "../common.h"

#define CB_FLASH_BK 64
#define CB_FLASH_MAX_ROWS 64
#define CB_FLASH_MAX_HD 256

typedef struct {
    const void *k, *v; /* this (sequence, KV head)'s K tiles and V rows */
    const float *ks, *vs; /* 8-bit caches: per-position scales of K and of V (NULL otherwise) */
    cb_dtype dtype;    /* CB_F32, CB_F16, CB_BF16, CB_F8_E4M3 or CB_I8 */
    int hd;
    int64_t cap;       /* capacity in positions (decides the last tile's width) */
} cb_kv_view;

/* Whether a cache of dtype t and head_dim hd uses the d-pair tiles. */
static inline bool cb_kv_k_pairs(cb_dtype t, int hd) { return t == CB_BF16 && hd % 2 == 0; }
/* Whether it uses the 4-byte groups (int8: K d-quads, V position-quads). */
static inline bool cb_kv_quads(cb_dtype t, int hd) { return t == CB_I8 && hd % 4 == 0; }

/* Offset (elements) of K[pos][d] in the tiled layout of a dtype-t cache. */
static inline int64_t cb_kv_k_offset(int64_t pos, int d, int hd, int64_t cap, cb_dtype t) {
    int64_t tile = pos >> 4, base = tile * 16 * (int64_t)hd;
    int64_t w = cap - tile * 16 < 16 ? cap - tile * 16 : 16;
    if (cb_kv_k_pairs(t, hd)) return base + (int64_t)(d >> 1) * 2 * w + (pos & 15) * 2 + (d & 1);
    if (cb_kv_quads(t, hd)) return base + (int64_t)(d >> 2) * 4 * w + (pos & 15) * 4 + (d & 3);
    return base + (int64_t)d * w + (pos & 15);
}
/* Offset (elements) of V[pos][d]: row-major, or the position-quads of an int8 cache. */
static inline int64_t cb_kv_v_offset(int64_t pos, int d, int hd, int64_t cap, cb_dtype t) {
    if (!cb_kv_quads(t, hd)) return pos * hd + d;
    int64_t g = pos >> 2, u = cap - g * 4 < 4 ? cap - g * 4 : 4;
    return g * 4 * (int64_t)hd + (int64_t)d * u + (pos & 3);
}

void cb_attn_flash(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                   float *m, float *l, float *O);
/* Fast mode's variant (same contract): on the amx path, over a bf16 cache, Q and the softmax weights P enter
 * the tile products rounded to bf16 (one tile product each instead of three; l sums the rounded weights, so
 * each output stays a convex combination of V rows); over an int8 cache, decode holds Q and P in 16-bit
 * fixed point (with VNNI: two byte planes instead of three; on the avx2 path: vpmaddwd, P in 15 bits);
 * every other path is cb_attn_flash's. */
void cb_attn_flash_fast(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                        float *m, float *l, float *O);
void cb_attn_flash_ref(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                       float *m, float *l, float *O);
/* AVX-512 twins: require hd % 16 == 0 (the dispatcher falls back to the ref otherwise); _q8_ for 8-bit
 * caches (attention8_avx512.c), the other for f32 / f16 / bf16. */
void cb_attn_flash_q8_avx512(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0,
                             int64_t k1, float *m, float *l, float *O, bool fast);
void cb_attn_flash_avx512(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0,
                          int64_t k1, float *m, float *l, float *O);
/* AVX2 twin (attention_avx2.c), for CPUs without AVX-512: every cache dtype and layout above, hd % 8 == 0
 * (the dispatcher falls back to the ref otherwise); fp32 arithmetic (8-bit codes widened in registers,
 * scales applied as the ref applies them), except fast mode's decode over an int8 cache, which holds Q and
 * P in 16-bit fixed point and sums with vpmaddwd; every other dtype gives the same numbers in both modes. */
void cb_attn_flash_avx2(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                        float *m, float *l, float *O, bool fast);
/* How many of its calls took the fp8 decode by bit placement (docs/quantization.md, "Subnormal codes"): the
 * two fp8 routes give the same bits, so tests ask this which one ran. */
uint64_t cb_attn_avx2_fp8_placed_calls(void);
/* AMX twin (attention_amx.c): bf16 caches with hd % 32 == 0, on the amx path only; the dispatcher sends it
 * blocks of at least CB_ATTN_AMX_MIN_ROWS rows (prefill; decode's few rows stay on AVX-512); fast: Q and P
 * rounded to bf16 (cb_attn_flash_fast), else split into exact parts. */
#define CB_ATTN_AMX_MIN_ROWS 16
void cb_attn_flash_amx(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                       float *m, float *l, float *O, bool fast);

#endif
