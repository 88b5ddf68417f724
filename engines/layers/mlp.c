/* SwiGLU MLP shared by the transformer and Bamba engines. */
#include "mlp.h"

#include "../counters.h"
#include "../kernels/kernels.h"

size_t cb_mlp_scratch_floats(const cb_config *cfg, int n) { return 2 * (size_t)n * (size_t)cfg->d_ff; }

static void linear(cb_mode mode, int n, const float *x, int64_t ldx, const cb_weight *w, const cb_weight *b,
                   float *y, int64_t ldy) {
    if (mode == CB_MODE_FAST) cb_matmul_bf16(n, x, ldx, w, y, ldy, false);
    else cb_matmul(n, x, ldx, w, y, ldy, false);
    if (b && b->data) cb_add_bias(n, y, ldy, b);
}

void cb_mlp_forward(const cb_config *cfg, const cb_mlp_weights *w, cb_mode mode, int n, const float *x, float *out,
                    float *scratch) {
    int d = cfg->d_model, f = cfg->d_ff;
    float *gate = scratch, *up = scratch + (size_t)n * f;
    /* gate and up in one call: at decode one fork/join and one weight stream */
    const cb_weight *W[2] = { &w->gate, &w->up };
    float *const Y[2] = { gate, up };
    const int64_t ld[2] = { f, f };
    if (mode == CB_MODE_FAST) cb_matmul_bf16_multi(n, x, d, 2, W, Y, ld);
    else cb_matmul_multi(n, x, d, 2, W, Y, ld);
    if (w->gate_b.data) cb_add_bias(n, gate, f, &w->gate_b);
    if (w->up_b.data) cb_add_bias(n, up, f, &w->up_b);
    cb_silu_mul((int64_t)n * f, gate, up, gate);
    linear(mode, n, gate, f, &w->down, &w->down_b, out, d);
    size_t wbytes = (size_t)(w->gate.rows * w->gate.cols) * cb_dtype_size(w->gate.dtype) +
                    (size_t)(w->up.rows * w->up.cols) * cb_dtype_size(w->up.dtype) +
                    (size_t)(w->down.rows * w->down.cols) * cb_dtype_size(w->down.dtype);
    cb_ctr.flops += 2LL * 3 * n * (long long)d * f;
    cb_ctr.weight_bytes += (long long)wbytes;
}
