/* Internal to the SSD kernels: the chunked algorithm is written once (ssd_ref.c) over these steps
 * (GEMM-shaped and elementwise), which each path (portable, AVX-512) provides; the elementwise ones do
 * the same single operation per element on every path, so they never move a number. */
#ifndef CB_SSD_INTERNAL_H
#define CB_SSD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ssd.h"

typedef struct {
    /* C[m×n] (+)= A[m×k]·B[k×n], row-major; causal: row i uses only the first i+1 columns of A */
    void (*gemm)(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                 int64_t ldc, bool accumulate, bool causal);
    /* G[i][j] ← exp(a_i − a_j)·src[i][j] for j ≤ i, else 0 (src may be G) */
    void (*decay_mask)(int q, const float *a, const float *src, float *G, int64_t ldg);
    /* dst[j][i] = src[i][j] for i < m, j < n (row strides lds, ldd) */
    void (*transpose)(int m, int n, const float *src, int64_t lds, float *dst, int64_t ldd);
    /* dst[i][p] = s[i·lds]·src[i][p] for i < m, p < n (row strides ldsrc, lddst) */
    void (*scale_rows)(int m, int n, const float *s, int64_t lds, const float *src, int64_t ldsrc, float *dst,
                       int64_t lddst);
    /* y_i ← expf(a_i)·y_i + D·x_i, for i < q */
    void (*skip)(int q, int P, const float *a, float D, const float *x, int64_t ldx, float *y, int64_t ldy);
    /* M[r][j] ← M[r][j]·s[j] for r < rows, j < cols (row-major, row stride cols) */
    void (*scale_cols)(int rows, int cols, const float *s, float *M);
} cb_ssd_ops;

void cb_ssd_chunked_with(const cb_ssd_head *h, int Q, float *ws, const cb_ssd_ops *ops);
void cb_ssd_gemm_ref(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                     int64_t ldc, bool accumulate, bool causal);
void cb_ssd_decay_mask_ref(int q, const float *a, const float *src, float *G, int64_t ldg);
void cb_ssd_transpose_ref(int m, int n, const float *src, int64_t lds, float *dst, int64_t ldd);
void cb_ssd_scale_rows_ref(int m, int n, const float *s, int64_t lds, const float *src, int64_t ldsrc, float *dst,
                           int64_t lddst);
void cb_ssd_skip_ref(int q, int P, const float *a, float D, const float *x, int64_t ldx, float *y, int64_t ldy);
void cb_ssd_scale_cols_ref(int rows, int cols, const float *s, float *M);
const cb_ssd_ops *cb_ssd_ops_ref(void);
/* C·Bᵀ of every chunk (cb_ssd_cb's contract) with ops' GEMM. */
void cb_ssd_cb_with(int T, int Q, int N, const float *B, const float *C, int64_t ldbc, float *out, float *ws,
                    const cb_ssd_ops *ops);

/* AVX-512 steps (ssd_avx512.c): the avx512 table, and the amx table's elementwise steps and small GEMMs. */
const cb_ssd_ops *cb_ssd_ops_avx512(void);
void cb_ssd_gemm_avx512(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                        int64_t ldc, bool accumulate, bool causal);
void cb_ssd_decay_mask_avx512(int q, const float *a, const float *src, float *G, int64_t ldg);
void cb_ssd_transpose_avx512(int m, int n, const float *src, int64_t lds, float *dst, int64_t ldd);
void cb_ssd_scale_rows_avx512(int m, int n, const float *s, int64_t lds, const float *src, int64_t ldsrc, float *dst,
                              int64_t lddst);
void cb_ssd_skip_avx512(int q, int P, const float *a, float D, const float *x, int64_t ldx, float *y, int64_t ldy);
void cb_ssd_scale_cols_avx512(int rows, int cols, const float *s, float *M);

/* AVX2 steps (ssd_avx2.c): the avx2 table; each gives the AVX-512 step's bits (the decay mask under the
 * kernels' flushed MXCSR, as dispatch runs it). */
const cb_ssd_ops *cb_ssd_ops_avx2(void);
void cb_ssd_gemm_avx2(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                      int64_t ldc, bool accumulate, bool causal);

/* AMX (ssd_amx.c; the amx path only, through dispatch.c): the GEMM on the tiles, both operands split into bf16
 * parts and summed over `terms` part products (1: bf16 operands, fast mode; 3: 2 parts each, ~2⁻¹⁶ relative
 * per product; 6: 3 parts each, fp32-level). The table's GEMM takes the tiles from m·n·k ≥ the crossover
 * (cb_ssd_amx_min_work) up, the AVX-512 GEMM below it; exact: cb_ssd_amx_terms() terms, fast: 1.
 * docs/performance.md "Mamba2 SSD on the tiles". */
void cb_ssd_gemm_amx(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                     int64_t ldc, bool accumulate, bool causal, int terms);
const cb_ssd_ops *cb_ssd_ops_amx(bool fast);
/* Exact mode's terms: 3 or 6 (or 1) sets it, anything else reads; default CB_SSD_AMX_TERMS_DEFAULT or
 * CTXBENCH_SSD_AMX_TERMS. */
#define CB_SSD_AMX_TERMS_DEFAULT 6
int cb_ssd_amx_terms(int terms);
/* Smallest m·n·k on the tiles, exact mode (fast mode: CB_SSD_AMX_MIN_FAST_DEFAULT): > 0 sets it for both
 * modes, as does CTXBENCH_SSD_AMX_MIN; < 0 restores the defaults; returns exact mode's value in force. */
#define CB_SSD_AMX_MIN_DEFAULT (1 << 23)
#define CB_SSD_AMX_MIN_FAST_DEFAULT (1 << 19)
int64_t cb_ssd_amx_min_work(int64_t mnk);

#endif
