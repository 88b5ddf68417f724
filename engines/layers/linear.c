/* Linear projections for every layer (contract in linear.h). */
#include "linear.h"

#include "../counters.h"
#include "../kernels/kernels.h"

void cb_linear_count(int n, const cb_weight *w, const cb_weight *bias) {
    cb_ctr.flops += 2LL * n * w->rows * w->cols;
    cb_ctr.weight_bytes += (long long)(cb_weight_bytes(w) + (bias ? cb_weight_bytes(bias) : 0));
}

void cb_linear_product(cb_mode mode, int n, const float *x, int64_t ldx, const cb_weight *w, float *y, int64_t ldy) {
    if (mode == CB_MODE_FAST) cb_matmul_bf16(n, x, ldx, w, y, ldy, false);
    else cb_matmul(n, x, ldx, w, y, ldy, false);
}

void cb_linear(cb_mode mode, int n, const float *x, int64_t ldx, const cb_weight *w, const cb_weight *bias, float *y,
               int64_t ldy) {
    cb_linear_product(mode, n, x, ldx, w, y, ldy);
    if (bias && bias->data) cb_add_bias(n, y, ldy, bias);
    cb_linear_count(n, w, bias);
}

void cb_linear_multi(cb_mode mode, int n, const float *x, int64_t ldx, int k, const cb_weight *const *w,
                     const cb_weight *const *bias, float *const *y, const int64_t *ldy) {
    if (mode == CB_MODE_FAST) cb_matmul_bf16_multi(n, x, ldx, k, w, y, ldy);
    else cb_matmul_multi(n, x, ldx, k, w, y, ldy);
    for (int i = 0; i < k; i++) {
        const cb_weight *b = bias ? bias[i] : NULL;
        if (b && b->data) cb_add_bias(n, y[i], ldy[i], b);
        cb_linear_count(n, w[i], b);
    }
}
