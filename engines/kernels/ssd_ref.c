/* Chunked SSD and the decode recurrence: the algorithm (shared by every path, parameterised by its
 * GEMM-shaped steps), the portable twins of those steps, and the dispatchers of the decode step and silu
 * (the chunked form's are in dispatch.c). */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ssd.h"
#include "ssd_internal.h"

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t cb_ssd_workspace_floats(int Q, int P, int N) {
    return round16((size_t)Q) + round16((size_t)Q * Q) + round16((size_t)Q * P) + round16((size_t)N * Q) +
           round16((size_t)N * P);
}

long long cb_ssd_cb_flops(int T, int Q, int N) {
    long long f = 0;
    for (int c0 = 0; c0 < T; c0 += Q) {
        long long q = CB_MIN(Q, T - c0);
        f += 2 * q * q * N;
    }
    return f;
}

long long cb_ssd_chunked_flops(int T, int Q, int P, int N, bool shared_cb) {
    long long f = shared_cb ? 0 : cb_ssd_cb_flops(T, Q, N);
    for (int c0 = 0; c0 < T; c0 += Q) {
        long long q = CB_MIN(Q, T - c0);
        f += 2 * q * q * P + 4 * q * (long long)N * P + 2 * q * P;
    }
    return f;
}

/* C[m×n] (+)= A[m×k]·B[k×n], row-major. causal: row i only uses k < i + 1 (the rest of A is zero). */
void cb_ssd_gemm_ref(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                     int64_t ldc, bool accumulate, bool causal) {
    for (int i = 0; i < m; i++) {
        float *c = C + (int64_t)i * ldc;
        if (!accumulate) memset(c, 0, (size_t)n * sizeof *c);
        int kk = causal ? CB_MIN(k, i + 1) : k;
        for (int l = 0; l < kk; l++) {
            float a = A[(int64_t)i * lda + l];
            const float *b = B + (int64_t)l * ldb;
            for (int j = 0; j < n; j++) c[j] += a * b[j];
        }
    }
}

/* G[i][j] ← exp(a_i − a_j)·G[i][j] for j ≤ i, 0 above the diagonal (never exp of a positive number). */
void cb_ssd_decay_mask_ref(int q, const float *a, const float *src, float *G, int64_t ldg) {
    for (int i = 0; i < q; i++) {
        float *g = G + (int64_t)i * ldg;
        const float *s = src + (int64_t)i * ldg;
        for (int j = 0; j <= i; j++) g[j] = s[j] * expf(a[i] - a[j]);
        for (int j = i + 1; j < q; j++) g[j] = 0.0f;
    }
}

void cb_ssd_transpose_ref(int m, int n, const float *src, int64_t lds, float *dst, int64_t ldd) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) dst[(int64_t)j * ldd + i] = src[(int64_t)i * lds + j];
}

void cb_ssd_scale_rows_ref(int m, int n, const float *s, int64_t lds, const float *src, int64_t ldsrc, float *dst,
                           int64_t lddst) {
    for (int i = 0; i < m; i++)
        for (int p = 0; p < n; p++) dst[(int64_t)i * lddst + p] = s[(int64_t)i * lds] * src[(int64_t)i * ldsrc + p];
}

void cb_ssd_skip_ref(int q, int P, const float *a, float D, const float *x, int64_t ldx, float *y, int64_t ldy) {
    for (int i = 0; i < q; i++) {
        float e = expf(a[i]);
        float *yi = y + (int64_t)i * ldy;
        const float *xi = x + (int64_t)i * ldx;
        for (int p = 0; p < P; p++) yi[p] = e * yi[p] + D * xi[p];
    }
}

void cb_ssd_scale_cols_ref(int rows, int cols, const float *s, float *M) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) M[(int64_t)r * cols + j] *= s[j];
}

static const cb_ssd_ops ref_ops = { cb_ssd_gemm_ref, cb_ssd_decay_mask_ref, cb_ssd_transpose_ref, cb_ssd_scale_rows_ref, cb_ssd_skip_ref,
                                    cb_ssd_scale_cols_ref };

void cb_ssd_chunked_with(const cb_ssd_head *h, int Q, float *ws, const cb_ssd_ops *ops) {
    const int P = h->P, N = h->N, T = h->T;
    float *a = ws;
    float *G = a + round16((size_t)Q);               /* [q, q]  C·Bᵀ, then L ∘ C·Bᵀ */
    float *Xd = G + round16((size_t)Q * Q);          /* [q, P]  dt·x */
    float *BT = Xd + round16((size_t)Q * P);         /* [N, q]  Bᵀ, then Bᵀ scaled by exp(a_last − a_j) */
    float *ST = BT + round16((size_t)N * Q);         /* [N, P]  state, transposed */
    ops->transpose(P, N, h->S, N, ST, P);

    for (int c0 = 0; c0 < T; c0 += Q) {
        const int q = CB_MIN(Q, T - c0);
        const float *x = h->x + (int64_t)c0 * h->ldx;
        const float *B = h->B + (int64_t)c0 * h->ldbc, *C = h->C + (int64_t)c0 * h->ldbc;
        float *y = h->y + (int64_t)c0 * h->ldy;
        const float *dtc = h->dt + (int64_t)c0 * h->lddt;
        float cum = 0.0f;
        for (int i = 0; i < q; i++) {
            cum += dtc[(int64_t)i * h->lddt] * h->A;
            a[i] = cum;
        }
        ops->scale_rows(q, P, dtc, h->lddt, x, h->ldx, Xd, P);
        ops->transpose(q, N, B, h->ldbc, BT, q);
        /* state-to-output: y_i = exp(a_i)·C_i·S_prev (+ D·x_i), then the intra-chunk term */
        ops->gemm(q, P, N, C, h->ldbc, ST, P, y, h->ldy, false, false);
        ops->skip(q, P, a, h->D, x, h->ldx, y, h->ldy);
        if (h->CB) {
            ops->decay_mask(q, a, h->CB + (int64_t)c0 * Q, G, q);
        } else {
            ops->gemm(q, q, N, C, h->ldbc, BT, q, G, q, false, false);
            ops->decay_mask(q, a, G, G, q);
        }
        ops->gemm(q, P, q, G, q, Xd, P, y, h->ldy, true, true);
        /* carry: S ← exp(a_last)·S + Σ_j exp(a_last − a_j)·B_j ⊗ dt_j·x_j */
        const float alast = a[q - 1], elast = expf(alast);
        for (int j = 0; j < q; j++) a[j] = expf(alast - a[j]);
        ops->scale_cols(N, q, a, BT);
        for (int64_t i = 0; i < (int64_t)N * P; i++) ST[i] *= elast;
        ops->gemm(N, P, q, BT, q, Xd, P, ST, P, true, false);
    }
    ops->transpose(N, P, ST, P, h->S, N);
}

void cb_ssd_chunked_ref(const cb_ssd_head *h, int Q, float *ws) { cb_ssd_chunked_with(h, Q, ws, &ref_ops); }

const cb_ssd_ops *cb_ssd_ops_ref(void) { return &ref_ops; }

void cb_ssd_cb_with(int T, int Q, int N, const float *B, const float *C, int64_t ldbc, float *out, float *ws,
                    const cb_ssd_ops *ops) {
    for (int c0 = 0; c0 < T; c0 += Q) {
        const int q = CB_MIN(Q, T - c0);
        for (int i = 0; i < q; i++)
            for (int n = 0; n < N; n++) ws[(int64_t)n * q + i] = B[(int64_t)(c0 + i) * ldbc + n];
        ops->gemm(q, q, N, C + (int64_t)c0 * ldbc, ldbc, ws, q, out + (int64_t)c0 * Q, q, false, false);
    }
}

void cb_ssd_step_ref(const cb_ssd_head *h) {
    const int P = h->P, N = h->N;
    const float dt = h->dt[0], e = expf(dt * h->A);
    for (int p = 0; p < P; p++) {
        float *s = h->S + (int64_t)p * N;
        const float dx = dt * h->x[p];
        float acc = 0.0f;
        for (int n = 0; n < N; n++) {
            s[n] = e * s[n] + dx * h->B[n];
            acc += s[n] * h->C[n];
        }
        h->y[p] = acc + h->D * h->x[p];
    }
}

void cb_ssd_step(const cb_ssd_head *h) {
    const unsigned csr = cb_subnormals_flush_begin();
    if (cb_kernels_path() >= CB_PATH_AVX512) cb_ssd_step_avx512(h);
    else if (cb_kernels_path() >= CB_PATH_AVX2) cb_ssd_step_avx2(h);
    else cb_ssd_step_ref(h);
    cb_subnormals_flush_end(csr);
}

void cb_ssd_silu_ref(int64_t n, float *x) {
    for (int64_t i = 0; i < n; i++) x[i] = cb_silu(x[i]);
}

void cb_ssd_silu(int64_t n, float *x) {
    if (cb_kernels_path() >= CB_PATH_AVX512) cb_ssd_silu_avx512(n, x);
    else cb_ssd_silu_ref(n, x);
}
