/* A linear projection y = x · Wᵀ (+ bias), the one place that chooses the product for the engine's
 * mode and counts it. exact: fp32 activations; fast: activations rounded to bf16 (docs/engines.md,
 * "Fast mode"); 8-bit weights (docs/quantization.md) are dispatched by the kernels either way.
 * Counters: 2·n·rows·cols FLOPs and cb_weight_bytes of the weight and its bias, per call. */
#ifndef CB_LINEAR_H
#define CB_LINEAR_H

#include "../engine.h"

/* y[n, w->rows] (row stride ldy) = x[n, w->cols] (row stride ldx) · wᵀ, + bias when bias && bias->data. */
void cb_linear(cb_mode mode, int n, const float *x, int64_t ldx, const cb_weight *w, const cb_weight *bias, float *y,
               int64_t ldy);
/* The two halves of cb_linear, for callers that split one projection into tiles run inside their own
 * parallel region (the counters are not atomic): the mode's product alone, without bias or counting,
 * and the count of one whole projection over n rows, once, outside the region. */
void cb_linear_product(cb_mode mode, int n, const float *x, int64_t ldx, const cb_weight *w, float *y, int64_t ldy);
void cb_linear_count(int n, const cb_weight *w, const cb_weight *bias);
/* k (≤ 4) projections of the same x (q/k/v, gate/up): results identical to k cb_linear calls, but at
 * decode one fork/join and one weight stream. bias may be NULL, or hold NULL / absent entries. */
void cb_linear_multi(cb_mode mode, int n, const float *x, int64_t ldx, int k, const cb_weight *const *w,
                     const cb_weight *const *bias, float *const *y, const int64_t *ldy);

#endif
