/* AMX kernels (compiled with -mamx-*; call only when cb_kernels_path() == CB_PATH_AMX, through dispatch.c,
 * which has made sure the OS granted tile state). Same contracts as the entry points in kernels.h. */
#ifndef CB_KERNELS_AMX_H
#define CB_KERNELS_AMX_H

#include "kernels.h"

/* Weight dtypes the AMX GEMMs take (bf16: exact in the tiles; others stay on AVX-512). */
bool cb_matmul_amx_supports(const cb_weight *W);
/* Exact mode: x split into bf16 parts (3 by default: all 24 bits; CTXBENCH_AMX_SPLIT=2: hi + lo, ~16 bits),
 * one tile product per part against the exact bf16 weights, fp32 sums. */
void cb_matmul_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
/* Parts of exact mode's split: 2 or 3 sets it (benches), anything else reads; default 3 or CTXBENCH_AMX_SPLIT. */
int cb_matmul_amx_split(int parts);
/* Fast mode: activations rounded to bf16, one tile product. */
void cb_matmul_bf16_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                        bool accumulate);
/* n projections of one X (all W[i]->cols equal, each amx-supported): Y[i] = X · W[i]ᵀ, bit-identical to n
 * calls of the above, with the split made once and one parallel region (q/k/v, gate/up at prefill). */
void cb_matmul_amx_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                         const int64_t *ldy);
void cb_matmul_bf16_amx_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                              const int64_t *ldy);
/* Smallest M that dispatch sends to the tiles (below it the AVX-512 kernels win); m > 0 sets it (benches,
 * tests), as does CTXBENCH_AMX_MIN_M in the environment. Returns the value in force. */
#define CB_AMX_MIN_M_DEFAULT 32
int cb_matmul_amx_min_m(int m);

/* int8 weights in fast mode on AMX-INT8 (gemm8_amx.c; the path is amx and cb_cpu()->amx_int8):
 * cb_matmul_q8_fast's contract (gemm8.h), bit-identical to the VNNI kernels and the portable twin. */
void cb_matmul_q8_fast_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                           bool accumulate);
/* Smallest M that dispatch sends to the int8 tiles (docs/performance.md "int8 weights on AMX"); m > 0 sets
 * it, as do CTXBENCH_AMX8_MIN_M (this one alone) and CTXBENCH_AMX_MIN_M (both). Returns the value in force. */
#define CB_AMX8_MIN_M_DEFAULT 8
int cb_matmul_q8_amx_min_m(int m);

#endif
