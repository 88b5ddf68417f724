/* Compute kernels shared by every engine. Each has a portable C reference twin (`*_ref`) that tests
 * compare against; the public entry point dispatches at run time to the AVX-512 (or AVX512-BF16) code
 * when CPUID reports it, to the AVX2 code on CPUs without AVX-512, and prefill-sized GEMMs to AMX tiles
 * where the CPU and OS allow them.
 * CTXBENCH_KERNELS=portable|avx2|avx512|avx512bf16|amx forces a path the CPU supports (tests, benches).
 *
 * Determinism: every output element is produced by the same sequence of operations whatever the
 * OpenMP thread count (reductions are never split across threads), so 1 and N threads agree. */
#ifndef CB_KERNELS_H
#define CB_KERNELS_H

#include <omp.h>
#include <xmmintrin.h>

#include "../types.h"

/* True inside any OpenMP parallel region (active or a team of one). Kernels then run the whole call on
 * the calling thread: a nested team of one costs ~0.6 us here, as much as a small tile's work. */
static inline bool cb_omp_nested(void) { return omp_get_level() > 0; }

/* MXCSR FTZ | DAZ for the span of one kernel call, on every path: the SSD's decay exp(a_i − a_j) and the
 * attention's exp(s − max) of a peaked score row fall below 2⁻¹²⁶, and on Intel cores every FMA on a subnormal
 * takes a microcode assist; a term below 2⁻¹²⁶ beside O(1) terms changes no fp32 sum. The caller's mode is
 * restored, exception flags raised inside stay raised. docs/engines.md, "Subnormals are flushed". */
static inline unsigned cb_subnormals_flush_begin(void) {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);
    return csr;
}
static inline void cb_subnormals_flush_end(unsigned csr) { _mm_setcsr((csr & ~0x3fu) | (_mm_getcsr() & 0x3fu)); }

/* Ordered: each path includes the ones before it (AMX runs the AVX512-BF16 kernels where tiles do not pay). */
typedef enum { CB_PATH_PORTABLE = 0, CB_PATH_AVX2, CB_PATH_AVX512, CB_PATH_AVX512_BF16, CB_PATH_AMX } cb_kpath;

/* What the CPU (and, for AMX, the OS) allows: filled once from CPUID (engines/kernels/cpu.c). */
typedef struct {
    bool fma, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16;
    bool f16c, bmi2;
    bool avx2;                         /* AVX2 + FMA + F16C + BMI2, YMM state enabled by the OS: the ISA *_avx2.c
                                        * files are compiled for (Makefile AVX2_FLAGS) */
    bool avx512;                       /* f + bw + vl + dq + fma + f16c + bmi2, ZMM state enabled by the OS: the
                                        * ISA *_avx512.c files are compiled for (Makefile AVX512_FLAGS) */
    bool amx_tile, amx_bf16, amx_int8; /* CPUID bits */
    bool amx_os;                       /* XCR0 tile state on and arch_prctl(ARCH_REQ_XCOMP_PERM) granted */
    char amx_why[96];                  /* why AMX can or cannot run here */
} cb_cpu_features;
const cb_cpu_features *cb_cpu(void);

cb_kpath cb_kernels_path(void);           /* the path in use (CPUID, or the override) */
cb_kpath cb_kernels_best_path(void);      /* what CPUID allows */
int cb_kernels_set_path(cb_kpath p);      /* -1 if the CPU cannot run it */
/* AVX512-VNNI integer kernels (int8 KV flash attention): CPUID allows them and no test/bench switched them
 * off (false takes the fp32 loops, which give the same results to fp32 rounding) */
bool cb_kernels_vnni(void);
void cb_kernels_set_vnni(bool on);
const char *cb_kpath_name(cb_kpath p);    /* "portable" | "avx2" | "avx512" | "avx512-bf16" | "amx" */
int cb_kernels_parse_path(const char *s, cb_kpath *p); /* a CTXBENCH_KERNELS value; -1 if unknown */
/* 0 when CTXBENCH_KERNELS is unset or names a path this CPU runs, CTXBENCH_PREFETCH is unset or l1|l2 and
 * CTXBENCH_GEMV_ORDER is unset or rows|blocks; else -1 with the reason in why. */
int cb_kernels_check_env(char *why, size_t n);
/* Where the flash-decode loops' software prefetches put the next K/V data: true = L2 (prefetcht1), false =
 * L1 (prefetcht0). Default: L2 when the L1 data cache is at most 32 KiB, where a block's K, V and the
 * lines in flight do not fit in L1 together (docs/performance.md, "Flash decode: prefetch into L1 or L2");
 * CTXBENCH_PREFETCH=l1|l2 overrides. why (may be NULL) gets the reason. Same numbers either way. */
bool cb_kernels_prefetch_l2(const char **why);
void cb_kernels_set_prefetch_l2(int on); /* 1 / 0 force (benchmarks, tests), -1 back to the default */

/* ---- GEMM: Y[M, N] (+)= X[M, K] · Wᵀ, W = cb_weight [N rows, K cols] in f32 / f16 / bf16 (fp32
 * accumulation; weights widened exactly). ldx / ldy are row strides in elements. M = 1 is a GEMV;
 * small M (decode batches) reads each weight row once for all M rows. OpenMP-parallel over N. */
void cb_matmul(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
void cb_matmul_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
/* Fast mode: activations rounded to bf16, AVX512_BF16 dot products (vdpbf16ps), fp32 accumulation.
 * Weights of any dtype are rounded to bf16 too. Falls back to the ref twin (same rounding) elsewhere. */
void cb_matmul_bf16(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
void cb_matmul_bf16_ref(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate);
/* n (≤ 4) weights applied to the same X: Y[i] = X · W[i]ᵀ (overwritten), results identical to n cb_matmul /
 * cb_matmul_bf16 calls. For decode-sized M the weights share one parallel region (one fork/join, one
 * contiguous stream per thread across all of them) — q/k/v and gate/up. */
void cb_matmul_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                     const int64_t *ldy);
void cb_matmul_bf16_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                          const int64_t *ldy);
/* Y[m, :] += bias (any dtype vector of length N). */
void cb_add_bias(int M, float *Y, int64_t ldy, const cb_weight *bias);
void cb_add_bias_ref(int M, float *Y, int64_t ldy, const cb_weight *bias);

/* ---- Elementwise / row ops ---- */
/* y[r, :] = x[r, :] / sqrt(mean(x²) + eps) * w   (fp32; y may alias x) */
void cb_rmsnorm(int rows, int n, const float *x, int64_t ldx, const cb_weight *w, double eps, float *y, int64_t ldy);
void cb_rmsnorm_ref(int rows, int n, const float *x, int64_t ldx, const cb_weight *w, double eps, float *y, int64_t ldy);
/* out[i] = silu(gate[i]) * up[i] */
void cb_silu_mul(int64_t n, const float *gate, const float *up, float *out);
void cb_silu_mul_ref(int64_t n, const float *gate, const float *up, float *out);
/* in-place softmax of n values */
void cb_softmax(int n, float *x);
void cb_softmax_ref(int n, float *x);
/* y = x + a (residual add, n elements) */
void cb_add(int64_t n, float *y, const float *a);
void cb_add_ref(int64_t n, float *y, const float *a);

/* ---- RoPE (rotate-half convention, pairs (i, i + rot/2) inside the first rot_dim dims of a head) ---- */
/* inv_freq[rot_dim/2] in double, llama3 scaling applied when cfg->type == CB_ROPE_LLAMA3. */
void cb_rope_inv_freq(const cb_rope *r, double *inv_freq);
/* Rotate n_heads heads of head_dim (stride between heads head_dim) of one token at position pos. */
void cb_rope_apply(float *x, int n_heads, int head_dim, int rot_dim, const double *inv_freq, int64_t pos);
/* The same for a token's nq query heads and nk key heads, the angles computed once for both. */
void cb_rope_apply_qk(float *q, int nq, float *k, int nk, int head_dim, int rot_dim, const double *inv_freq,
                      int64_t pos);

/* ---- Causal depthwise conv1d with carried state ----
 * x [T, C] (row stride ldx), w [C, K], bias [C] or NULL, state [C, K-1] holding the previous K-1 inputs
 * (oldest first) and updated to the last K-1 inputs. y[t, c] = bias + Σ_k w[c,k]·x̃[t-K+1+k, c]
 * where x̃ is the input sequence prefixed by the state. No activation. y may not alias x. */
void cb_conv1d_causal(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w, const cb_weight *bias,
                      float *state, float *y, int64_t ldy);
void cb_conv1d_causal_ref(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w,
                          const cb_weight *bias, float *state, float *y, int64_t ldy);

static inline float cb_silu(float x) { return x / (1.0f + __builtin_expf(-x)); }
static inline float cb_softplus(float x) { return x > 20.0f ? x : __builtin_log1pf(__builtin_expf(x)); }

#endif
