/* Public kernel entry points: pick the AMX implementation for prefill-sized GEMMs on bf16 weights when the
 * selected path is amx, else the AVX-512 one when the path allows it, else the AVX2 one, else the portable
 * twin. AVX-512
 * implementations are declared in kernels_avx512.h, AMX ones in kernels_amx.h. */
#include "kernels.h"
#include "kernels_amx.h"
#include "kernels_avx2.h"
#include "kernels_avx512.h"
#include "gemm8.h"
#include "ssd.h"
#include "ssd_internal.h"
#include "tiles.h"

#include <stdlib.h>
#include <string.h>

static inline bool avx512(void) { return cb_kernels_path() >= CB_PATH_AVX512; }
static inline bool avx2(void) { return cb_kernels_path() >= CB_PATH_AVX2; }
/* Tiles pay from the measured crossover in M up (docs/performance.md "AMX"). */
static inline bool amx(int M, const cb_weight *W) {
    return cb_kernels_path() == CB_PATH_AMX && M >= cb_matmul_amx_min_m(0) && cb_matmul_amx_supports(W);
}

/* int8 weights in fast mode: TDPBSSD from its crossover in M up (docs/performance.md "int8 weights on AMX"). */
static inline bool amx8(int M, const cb_weight *W) {
    return W->dtype == CB_I8 && cb_kernels_path() == CB_PATH_AMX && cb_cpu()->amx_int8 &&
           M >= cb_matmul_q8_amx_min_m(0);
}

bool cb_tile_weights_default(void) {
    const char *e = getenv("CTXBENCH_AMX_PACK");
    return cb_kernels_path() == CB_PATH_AMX && !(e && !strcmp(e, "0"));
}

void cb_matmul(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    if (cb_dtype_is_q8(W->dtype)) { cb_matmul_q8(M, X, ldx, W, Y, ldy, accumulate); return; }
    if (amx(M, W)) cb_matmul_amx(M, X, ldx, W, Y, ldy, accumulate);
    else if (avx512() && cb_matmul_avx512_supports(W)) cb_matmul_avx512(M, X, ldx, W, Y, ldy, accumulate);
    else if (avx2() && cb_matmul_avx2_supports(W)) cb_matmul_avx2(M, X, ldx, W, Y, ldy, accumulate);
    else cb_matmul_ref(M, X, ldx, W, Y, ldy, accumulate);
}
/* On AVX-512 without BF16 the same rounding (bf16 operands, fp32 accumulation) runs on fp32 FMAs. */
void cb_matmul_bf16(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    if (amx8(M, W)) { cb_matmul_q8_fast_amx(M, X, ldx, W, Y, ldy, accumulate); return; }
    if (cb_dtype_is_q8(W->dtype)) { cb_matmul_q8_fast(M, X, ldx, W, Y, ldy, accumulate); return; }
    if (amx(M, W)) cb_matmul_bf16_amx(M, X, ldx, W, Y, ldy, accumulate);
    else if (avx512() && cb_matmul_avx512_supports(W))
        cb_matmul_bf16_avx512(M, X, ldx, W, Y, ldy, accumulate, cb_kernels_path() >= CB_PATH_AVX512_BF16);
    else if (avx2() && cb_matmul_avx2_supports(W)) cb_matmul_bf16_avx2(M, X, ldx, W, Y, ldy, accumulate);
    else cb_matmul_bf16_ref(M, X, ldx, W, Y, ldy, accumulate);
}
static bool any_q8(int n, const cb_weight *const *W) {
    for (int i = 0; i < n; i++)
        if (cb_dtype_is_q8(W[i]->dtype)) return true;
    return false;
}
/* Prefill-sized M on the amx path: every weight on the tiles with one split of X (docs/performance.md
 * "where a chunk's time goes"), else each weight on its own (the shared AVX-512 region is decode-sized). */
static bool any_amx(int M, int n, const cb_weight *const *W) {
    for (int i = 0; i < n; i++)
        if (amx(M, W[i])) return true;
    return false;
}
static bool all_amx(int M, int n, const cb_weight *const *W) {
    for (int i = 0; i < n; i++)
        if (!amx(M, W[i]) || W[i]->cols != W[0]->cols) return false;
    return n > 0;
}
static bool all_q8(int n, const cb_weight *const *W) {
    for (int i = 0; i < n; i++)
        if (!cb_dtype_is_q8(W[i]->dtype)) return false;
    return n > 0;
}
void cb_matmul_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                     const int64_t *ldy) {
    if (all_q8(n, W)) { cb_matmul_q8_multi(M, X, ldx, n, W, Y, ldy); return; }
    if (all_amx(M, n, W)) cb_matmul_amx_multi(M, X, ldx, n, W, Y, ldy);
    else if (avx512() && !any_q8(n, W) && !any_amx(M, n, W)) cb_matmul_multi_avx512(M, X, ldx, n, W, Y, ldy);
    else if (avx2() && !avx512() && !any_q8(n, W)) cb_matmul_multi_avx2(M, X, ldx, n, W, Y, ldy);
    else
        for (int i = 0; i < n; i++) cb_matmul(M, X, ldx, W[i], Y[i], ldy[i], false);
}
void cb_matmul_bf16_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                          const int64_t *ldy) {
    bool q8 = all_q8(n, W);
    for (int i = 0; i < n && q8; i++) q8 = !amx8(M, W[i]);
    if (q8) { cb_matmul_q8_fast_multi(M, X, ldx, n, W, Y, ldy); return; }
    if (all_amx(M, n, W)) cb_matmul_bf16_amx_multi(M, X, ldx, n, W, Y, ldy);
    else if (avx512() && !any_q8(n, W) && !any_amx(M, n, W))
        cb_matmul_bf16_multi_avx512(M, X, ldx, n, W, Y, ldy, cb_kernels_path() >= CB_PATH_AVX512_BF16);
    else if (avx2() && !avx512() && !any_q8(n, W)) cb_matmul_bf16_multi_avx2(M, X, ldx, n, W, Y, ldy);
    else
        for (int i = 0; i < n; i++) cb_matmul_bf16(M, X, ldx, W[i], Y[i], ldy[i], false);
}
void cb_add_bias(int M, float *Y, int64_t ldy, const cb_weight *bias) {
    if (avx512()) cb_add_bias_avx512(M, Y, ldy, bias);
    else cb_add_bias_ref(M, Y, ldy, bias);
}
void cb_rmsnorm(int rows, int n, const float *x, int64_t ldx, const cb_weight *w, double eps, float *y, int64_t ldy) {
    if (avx512()) cb_rmsnorm_avx512(rows, n, x, ldx, w, eps, y, ldy);
    else cb_rmsnorm_ref(rows, n, x, ldx, w, eps, y, ldy);
}
void cb_silu_mul(int64_t n, const float *gate, const float *up, float *out) {
    if (avx512()) cb_silu_mul_avx512(n, gate, up, out);
    else cb_silu_mul_ref(n, gate, up, out);
}
void cb_softmax(int n, float *x) {
    if (avx512()) cb_softmax_avx512(n, x);
    else cb_softmax_ref(n, x);
}
void cb_add(int64_t n, float *y, const float *a) {
    if (avx512()) cb_add_avx512(n, y, a);
    else cb_add_ref(n, y, a);
}
void cb_conv1d_causal(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w, const cb_weight *bias,
                      float *state, float *y, int64_t ldy) {
    if (avx512()) cb_conv1d_causal_avx512(T, C, K, x, ldx, w, bias, state, y, ldy);
    else cb_conv1d_causal_ref(T, C, K, x, ldx, w, bias, state, y, ldy);
}

/* The chunked SSD: its GEMMs on the tiles on the amx path (docs/performance.md "Mamba2 SSD on the tiles"),
 * the AVX-512 steps on avx512 and up, the AVX2 ones on avx2, else the portable ones. Subnormals flushed for the call: kernels.h. */
static const cb_ssd_ops *ssd_ops(bool fast) {
    if (cb_kernels_path() == CB_PATH_AMX) return cb_ssd_ops_amx(fast);
    return avx512() ? cb_ssd_ops_avx512() : avx2() ? cb_ssd_ops_avx2() : cb_ssd_ops_ref();
}
static void ssd_chunked(const cb_ssd_head *h, int Q, float *ws, bool fast) {
    const unsigned csr = cb_subnormals_flush_begin();
    cb_ssd_chunked_with(h, Q, ws, ssd_ops(fast));
    cb_subnormals_flush_end(csr);
}
void cb_ssd_chunked(const cb_ssd_head *h, int Q, float *ws) { ssd_chunked(h, Q, ws, false); }
void cb_ssd_chunked_fast(const cb_ssd_head *h, int Q, float *ws) { ssd_chunked(h, Q, ws, true); }
void cb_ssd_cb(int T, int Q, int N, const float *B, const float *C, int64_t ldbc, float *out, float *ws) {
    cb_ssd_cb_with(T, Q, N, B, C, ldbc, out, ws, ssd_ops(false));
}
void cb_ssd_cb_fast(int T, int Q, int N, const float *B, const float *C, int64_t ldbc, float *out, float *ws) {
    cb_ssd_cb_with(T, Q, N, B, C, ldbc, out, ws, ssd_ops(true));
}
