/* Public kernel entry points: pick the AVX-512 implementation when the selected path allows it,
 * else the portable twin. AVX-512 implementations are declared in kernels_avx512.h. */
#include "kernels.h"

void cb_matmul(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    cb_matmul_ref(M, X, ldx, W, Y, ldy, accumulate);
}
void cb_matmul_bf16(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    cb_matmul_bf16_ref(M, X, ldx, W, Y, ldy, accumulate);
}
void cb_rmsnorm(int rows, int n, const float *x, int64_t ldx, const cb_weight *w, double eps, float *y, int64_t ldy) {
    cb_rmsnorm_ref(rows, n, x, ldx, w, eps, y, ldy);
}
void cb_silu_mul(int64_t n, const float *gate, const float *up, float *out) { cb_silu_mul_ref(n, gate, up, out); }
void cb_softmax(int n, float *x) { cb_softmax_ref(n, x); }
void cb_conv1d_causal(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w, const cb_weight *bias,
                      float *state, float *y, int64_t ldy) {
    cb_conv1d_causal_ref(T, C, K, x, ldx, w, bias, state, y, ldy);
}
