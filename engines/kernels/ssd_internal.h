/* Internal to the SSD kernels: the chunked algorithm is written once (ssd_ref.c) over these two
 * GEMM-shaped steps, which each path (portable, AVX-512) provides. */
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
} cb_ssd_ops;

void cb_ssd_chunked_with(const cb_ssd_head *h, int Q, float *ws, const cb_ssd_ops *ops);
void cb_ssd_gemm_ref(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                     int64_t ldc, bool accumulate, bool causal);
void cb_ssd_decay_mask_ref(int q, const float *a, const float *src, float *G, int64_t ldg);
const cb_ssd_ops *cb_ssd_ops_avx512(void);

#endif
