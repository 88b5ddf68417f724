/* AVX2 kernels for CPUs without AVX-512 (compiled with Makefile AVX2_FLAGS: AVX2, FMA, F16C, BMI2; call only
 * after cb_kernels_path() >= CB_PATH_AVX2, through dispatch.c). Same contracts as the public entry points in
 * kernels.h, gemm8.h and attention.h. Batch-1 and small-M GEMVs keep the AVX-512 skinny kernels' order of
 * operations (16 lanes held as two 8-lane halves, reduced by halves), so decode gives the same bits on both
 * paths; prefill-sized GEMMs and attention are only held to the portable twins' tolerances
 * (docs/performance.md, "Kernel paths"). */
#ifndef CB_KERNELS_AVX2_H
#define CB_KERNELS_AVX2_H

#include "kernels.h"

/* f32 / f16 / bf16 weights (gemm_avx2.c); 8-bit weights are gemm8_avx2.c's. */
bool cb_matmul_avx2_supports(const cb_weight *W);
void cb_matmul_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
/* Fast mode: activations and weights rounded to bf16 (RNE), fp32 FMAs on the rounded values. */
void cb_matmul_bf16_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                         bool accumulate);
void cb_matmul_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                          const int64_t *ldy);
void cb_matmul_bf16_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                               float *const *Y, const int64_t *ldy);

/* 8-bit weights (gemm8_avx2.c), contracts of cb_matmul_q8* in gemm8.h. Exact mode widens the codes to fp32
 * (no VNNI here); fast int8 sums the dynamically quantised activations in exact integers (vpmaddubsw on
 * |x| and sign-moved codes, vpmaddwd), bit-identical to the portable twin. */
void cb_matmul_q8_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                       bool accumulate);
void cb_matmul_q8_fast_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                            bool accumulate);
void cb_matmul_q8_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                             const int64_t *ldy);
void cb_matmul_q8_fast_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                                  float *const *Y, const int64_t *ldy);
/* Whether the fp8 decode tests each 64 codes for E4M3 subnormals (true) or places them as fp32 subnormals
 * unchecked (false: this core's FMAs took subnormal inputs at the normal rate in a one-time probe, whose best
 * times on a normal and a subnormal operand go to probe_ns when non-NULL, and MXCSR's DAZ is off). Both
 * loops give the same bits. The force call (tests): -1 as probed, 0 skip, 1 test; DAZ on always tests.
 * The avx2 flash decode over an fp8 cache asks it with DAZ off for its choice of decode (attention_avx2.c). */
bool cb_q8_avx2_fp8_subnormal_test(double probe_ns[2]);
void cb_q8_avx2_force_fp8_subnormal_test(int mode);

#endif
