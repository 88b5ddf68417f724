/* AVX-512 kernels (compiled with -mavx512*; call only after cb_kernels_path() >= CB_PATH_AVX512, through
 * dispatch.c). Same contracts as the public entry points in kernels.h. */
#ifndef CB_KERNELS_AVX512_H
#define CB_KERNELS_AVX512_H

#include "kernels.h"

/* *_avx512.c files are compiled for exactly the avx512 gate of cpu.c; a function that needs more says so
 * here and runs only behind the check of that feature (cb_kernels_path() >= CB_PATH_AVX512_BF16,
 * cb_kernels_vnni()). Such a function must not be inlined into code the gate alone admits. */
#define CB_TARGET_BF16 __attribute__((target("avx512bf16"), noinline))
#define CB_TARGET_VNNI __attribute__((target("avx512vnni"), noinline))
#define CB_TARGET_BF16_INLINE __attribute__((target("avx512bf16"), always_inline)) inline

/* Weight dtypes the AVX-512 GEMMs handle (others go to the portable twin). */
bool cb_matmul_avx512_supports(const cb_weight *W);

/* Exact mode: fp32 activations, weights widened exactly, fp32 FMA accumulation.
 * Blocked GEMM (packed panels) for large M, a weight-streaming skinny kernel for small M. */
void cb_matmul_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
/* Fast mode semantics (activations and weights rounded to bf16 RNE, fp32 accumulation).
 * use_dpbf16: vdpbf16ps dot products (needs AVX512_BF16); otherwise fp32 FMAs on the rounded values. */
void cb_matmul_bf16_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                           bool accumulate, bool use_dpbf16);
/* Several weights on the same X (contract of cb_matmul_multi in kernels.h). */
void cb_matmul_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                            const int64_t *ldy);
void cb_matmul_bf16_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                                 float *const *Y, const int64_t *ldy, bool use_dpbf16);
/* M at or below which cb_matmul_avx512 uses the skinny (weight-streaming) kernel. */
int cb_matmul_avx512_skinny_max(void);
/* Force a path (benchmarks/tests): 0 = automatic by M, 1 = always skinny, 2 = always blocked. */
void cb_matmul_avx512_force(int mode);
/* Batch-1 (M = 1) GEMV order, same numbers either way: 1 = each weight row start to end, 0 = blocks of 4
 * rows interleaved, -1 = the default (rows on AMD, blocks elsewhere; CTXBENCH_GEMV_ORDER=rows|blocks
 * overrides). Returns the order now in force. */
int cb_matmul_avx512_gemv_rows(int order);

void cb_rmsnorm_avx512(int rows, int n, const float *x, int64_t ldx, const cb_weight *w, double eps, float *y,
                       int64_t ldy);
void cb_silu_mul_avx512(int64_t n, const float *gate, const float *up, float *out);
void cb_softmax_avx512(int n, float *x);
void cb_add_avx512(int64_t n, float *y, const float *a);
void cb_add_bias_avx512(int M, float *Y, int64_t ldy, const cb_weight *bias);
void cb_conv1d_causal_avx512(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w,
                             const cb_weight *bias, float *state, float *y, int64_t ldy);
/* Vectorised expf used by silu/softmax (exposed for the accuracy test): 16 lanes in, 16 out. */
void cb_expf16_avx512(const float *in, float *out);

#endif
