/* Portable reference kernels: the twins every AVX-512 kernel is tested against, and the fallback on
 * CPUs without AVX-512. Plain loops, fp32 (weights widened exactly from their storage dtype). */
#include <math.h>
#include <string.h>

#include "kernels.h"

/* Widen one weight row (K elements) to fp32. */
static void load_row(const cb_weight *W, int64_t n, float *dst) {
    int64_t K = W->cols;
    const char *base = (const char *)W->data;
    switch (W->dtype) {
    case CB_F32: memcpy(dst, base + (size_t)(n * K) * 4, (size_t)K * 4); break;
    case CB_BF16: {
        const uint16_t *r = (const uint16_t *)base + n * K;
        for (int64_t k = 0; k < K; k++) dst[k] = cb_bf16_to_f32(r[k]);
        break;
    }
    case CB_F16: {
        const uint16_t *r = (const uint16_t *)base + n * K;
        for (int64_t k = 0; k < K; k++) dst[k] = cb_f16_to_f32(r[k]);
        break;
    }
    default:
        for (int64_t k = 0; k < K; k++) dst[k] = cb_load_f32(W->data, W->dtype, (size_t)(n * K + k));
        if (W->scale)
            for (int64_t k = 0; k < K; k++) dst[k] *= W->scale[n];
        break;
    }
}

static inline float round_bf16(float x) { return cb_bf16_to_f32(cb_f32_to_bf16(x)); }

/* Y = X · Wᵀ, one output column per weight row; bf16_inputs rounds both operands to bf16 first (the fast-mode
 * contract of cb_matmul_bf16), with the same fp32 sum in k order either way. */
static void matmul_rows(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                        bool accumulate, bool bf16_inputs) {
    int64_t N = W->rows, K = W->cols;
#pragma omp parallel
    {
        float row[K > 0 ? K : 1];
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            load_row(W, n, row);
            if (bf16_inputs)
                for (int64_t k = 0; k < K; k++) row[k] = round_bf16(row[k]);
            for (int m = 0; m < M; m++) {
                const float *x = X + m * ldx;
                float acc = 0.0f;
                if (bf16_inputs)
                    for (int64_t k = 0; k < K; k++) acc += round_bf16(x[k]) * row[k];
                else
                    for (int64_t k = 0; k < K; k++) acc += x[k] * row[k];
                float *y = Y + m * ldy + n;
                *y = accumulate ? *y + acc : acc;
            }
        }
    }
}

void cb_matmul_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    matmul_rows(M, X, ldx, W, Y, ldy, accumulate, false);
}

void cb_matmul_bf16_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                        bool accumulate) {
    matmul_rows(M, X, ldx, W, Y, ldy, accumulate, true);
}

void cb_add_bias_ref(int M, float *Y, int64_t ldy, const cb_weight *bias) {
    if (!bias || !bias->data) return;
    int64_t N = bias->cols * bias->rows;
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) Y[m * ldy + n] += cb_load_f32(bias->data, bias->dtype, (size_t)n);
}

void cb_rmsnorm_ref(int rows, int n, const float *x, int64_t ldx, const cb_weight *w, double eps, float *y,
                    int64_t ldy) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        float ss = 0.0f;
        for (int i = 0; i < n; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)n + (float)eps);
        for (int i = 0; i < n; i++) yr[i] = xr[i] * inv * cb_load_f32(w->data, w->dtype, (size_t)i);
    }
}

void cb_silu_mul_ref(int64_t n, const float *gate, const float *up, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = cb_silu(gate[i]) * up[i];
}

void cb_softmax_ref(int n, float *x) {
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) sum += (x[i] = expf(x[i] - mx));
    for (int i = 0; i < n; i++) x[i] /= sum;
}

void cb_add_ref(int64_t n, float *y, const float *a) {
    for (int64_t i = 0; i < n; i++) y[i] += a[i];
}

void cb_rope_inv_freq(const cb_rope *r, double *inv_freq) {
    int half = r->rot_dim / 2;
    for (int i = 0; i < half; i++) {
        /* HF computes inv_freq in fp32: 1 / theta^(arange(0, dim, 2) / dim); keep fp32 rounding of the
         * base values so positions match the reference, then do angles in double. */
        float f = (float)(1.0 / pow(r->theta, (double)(2 * i) / (double)r->rot_dim));
        double v = f;
        if (r->type == CB_ROPE_LLAMA3) {
            double L = r->original_max_pos, lo = r->low_freq_factor, hi = r->high_freq_factor;
            double wavelen = 2.0 * M_PI / v;
            if (wavelen > L / lo) v = v / r->factor;
            else if (wavelen >= L / hi) {
                double s = (L / wavelen - lo) / (hi - lo);
                v = (1.0 - s) * v / r->factor + s * v;
            }
            v = (float)v;
        }
        inv_freq[i] = v;
    }
}

static void rope_heads(float *x, int n_heads, int head_dim, int half, const float *c, const float *s) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i] = a * c[i] - b * s[i];
            v[i + half] = b * c[i] + a * s[i];
        }
    }
}

void cb_rope_apply_qk(float *q, int nq, float *k, int nk, int head_dim, int rot_dim, const double *inv_freq,
                      int64_t pos) {
    int half = rot_dim / 2;
    float c[half > 0 ? half : 1], s[half > 0 ? half : 1];
    for (int i = 0; i < half; i++) {
        double a = (double)pos * inv_freq[i];
        c[i] = (float)cos(a);
        s[i] = (float)sin(a);
    }
    rope_heads(q, nq, head_dim, half, c, s);
    rope_heads(k, nk, head_dim, half, c, s);
}

void cb_rope_apply(float *x, int n_heads, int head_dim, int rot_dim, const double *inv_freq, int64_t pos) {
    cb_rope_apply_qk(x, n_heads, NULL, 0, head_dim, rot_dim, inv_freq, pos);
}

void cb_conv1d_causal_ref(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w,
                          const cb_weight *bias, float *state, float *y, int64_t ldy) {
    for (int c = 0; c < C; c++) {
        float hist[K > 1 ? K - 1 : 1];
        for (int k = 0; k < K - 1; k++) hist[k] = state[(int64_t)c * (K - 1) + k];
        float b = bias && bias->data ? cb_load_f32(bias->data, bias->dtype, (size_t)c) : 0.0f;
        for (int t = 0; t < T; t++) {
            float acc = b;
            float xt = x[(int64_t)t * ldx + c];
            for (int k = 0; k < K - 1; k++) acc += cb_load_f32(w->data, w->dtype, (size_t)c * K + k) * hist[k];
            acc += cb_load_f32(w->data, w->dtype, (size_t)c * K + K - 1) * xt;
            y[(int64_t)t * ldy + c] = acc;
            for (int k = 0; k + 1 < K - 1; k++) hist[k] = hist[k + 1];
            if (K > 1) hist[K - 2] = xt;
        }
        for (int k = 0; k < K - 1; k++) state[(int64_t)c * (K - 1) + k] = hist[k];
    }
}
