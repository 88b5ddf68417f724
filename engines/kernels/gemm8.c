/* 8-bit weight formats: exact fp8 E4M3 / int8 conversions, per-row quantisation, the portable 8-bit
 * GEMM twins and the dispatch to the AVX-512 ones (gemm8_avx512.c). */
#include "gemm8.h"
#include "kernels_avx2.h"

#include <math.h>
#include <xmmintrin.h>
#include <stdlib.h>
#include <string.h>

/* Bit arithmetic, no libm calls: it quantises every K/V row an 8-bit cache stores (a synthetic 1M-token
 * fill converts billions of values). Normal range: round the fp32 mantissa to 3 bits (nearest even; a
 * carry moves into the exponent) and rebias the exponent from 127 to 7. */
uint8_t cb_f32_to_fp8(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    const uint8_t sign = (uint8_t)((v.u >> 24) & 0x80u);
    const uint32_t a = v.u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | CB_FP8_NAN;
    if (a >= 0x43e00000u) return sign | 0x7e; /* >= 448: saturate (also ±inf) */
    if (a < 0x3c800000u) { /* below 2^-6: subnormal step 2^-9; q = 8 is exactly the smallest normal, 0x08 */
        union { float f; uint32_t u; } m = { .f = f };
        m.u = a;
        /* a·2^9 < 8 is exact; adding 1.5·2^23 rounds it to an integer, nearest even */
        const float r = (m.f * 0x1p9f + 12582912.0f) - 12582912.0f;
        return sign | (uint8_t)r;
    }
    const uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u); /* round to 3 mantissa bits, nearest even */
    /* a < 448 never rounds past 448 (= E 8, q 6): the midpoint to 480 is 464 */
    return sign | (uint8_t)((r >> 20) - (120u << 3));
}

float cb_fp8_to_f32(uint8_t c) {
    int e = (c >> 3) & 15, m = c & 7;
    float s = (c & 0x80) ? -1.0f : 1.0f;
    if (e == 15 && m == 7) return NAN;
    if (e == 0) return s * (float)m * 0x1p-9f;
    return s * ldexpf(1.0f + (float)m / 8.0f, e - 7);
}

int8_t cb_f32_to_i8(float f) {
    float r = nearbyintf(f);
    if (!(r <= 127.0f)) r = isnan(f) ? 0.0f : 127.0f;
    if (r < -127.0f) r = -127.0f;
    return (int8_t)r;
}

static float FP8_LUT[256];
__attribute__((constructor)) static void fp8_lut_init(void) {
    for (int c = 0; c < 256; c++) FP8_LUT[c] = cb_fp8_to_f32((uint8_t)c);
}

static void widen_row(const void *src, cb_dtype dt, int64_t row, int64_t cols, float *out) {
    const char *base = (const char *)src + (size_t)row * (size_t)cols * cb_dtype_size(dt);
    switch (dt) {
    case CB_F32: memcpy(out, base, (size_t)cols * sizeof(float)); break;
    case CB_BF16: for (int64_t k = 0; k < cols; k++) out[k] = cb_bf16_to_f32(((const uint16_t *)base)[k]); break;
    case CB_F16: for (int64_t k = 0; k < cols; k++) out[k] = cb_f16_to_f32(((const uint16_t *)base)[k]); break;
    default: break;
    }
}

int cb_quantize_rows(const void *src, cb_dtype src_dtype, int64_t rows, int64_t cols, cb_dtype to, void *dst,
                     float *scale, cb_err *err) {
    if (src_dtype != CB_F32 && src_dtype != CB_BF16 && src_dtype != CB_F16) {
        cb_err_set(err, "quantize: source dtype %s not supported (f32/f16/bf16)", cb_dtype_name(src_dtype));
        return -1;
    }
    if (!cb_dtype_is_q8(to)) {
        cb_err_set(err, "quantize: target dtype %s is not an 8-bit format (fp8/int8)", cb_dtype_name(to));
        return -1;
    }
    const float qmax = to == CB_F8_E4M3 ? CB_FP8_MAX : 127.0f;
    int64_t bad_row = -1;
#pragma omp parallel
    {
        float *buf = malloc((size_t)(cols > 0 ? cols : 1) * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) { bad_row = r; continue; }
            widen_row(src, src_dtype, r, cols, buf);
            float amax = 0.0f;
            bool finite = true;
            for (int64_t k = 0; k < cols; k++) {
                if (!isfinite(buf[k])) finite = false;
                amax = fmaxf(amax, fabsf(buf[k]));
            }
            if (!finite) {
#pragma omp critical
                if (bad_row < 0 || r < bad_row) bad_row = r;
                continue;
            }
            float s = amax > 0.0f ? amax / qmax : 1.0f;
            scale[r] = s;
            uint8_t *q = (uint8_t *)dst + (size_t)r * (size_t)cols;
            if (to == CB_F8_E4M3)
                for (int64_t k = 0; k < cols; k++) q[k] = cb_f32_to_fp8(buf[k] / s);
            else
                for (int64_t k = 0; k < cols; k++) q[k] = (uint8_t)cb_f32_to_i8(buf[k] / s);
        }
        free(buf);
    }
    if (bad_row >= 0) {
        cb_err_set(err, "quantize: row %lld has a non-finite weight (or out of memory)", (long long)bad_row);
        return -1;
    }
    return 0;
}

static inline float q8_value(const cb_weight *W, int64_t n, int64_t k) {
    const uint8_t *q = (const uint8_t *)W->data + (size_t)n * (size_t)W->cols + (size_t)k;
    return W->dtype == CB_F8_E4M3 ? FP8_LUT[*q] : (float)(int8_t)*q;
}

static inline void store(float *y, float v, bool accumulate) { *y = accumulate ? *y + v : v; }

void cb_matmul_q8_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                      bool accumulate) {
    const int64_t N = W->rows, K = W->cols;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) acc += X[m * ldx + k] * q8_value(W, n, k);
            store(&Y[m * ldy + n], W->scale[n] * acc, accumulate);
        }
}

void cb_q8_quantize_activations(int M, const float *X, int64_t ldx, int64_t K, int8_t *xq, float *sx) {
    for (int m = 0; m < M; m++) {
        const float *x = X + m * ldx;
        float amax = 0.0f;
        for (int64_t k = 0; k < K; k++) amax = fmaxf(amax, fabsf(x[k]));
        sx[m] = amax / 127.0f;
        for (int64_t k = 0; k < K; k++) xq[m * K + k] = amax > 0.0f ? cb_f32_to_i8(x[k] / sx[m]) : 0;
    }
}

void cb_matmul_q8_fast_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                           bool accumulate) {
    const int64_t N = W->rows, K = W->cols;
    if (W->dtype == CB_F8_E4M3) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int m = 0; m < M; m++) {
                float acc = 0.0f;
                for (int64_t k = 0; k < K; k++)
                    acc += cb_bf16_to_f32(cb_f32_to_bf16(X[m * ldx + k])) * q8_value(W, n, k);
                store(&Y[m * ldy + n], W->scale[n] * acc, accumulate);
            }
        return;
    }
    int8_t *xq = malloc((size_t)M * (size_t)K + 1);
    float *sx = malloc((size_t)M * sizeof(float) + 1);
    if (!xq || !sx) abort(); /* decode-sized buffers: failure here means the process is out of memory */
    cb_q8_quantize_activations(M, X, ldx, K, xq, sx);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const int8_t *w = (const int8_t *)W->data + (size_t)n * (size_t)K;
        for (int m = 0; m < M; m++) {
            int32_t acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (int32_t)xq[m * K + k] * (int32_t)w[k];
            store(&Y[m * ldy + n], (float)acc * (sx[m] * W->scale[n]), accumulate);
        }
    }
    free(xq);
    free(sx);
}

int cb_q8_prefetch_slice_start(int n, const cb_weight *const *W, const int64_t *first, int64_t lo, int64_t hi,
                               size_t dist) {
    int i = 0;
    while (i < n - 1 && lo >= first[i + 1]) i++;
    if (lo < hi) {
        const char *p = (const char *)W[i]->data + (size_t)(lo - first[i]) * (size_t)W[i]->cols;
        const size_t len = CB_MIN(dist, (size_t)(hi - lo) * (size_t)W[i]->cols);
        for (size_t o = 0; o < len; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
    }
    return i;
}

static inline bool use_avx512(void) { return cb_kernels_path() >= CB_PATH_AVX512; }
static inline bool use_avx2(void) { return cb_kernels_path() >= CB_PATH_AVX2; }

void cb_matmul_q8(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    if (use_avx512()) cb_matmul_q8_avx512(M, X, ldx, W, Y, ldy, accumulate);
    else if (use_avx2()) cb_matmul_q8_avx2(M, X, ldx, W, Y, ldy, accumulate);
    else cb_matmul_q8_ref(M, X, ldx, W, Y, ldy, accumulate);
}

/* int8 fast on AVX-512 needs VNNI; without it the AVX2 integer loop gives the same bits. */
void cb_matmul_q8_fast(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                       bool accumulate) {
    bool ok = use_avx512() && (W->dtype == CB_F8_E4M3 || __builtin_cpu_supports("avx512vnni"));
    if (ok) cb_matmul_q8_fast_avx512(M, X, ldx, W, Y, ldy, accumulate);
    else if (use_avx2()) cb_matmul_q8_fast_avx2(M, X, ldx, W, Y, ldy, accumulate);
    else cb_matmul_q8_fast_ref(M, X, ldx, W, Y, ldy, accumulate);
}

void cb_matmul_q8_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                        const int64_t *ldy) {
    if (use_avx512()) cb_matmul_q8_multi_avx512(M, X, ldx, n, W, Y, ldy);
    else if (use_avx2()) cb_matmul_q8_multi_avx2(M, X, ldx, n, W, Y, ldy);
    else
        for (int i = 0; i < n; i++) cb_matmul_q8_ref(M, X, ldx, W[i], Y[i], ldy[i], false);
}

void cb_matmul_q8_fast_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                             const int64_t *ldy) {
    bool ok = use_avx512(), vnni = __builtin_cpu_supports("avx512vnni");
    for (int i = 0; i < n; i++) ok = ok && (W[i]->dtype == CB_F8_E4M3 || vnni);
    if (ok) cb_matmul_q8_fast_multi_avx512(M, X, ldx, n, W, Y, ldy);
    else if (use_avx2() && !use_avx512()) cb_matmul_q8_fast_multi_avx2(M, X, ldx, n, W, Y, ldy);
    else
        for (int i = 0; i < n; i++) cb_matmul_q8_fast(M, X, ldx, W[i], Y[i], ldy[i], false);
}
