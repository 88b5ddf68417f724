/* Mamba2 state-space kernels: the chunked SSD ("state space duality") form for prefill and the
 * one-token recurrence for decode. Both work on one head at a time; callers parallelise over heads
 * (so every output element is produced by the same operations whatever the thread count).
 *
 * Recurrence (per head, state S [P, N]):  S_t = exp(dt_t·A)·S_{t-1} + dt_t·x_t ⊗ B_t;  y_t = S_t·C_t + D·x_t.
 * Chunked form, per chunk of q tokens with a_i = Σ_{k≤i} dt_k·A (a ≤ 0, decreasing):
 *   y_i = Σ_{j≤i} exp(a_i − a_j)(C_i·B_j) dt_j x_j + exp(a_i)·S_prev·C_i + D·x_i
 *   S   = exp(a_{q−1})·S_prev + Σ_j exp(a_{q−1} − a_j) dt_j x_j ⊗ B_j
 * Only exp of differences a_i − a_j with i ≥ j (≤ 0) is ever taken. */
#ifndef CB_SSD_H
#define CB_SSD_H

#include <stdbool.h>
#include <stdint.h>

/* One head's inputs for T tokens: x row t at x + t·ldx (P values), B/C rows at B + t·ldbc (N values),
 * dt[t·lddt] (already softplus'd and clamped), A = −exp(A_log) < 0, D the skip. */
typedef struct {
    int T, P, N;
    const float *x; int64_t ldx;
    const float *B, *C; int64_t ldbc;
    const float *dt; int64_t lddt;
    float A, D;
    float *y; int64_t ldy;   /* output rows (P values) */
    float *S;                /* state [P, N], row-major; read and updated */
    /* Optional C·Bᵀ of every chunk (heads of one group share it; cb_ssd_cb computes it once):
     * chunk k (tokens [kQ, kQ+q)) at CB + k·Q·Q, row stride q. NULL: computed per head. */
    const float *CB;
} cb_ssd_head;

/* C·Bᵀ for every chunk of Q tokens of T (the layout cb_ssd_head.CB expects): out [ceil(T/Q)·Q·Q].
 * ws: N·Q floats. Rows of B and C are N values at stride ldbc. */
void cb_ssd_cb(int T, int Q, int N, const float *B, const float *C, int64_t ldbc, float *out, float *ws);
/* Fast mode's variant (same contract): on the amx path the GEMM operands enter the tile products rounded to
 * bf16 (one product instead of exact mode's split); every other path is cb_ssd_cb's. */
void cb_ssd_cb_fast(int T, int Q, int N, const float *B, const float *C, int64_t ldbc, float *out, float *ws);
long long cb_ssd_cb_flops(int T, int Q, int N);

/* Floats of workspace one cb_ssd_chunked_* call needs for chunk size Q (per concurrently running head). */
size_t cb_ssd_workspace_floats(int Q, int P, int N);

/* Chunked SSD over T tokens in chunks of Q (last chunk may be partial). ws: cb_ssd_workspace_floats. */
void cb_ssd_chunked(const cb_ssd_head *h, int Q, float *ws);
/* Fast mode's variant (same contract): on the amx path the chunk GEMMs' operands (C, B, S, the masked C·Bᵀ,
 * dt·x) enter the tile products rounded to bf16; every other path is cb_ssd_chunked's. */
void cb_ssd_chunked_fast(const cb_ssd_head *h, int Q, float *ws);
void cb_ssd_chunked_ref(const cb_ssd_head *h, int Q, float *ws);
void cb_ssd_chunked_avx512(const cb_ssd_head *h, int Q, float *ws);

/* One decode step for one head (T is ignored: one token, rows x[0], B[0], C[0], dt[0]). */
void cb_ssd_step(const cb_ssd_head *h);
void cb_ssd_step_ref(const cb_ssd_head *h);
void cb_ssd_step_avx512(const cb_ssd_head *h);
void cb_ssd_step_avx2(const cb_ssd_head *h); /* the AVX-512 step's bits on 8-lane halves */

/* x ← silu(x) in place (the activation after the conv, before the SSD). */
void cb_ssd_silu(int64_t n, float *x);
void cb_ssd_silu_ref(int64_t n, float *x);
void cb_ssd_silu_avx512(int64_t n, float *x);

/* Analytic FLOPs of cb_ssd_chunked for one head (what the kernels compute, masked halves included;
 * without the C·Bᵀ term when h->CB is given: count cb_ssd_cb_flops once per group then). */
long long cb_ssd_chunked_flops(int T, int Q, int P, int N, bool shared_cb);

#endif
