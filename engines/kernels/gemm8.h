/* 8-bit weights (docs/quantization.md): FP8 E4M3 (OCP / PyTorch float8_e4m3fn) and INT8 symmetric, both with a
 * per-output-channel (per-row) fp32 scale: W[n, k] ≈ scale[n] · q[n, k].
 *   fp8:  scale = max|row| / 448, q = fp8(w / scale) (round to nearest even, saturating to ±448)
 *   int8: scale = max|row| / 127, q = rne(w / scale) clamped to ±127
 * An all-zero row gets scale 1 (and zero codes). See docs/quantization.md. */
#ifndef CB_GEMM8_H
#define CB_GEMM8_H

#include "kernels.h"

#define CB_FP8_MAX 448.0f
#define CB_FP8_NAN 0x7f /* S.1111.111: the only NaN code (no infinities) */

/* Exact conversions. fp32 -> fp8 rounds to nearest even, saturates finite and infinite overflow to
 * ±448, maps NaN to 0x7f / 0xff. */
uint8_t cb_f32_to_fp8(float f);
float cb_fp8_to_f32(uint8_t code);
/* Round to nearest even and clamp to [-127, 127]. */
int8_t cb_f32_to_i8(float f);

static inline bool cb_dtype_is_q8(cb_dtype t) { return t == CB_F8_E4M3 || t == CB_I8; }

/* Quantise rows [rows, cols] of `src` (f32/f16/bf16) into `dst` (1 byte/elt) and `scale` [rows].
 * -1 (err filled) for an unsupported source/target dtype or a non-finite weight. OpenMP over rows. */
int cb_quantize_rows(const void *src, cb_dtype src_dtype, int64_t rows, int64_t cols, cb_dtype to, void *dst,
                     float *scale, cb_err *err);

/* Exact-ish mode: Y[M, N] (+)= X[M, K] · (scale ⊙ Q)ᵀ with fp32 activations, 8-bit codes decoded exactly
 * in registers, fp32 accumulation, scale applied once per output: y = scale[n] · Σ_k x_k q_nk. int8 decode
 * on VNNI instead rounds each activation row to 24-bit fixed point and sums exactly in integers
 * (docs/quantization.md, "int8 weights in exact mode").
 * W->dtype must be CB_F8_E4M3 or CB_I8 with W->scale set. Deterministic for any thread count. */
void cb_matmul_q8(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
void cb_matmul_q8_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                      bool accumulate);
/* Fast mode.
 *   fp8:  activations rounded to bf16 (RNE); y = scale[n] · Σ_k bf16(x_k) q_nk, fp32 accumulation.
 *   int8: each activation row m is quantised dynamically: sx_m = max_k |x_mk| / 127,
 *         xq = rne(x / sx_m) clamped to ±127; integer dot products (int32, exact; VNNI vpdpbusd on
 *         AVX-512) then y = (float)Σ_k xq_k q_nk · (sx_m · scale[n]). Bit-identical to the ref twin. */
void cb_matmul_q8_fast(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                       bool accumulate);
void cb_matmul_q8_fast_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                           bool accumulate);

/* The same over n weights with equal K on the same activations (q/k/v, gate/up), Y[i] (ld ldy[i]) written:
 * each output exactly as one call per weight gives it; at decode sizes one parallel region for all of them. */
void cb_matmul_q8_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                        const int64_t *ldy);
void cb_matmul_q8_fast_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                             const int64_t *ldy);

/* Dynamic per-row activation quantisation of the int8 fast path (shared by both twins so they agree bit
 * for bit): sx[m] = max_k |x_mk| / 127, xq = rne(x / sx) clamped to ±127; an all-zero row gets sx 0. */
void cb_q8_quantize_activations(int M, const float *X, int64_t ldx, int64_t K, int8_t *xq, float *sx);

/* The same for one row on AVX-512 (gemm8_avx512.c), bit-identical: K codes into xq, the row's scale into sx. */
void cb_q8_quantize_row_avx512(const float *x, int64_t K, int8_t *xq, float *sx);

/* The same on AVX2 (gemm8_avx2.c), bit-identical. */
void cb_q8_quantize_row_avx2(const float *x, int64_t K, int8_t *xq, float *sx);

/* AVX-512 implementations (gemm8_avx512.c; call only when cb_kernels_path() >= CB_PATH_AVX512). */
void cb_matmul_q8_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                         bool accumulate);
void cb_matmul_q8_fast_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                              bool accumulate); /* needs AVX512_VNNI for int8 */
void cb_matmul_q8_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                               const int64_t *ldy);
void cb_matmul_q8_fast_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                                    float *const *Y, const int64_t *ldy); /* needs AVX512_VNNI for int8 */
/* A thread's rows [lo, hi) of n 8-bit weights (prefix sums of their rows in `first`) in the decode kernels:
 * their loops prefetch `dist` bytes ahead, so the first `dist` bytes of the slice are requested here.
 * Returns the weight that row lo belongs to. */
int cb_q8_prefetch_slice_start(int n, const cb_weight *const *W, const int64_t *first, int64_t lo, int64_t hi,
                               size_t dist);

/* M at or below which the AVX-512 exact path streams weights (decode); above, it decodes panels of W
 * and runs the fp32 GEMM on them (prefill). */
#define CB_Q8_SKINNY_MAX 16

#endif
