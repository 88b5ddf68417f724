/* fp8 (E4M3) codes in AVX-512 registers, shared by the fp8 GEMV (gemm8_avx512.c) and the fp8 flash decode
 * (attention8_avx512.c); include only from files compiled with the AVX-512 flags. Why subnormal codes need
 * their own decode: docs/quantization.md, "Subnormal codes". */
#ifndef CB_FP8_AVX512_H
#define CB_FP8_AVX512_H

#include <immintrin.h>

/* The E4M3 subnormals (exponent field 0, mantissa != 0) among 64 codes. */
static inline __attribute__((always_inline)) __mmask64 cb_fp8_sub64(__m512i c) {
    return _mm512_mask_test_epi8_mask(_mm512_testn_epi8_mask(c, _mm512_set1_epi8(0x78)), c, _mm512_set1_epi8(0x07));
}

/* 16 codes, sign-extended to 32 bits and shifted left by 20 (v), as value · 2^-104 exactly, never a
 * subnormal: the exponent field biased by 16 (0000eeee → 0001eeee) gives the normal codes; a zero-exponent
 * lane then holds ±2^-111 · 1.mmm, and 2·that − ±2^-110 (one masked FMA, exact: the result has <= 3
 * significant bits) is ±mmm · 2^-113 = value · 2^-104 (zero codes give 0). */
#define CB_FP8_FIX_SHIFT 16 /* value · 2^-104 = (value · 2^-120) · 2^16 */
static inline __attribute__((always_inline)) __m512 cb_fp8_bits_fix(__m512i v) {
    const __mmask16 e0 = _mm512_testn_epi32_mask(v, _mm512_set1_epi32(0x07800000));
    /* (A & B) | C: imm 0xEA */
    const __m512 t = _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(v, _mm512_set1_epi32((int)0x87F00000u), _mm512_set1_epi32(0x08000000), 0xEA));
    const __m512 c = _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(v, _mm512_set1_epi32((int)0x80000000u), _mm512_set1_epi32(0x08800000), 0xEA));
    return _mm512_mask_fmsub_ps(t, e0, _mm512_set1_ps(2.0f), c);
}

#endif
