/* 8-bit KV cache rows: fp8 E4M3 or int8 codes with one fp32 scale per (position, KV head), separately for
 * K and for V: x[d] ≈ scale · value(code[d]), scale = max_d |x[d]| / 448 (fp8) or / 127 (int8); a row of
 * zeros gets scale 0 and zero codes. A row is quantised once, when its token is appended, and never again
 * (why per token and not per block of keys: docs/quantization.md, "8-bit KV cache"). */
#ifndef CB_KERNELS_KV8_H
#define CB_KERNELS_KV8_H

#include "gemm8.h"

static inline bool cb_kv_is_q8(cb_dtype t) { return t == CB_F8_E4M3 || t == CB_I8; }

/* Quantise x[0..n) into codes[0..n) (1 byte each); returns the scale. Non-finite inputs give the
 * converters' saturated / NaN codes (the cache keeps what the model computed). */
float cb_kv8_quantize_row(const float *x, int n, cb_dtype t, uint8_t *codes);

/* The value of one code before scaling: exact (fp8 E4M3 decoded, int8 as is). */
static inline float cb_kv8_code_value(uint8_t c, cb_dtype t) {
    return t == CB_F8_E4M3 ? cb_fp8_to_f32(c) : (float)(int8_t)c;
}

/* x → its 8-bit reconstruction scale · value(code), in place (the dequantised twin's cache). */
void cb_kv8_round_row(float *x, int n, cb_dtype t);

#endif
