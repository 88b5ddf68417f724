/* The AMX tile layout of a bf16 weight matrix W [N rows, K cols] (the B operand of TDPBF16PS), made once
 * at engine creation so prefill GEMMs do no per-call packing (docs/performance.md "AMX").
 * Output rows go in groups of 16, K in steps of 32; tile (g, s) is 16 rows × 16 uint32 at
 * (g · ksteps(K) + s) · 256: row r holds the bf16 pair W[16g + c][32s + 2r], W[16g + c][32s + 2r + 1]
 * (low half first) in column c. Elements past N or K are zero. Portable code: the packing needs no ISA.
 * int8 weights (the B operand of TDPBSSD, "VNNI-4"): the same 16 × 16 uint32 tiles with K in steps of 64;
 * row r of tile (g, s) holds W[16g + c][64s + 4r .. 64s + 4r + 3] (lowest k in the low byte) in column c. */
#ifndef CB_TILES_H
#define CB_TILES_H

#include "../types.h"

#define CB_TILE_ROWS 16 /* output rows per tile group */
#define CB_TILE_K 32    /* k per tile step */
#define CB_TILE_U32 256 /* uint32 per tile */

static inline int64_t cb_tiles_ksteps(int64_t cols) { return (cols + CB_TILE_K - 1) / CB_TILE_K; }
/* uint32 per group of 16 output rows (all K steps). */
static inline size_t cb_tiles_group_u32(int64_t cols) { return (size_t)cb_tiles_ksteps(cols) * CB_TILE_U32; }
/* Bytes of the tile copy of a [rows, cols] matrix. */
static inline size_t cb_tiles_bytes(int64_t rows, int64_t cols) {
    return (size_t)((rows + CB_TILE_ROWS - 1) / CB_TILE_ROWS) * cb_tiles_group_u32(cols) * sizeof(uint32_t);
}
#define CB_TILE_K_I8 64 /* k per int8 tile step */
static inline int64_t cb_tiles_i8_ksteps(int64_t cols) { return (cols + CB_TILE_K_I8 - 1) / CB_TILE_K_I8; }
static inline size_t cb_tiles_i8_group_u32(int64_t cols) { return (size_t)cb_tiles_i8_ksteps(cols) * CB_TILE_U32; }
/* The layout by weight dtype: int8 -> VNNI-4, anything else -> bf16 pairs. */
static inline size_t cb_tiles_group_u32_of(cb_dtype dt, int64_t cols) {
    return dt == CB_I8 ? cb_tiles_i8_group_u32(cols) : cb_tiles_group_u32(cols);
}
static inline size_t cb_tiles_bytes_of(cb_dtype dt, int64_t rows, int64_t cols) {
    return (size_t)((rows + CB_TILE_ROWS - 1) / CB_TILE_ROWS) * cb_tiles_group_u32_of(dt, cols) * sizeof(uint32_t);
}
/* Whether engines keep tile copies by default: on the amx path (the only one that reads them), unless
 * CTXBENCH_AMX_PACK=0 (per-call packing, for before/after measurements). Defined in dispatch.c. */
bool cb_tile_weights_default(void);
/* Pack bf16 W into dst (cb_tiles_bytes(W->rows, W->cols) bytes, 64-byte aligned). OpenMP-parallel. */
void cb_tiles_pack(const cb_weight *W, uint32_t *dst);
/* Pack int8 W into dst (cb_tiles_bytes_of(CB_I8, W->rows, W->cols) bytes, 64-byte aligned). OpenMP-parallel. */
void cb_tiles_pack_i8(const cb_weight *W, uint32_t *dst);

#endif
