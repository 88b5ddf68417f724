/* Value types shared by the kernels and the model code: the bottom of the include graph (it includes
 * only common.h), so kernels/ never includes model/ and model/ may include kernel headers. */
#ifndef CB_TYPES_H
#define CB_TYPES_H

#include "common.h"

/* A weight matrix or vector: data in `dtype`, row-major; for matrices rows = out features, cols = in
 * (PyTorch Linear layout). `scale` is non-NULL only for 8-bit formats (per-row fp32 scale). */
typedef struct {
    const void *data;
    cb_dtype dtype;
    int64_t rows, cols; /* vectors: rows = 1 */
    const float *scale;
    /* bf16 and int8 matrices only: the same weights packed once into the AMX tile layout of their dtype
     * (kernels/tiles.h), or NULL (the AMX GEMM then packs per call). Owned by whoever made it (the engine). */
    const uint32_t *tiles;
} cb_weight;

/* Bytes a weight occupies and streams: its elements plus, for 8-bit formats, the fp32 per-row scales;
 * 0 for an absent (optional) weight. The one definition every byte count uses (docs/counters.md). */
static inline size_t cb_weight_bytes(const cb_weight *w) {
    if (!w->data) return 0;
    return (size_t)(w->rows * w->cols) * cb_dtype_size(w->dtype) + (w->scale ? (size_t)w->rows * sizeof(float) : 0);
}

/* CB_ROPE_NONE: no positional encoding at all (Granite 4.0-H's "nope"); rot_dim is 0. */
typedef enum { CB_ROPE_DEFAULT = 0, CB_ROPE_LLAMA3, CB_ROPE_NONE } cb_rope_type;

/* RoPE parameters of an attention layer (rotate-half convention; docs/engines.md). */
typedef struct {
    cb_rope_type type;
    double theta;        /* rope_theta (default 10000) */
    int rot_dim;         /* rotated dims per head: head_dim, or head_dim * partial_rotary_factor */
    /* llama3 scaling (type == CB_ROPE_LLAMA3) */
    double factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
} cb_rope;

#endif
