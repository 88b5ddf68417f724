/* AVX-512 GEMM: Y[M, N] (+)= X[M, K] · Wᵀ with W [N, K] in f32 / bf16 / f16.
 *
 * Large M (prefill): BLIS-style blocking. For each thread's slice of N (NR-aligned), for each NC block,
 * for each KC block: pack W (KC × NC, widened to fp32 — the bf16/f16 conversion is paid once per
 * KC×NC block and amortised over all M rows), then for each MC block pack X and run a MR × NR register
 * microkernel (12 × 32 fp32 accumulators, broadcast-FMA). Fast mode packs bf16 pairs instead and uses
 * vdpbf16ps.
 *
 * Small M (decode): each weight row is streamed once for a group of ≤ 4 activation rows, 4 weight rows at
 * a time, widened in registers; dot products reduced horizontally at the end.
 *
 * Determinism: the K loop is never split across threads and blocking does not depend on the thread count,
 * so every output element sees the same operation sequence with 1 or N threads. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_avx512.h"
#include "thread_scratch.h"

#ifndef MR
#define MR 12
#endif
#define NR 32
#ifndef KC
#define KC 256
#endif
#ifndef MC
#define MC (MR * 10) /* multiple of MR */
#endif
#ifndef NC
#define NC 512 /* multiple of NR */
#endif
#define SKINNY_MAX_DEFAULT 48 /* measured: the skinny kernel beats packing W up to M ≈ 64 */

static int force_mode = 0;
void cb_matmul_avx512_force(int mode) { force_mode = mode; }
int cb_matmul_avx512_skinny_max(void) { return SKINNY_MAX_DEFAULT; }

bool cb_matmul_avx512_supports(const cb_weight *W) {
    return W->dtype == CB_F32 || W->dtype == CB_BF16 || W->dtype == CB_F16;
}

/* ---- per-thread packing buffers (grown once, reused across calls) ---- */
static _Thread_local cb_tscratch t_wbuf;

static bool thread_buffers(float **wb) {
    *wb = cb_tscratch_get(&t_wbuf, (size_t)KC * NC * sizeof(float));
    return *wb != NULL;
}

/* fp32 -> bf16 (RNE, as cb_f32_to_bf16 for finite values), 16 lanes, result in the low 16 bits. */
static inline __m512i bf16_bits(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    r = _mm512_srli_epi32(r, 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}
static inline __m512 round_bf16(__m512 v) { return _mm512_castsi512_ps(_mm512_slli_epi32(bf16_bits(v), 16)); }

/* 16 weights of one row, widened to fp32 (masked lanes zero). */
static inline __attribute__((always_inline)) __m512 load_w(cb_dtype dt, const void *row, int64_t k, __mmask16 m) {
    if (dt == CB_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k);
    if (dt == CB_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* ================= blocked GEMM, fp32 microkernel ================= */

/* In-register transpose of a 16 × 16 fp32 tile: r[i] = row i in, r[c] = column c out. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88), v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/* Full 16-column steps of the W pack: 16 rows × 16 k widened with contiguous loads, transposed in registers.
 * Returns how many k were packed (a multiple of 16). */
static inline __attribute__((always_inline)) int pack_w16_dt(cb_dtype dt, const void *W0, int64_t K, int valid,
                                                             int64_t k0, int kc, bool rnd, float *d) {
    size_t esz = dt == CB_F32 ? 4 : 2;
    int k = 0;
    for (; k + 16 <= kc; k += 16) {
        __m512 r[16];
        for (int j = 0; j < 16; j++)
            r[j] = j < valid ? load_w(dt, (const char *)W0 + (size_t)(j * K) * esz, k0 + k, 0xffff) : _mm512_setzero_ps();
        transpose16(r);
        for (int c = 0; c < 16; c++) _mm512_store_ps(d + (int64_t)(k + c) * NR, rnd ? round_bf16(r[c]) : r[c]);
    }
    return k;
}
static int pack_w16(const cb_weight *W, int64_t row0, int valid, int64_t k0, int kc, bool rnd, float *d) {
    size_t esz = cb_dtype_size(W->dtype);
    const void *W0 = (const char *)W->data + (size_t)(row0 * W->cols) * esz;
    switch (W->dtype) {
    case CB_F32: return pack_w16_dt(CB_F32, W0, W->cols, valid, k0, kc, rnd, d);
    case CB_BF16: return pack_w16_dt(CB_BF16, W0, W->cols, valid, k0, kc, rnd, d);
    default: return pack_w16_dt(CB_F16, W0, W->cols, valid, k0, kc, rnd, d);
    }
}

/* Pack rows [n0, n0+nr) × cols [k0, k0+kc) of W as [k][NR] fp32 (rows ≥ nr zero). Gathers read one
 * element (f32) or one adjacent pair (16-bit types) of each of the 16 rows per instruction. */
static void pack_w_f32(const cb_weight *W, int64_t n0, int nr, int64_t k0, int kc, bool rnd, float *dst) {
    int64_t K = W->cols;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)K));
    for (int h = 0; h < NR / 16; h++) {
        int valid = nr - 16 * h;
        __mmask16 m = valid >= 16 ? 0xffff : valid <= 0 ? 0 : (__mmask16)((1u << valid) - 1);
        float *d = dst + 16 * h;
        if (!m) {
            for (int k = 0; k < kc; k++) _mm512_store_ps(d + (int64_t)k * NR, _mm512_setzero_ps());
            continue;
        }
        int64_t row0 = n0 + 16 * h;
        int kdone = pack_w16(W, row0, valid, k0, kc, rnd, d);
        if (W->dtype == CB_F32) {
            const float *base = (const float *)W->data + row0 * K + k0;
            for (int k = kdone; k < kc; k++) {
                __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + k, 4);
                _mm512_store_ps(d + (int64_t)k * NR, rnd ? round_bf16(v) : v);
            }
        } else {
            const uint16_t *base = (const uint16_t *)W->data + row0 * K + k0;
            int k = kdone;
            for (; k + 1 < kc; k += 2) {
                __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, base + k, 2);
                __m512 lo, hi;
                if (W->dtype == CB_BF16) {
                    lo = _mm512_castsi512_ps(_mm512_slli_epi32(g, 16));
                    hi = _mm512_castsi512_ps(_mm512_and_si512(g, _mm512_set1_epi32((int)0xffff0000u)));
                } else {
                    lo = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
                    hi = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
                }
                _mm512_store_ps(d + (int64_t)k * NR, rnd ? round_bf16(lo) : lo);
                _mm512_store_ps(d + (int64_t)(k + 1) * NR, rnd ? round_bf16(hi) : hi);
            }
            for (; k < kc; k++) { /* odd tail: scalar, never reads past the row */
                for (int j = 0; j < 16; j++) {
                    float v = 0.0f;
                    if (j < valid) {
                        uint16_t b = base[(int64_t)j * K + k];
                        v = W->dtype == CB_BF16 ? cb_bf16_to_f32(b) : cb_f16_to_f32(b);
                        if (rnd) v = cb_bf16_to_f32(cb_f32_to_bf16(v));
                    }
                    d[(int64_t)k * NR + j] = v;
                }
            }
        }
    }
}

/* Pack rows [m0, m0+mr) × cols [k0, k0+kc) of X as [k][MR] (rows ≥ mr zero): 16 k at a time through the
 * in-register transpose, ragged tail scalar. */
static void pack_x_f32(const float *X, int64_t ldx, int mr, int64_t k0, int kc, bool rnd, float *dst) {
    const __mmask16 out_mask = (__mmask16)((1u << MR) - 1);
    int kv = 0;
    for (; kv + 16 <= kc; kv += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < mr ? _mm512_loadu_ps(X + i * ldx + k0 + kv) : _mm512_setzero_ps();
        transpose16(r);
        for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps(dst + (kv + c) * MR, out_mask, rnd ? round_bf16(r[c]) : r[c]);
    }
    if (kv == kc) return;
    dst += kv * MR;
    k0 += kv;
    kc -= kv;
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            const float *x = X + i * ldx + k0;
            if (rnd)
                for (int k = 0; k < kc; k++) dst[k * MR + i] = cb_bf16_to_f32(cb_f32_to_bf16(x[k]));
            else
                for (int k = 0; k < kc; k++) dst[k * MR + i] = x[k];
        } else {
            for (int k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
        }
    }
}

/* The MR x 32 C block of both microkernels (fp32 FMA, vdpbf16ps): loaded (or zeroed) into registers before the
 * k loop, its first mr rows stored after it, columns masked by m0 / m1. */
#define UKR_C_LOAD(c)                                                                                              \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                                        \
        if (load && i < mr) {                                                                                      \
            c[i][0] = _mm512_maskz_loadu_ps(m0, C + i * ldc);                                                      \
            c[i][1] = _mm512_maskz_loadu_ps(m1, C + i * ldc + 16);                                                 \
        } else {                                                                                                   \
            c[i][0] = _mm512_setzero_ps();                                                                         \
            c[i][1] = _mm512_setzero_ps();                                                                         \
        }                                                                                                          \
    }
#define UKR_C_STORE(c)                                                                                             \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                                        \
        if (i < mr) {                                                                                              \
            _mm512_mask_storeu_ps(C + i * ldc, m0, c[i][0]);                                                       \
            _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c[i][1]);                                                  \
        }                                                                                                          \
    }

static inline __attribute__((always_inline)) void ukr_f32(int kc, const float *restrict A, const float *restrict B,
                                                          float *C, int64_t ldc, int mr, __mmask16 m0, __mmask16 m1,
                                                          bool load) {
    __m512 c[MR][2];
    UKR_C_LOAD(c);
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(A[i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
        A += MR;
        B += NR;
    }
    UKR_C_STORE(c);
}

/* ================= blocked GEMM, bf16 pairs + vdpbf16ps ================= */

/* W block as [k/2][NR] u32 pairs (bf16 of k even in the low half, k odd in the high half). */
static void pack_w_bf16(const cb_weight *W, int64_t n0, int nr, int64_t k0, int kc, uint32_t *dst) {
    int64_t K = W->cols;
    int kp = (kc + 1) / 2;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)K));
    for (int h = 0; h < NR / 16; h++) {
        int valid = nr - 16 * h;
        __mmask16 m = valid >= 16 ? 0xffff : valid <= 0 ? 0 : (__mmask16)((1u << valid) - 1);
        uint32_t *d = dst + 16 * h;
        int64_t row0 = n0 + 16 * h;
        for (int p = 0; p < kp; p++) {
            int k = 2 * p;
            __m512i out;
            if (!m) {
                out = _mm512_setzero_si512();
            } else if (k + 1 < kc) {
                if (W->dtype == CB_BF16) {
                    const uint16_t *base = (const uint16_t *)W->data + row0 * K + k0 + k;
                    out = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, base, 2);
                } else {
                    __m512 lo, hi;
                    if (W->dtype == CB_F32) {
                        const float *base = (const float *)W->data + row0 * K + k0 + k;
                        lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base, 4);
                        hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + 1, 4);
                    } else {
                        const uint16_t *base = (const uint16_t *)W->data + row0 * K + k0 + k;
                        __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, base, 2);
                        lo = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
                        hi = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
                    }
                    out = _mm512_or_si512(bf16_bits(lo), _mm512_slli_epi32(bf16_bits(hi), 16));
                }
            } else { /* odd tail: low half only */
                uint32_t tmp[16];
                for (int j = 0; j < 16; j++)
                    tmp[j] = j < valid ? cb_f32_to_bf16(cb_load_f32(W->data, W->dtype, (size_t)((row0 + j) * K + k0 + k)))
                                       : 0u;
                out = _mm512_loadu_si512(tmp);
            }
            _mm512_store_si512(d + (int64_t)p * NR, out);
        }
    }
}

static void pack_x_bf16(const float *X, int64_t ldx, int mr, int64_t k0, int kc, uint32_t *dst) {
    const __mmask16 out_mask = (__mmask16)((1u << MR) - 1);
    int kv = 0; /* 32 k (16 pairs) at a time: rows rounded to bf16 pairs, then the pair matrix transposed */
    for (; kv + 32 <= kc; kv += 32) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
            if (i < mr) {
                const float *x = X + i * ldx + k0 + kv;
                __m256i lo = _mm512_cvtepi32_epi16(bf16_bits(_mm512_loadu_ps(x)));
                __m256i hi = _mm512_cvtepi32_epi16(bf16_bits(_mm512_loadu_ps(x + 16)));
                r[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
            } else {
                r[i] = _mm512_setzero_ps();
            }
        }
        transpose16(r);
        for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps((float *)dst + (kv / 2 + c) * MR, out_mask, r[c]);
    }
    if (kv == kc) return;
    dst += kv / 2 * MR;
    k0 += kv;
    kc -= kv;
    int kp = (kc + 1) / 2;
    for (int i = 0; i < MR; i++) {
        const float *x = X + i * ldx + k0;
        for (int p = 0; p < kp; p++) {
            uint32_t v = 0;
            if (i < mr) {
                int k = 2 * p;
                v = cb_f32_to_bf16(x[k]);
                if (k + 1 < kc) v |= (uint32_t)cb_f32_to_bf16(x[k + 1]) << 16;
            }
            dst[p * MR + i] = v;
        }
    }
}

static CB_TARGET_BF16 void ukr_bf16(int kp, const uint32_t *restrict A,
                                                           const uint32_t *restrict B, float *C, int64_t ldc, int mr,
                                                           __mmask16 m0, __mmask16 m1, bool load) {
    __m512 c[MR][2];
    UKR_C_LOAD(c);
    for (int p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(B), b1 = (__m512bh)_mm512_load_si512(B + 16);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[i]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
        }
        A += MR;
        B += NR;
    }
    UKR_C_STORE(c);
}

static inline __mmask16 lane_mask(int valid) {
    return valid >= 16 ? 0xffff : valid <= 0 ? 0 : (__mmask16)((1u << valid) - 1);
}

/* Packed X for the whole call (all M rows, all K), shared by the threads: packed once, read by every N block.
 * Layout per KC block starting at column pc: tile t at pc·Mpad + t·kc·MR floats (u32 pairs: pc/2·Mpad + t·kp·MR).
 * Owned by the calling thread, grown as needed. */
static _Thread_local cb_tscratch t_xall;

/* mode 0: exact fp32; 1: fp32 FMAs on bf16-rounded operands; 2: vdpbf16ps. */
static void gemm_blocked(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate,
                         int mode) {
    int64_t N = W->rows, K = W->cols;
    int64_t ntiles = (N + NR - 1) / NR;
    int Mt = (M + MR - 1) / MR;
    int64_t Mpad = (int64_t)Mt * MR, npc = (K + KC - 1) / KC;
    size_t xbytes = (size_t)Mpad * (size_t)(K + 1) * sizeof(float);
    float *xall = cb_tscratch_get(&t_xall, xbytes);
    if (!xall) { /* out of memory: portable path, same contract */
        if (mode == 0) cb_matmul_ref(M, X, ldx, W, Y, ldy, accumulate);
        else cb_matmul_bf16_ref(M, X, ldx, W, Y, ldy, accumulate);
        return;
    }
    bool par = (double)M * (double)N * (double)K > 2e6 && ntiles > 1;
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static) collapse(2)
        for (int64_t p = 0; p < npc; p++)
            for (int t = 0; t < Mt; t++) {
                int64_t pc = p * KC;
                int kc = (int)(K - pc < KC ? K - pc : KC), kp = (kc + 1) / 2;
                int mr = M - t * MR < MR ? M - t * MR : MR;
                const float *xs = X + (int64_t)t * MR * ldx;
                if (mode == 2) pack_x_bf16(xs, ldx, mr, pc, kc, (uint32_t *)xall + pc / 2 * Mpad + (int64_t)t * kp * MR);
                else pack_x_f32(xs, ldx, mr, pc, kc, mode == 1, xall + pc * Mpad + (int64_t)t * kc * MR);
            }
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t n_lo = ntiles * t / T * NR, n_hi = ntiles * (t + 1) / T * NR;
        if (n_hi > N) n_hi = N;
        float *wb = NULL;
        if (n_lo < n_hi && !thread_buffers(&wb)) {
            /* out of memory for this thread's W panel: its N slice on the portable path */
            cb_weight sub = *W;
            sub.data = (const char *)W->data + (size_t)(n_lo * K) * cb_dtype_size(W->dtype);
            sub.rows = n_hi - n_lo;
            if (mode == 0) cb_matmul_ref(M, X, ldx, &sub, Y + n_lo, ldy, accumulate);
            else cb_matmul_bf16_ref(M, X, ldx, &sub, Y + n_lo, ldy, accumulate);
            n_hi = n_lo;
        }
        for (int64_t jc = n_lo; jc < n_hi; jc += NC) {
            int nc = (int)(n_hi - jc < NC ? n_hi - jc : NC);
            for (int64_t pc = 0; pc < K; pc += KC) {
                int kc = (int)(K - pc < KC ? K - pc : KC);
                int kp = (kc + 1) / 2;
                bool load = accumulate || pc > 0;
                for (int jr = 0; jr < nc; jr += NR) {
                    if (mode == 2) pack_w_bf16(W, jc + jr, nc - jr, pc, kc, (uint32_t *)wb + (int64_t)(jr / NR) * kp * NR);
                    else pack_w_f32(W, jc + jr, nc - jr, pc, kc, mode == 1, wb + (int64_t)(jr / NR) * kc * NR);
                }
                for (int ic = 0; ic < M; ic += MC) {
                    int mc = M - ic < MC ? M - ic : MC;
                    for (int jr = 0; jr < nc; jr += NR) {
                        __mmask16 m0 = lane_mask(nc - jr), m1 = lane_mask(nc - jr - 16);
                        for (int ir = 0; ir < mc; ir += MR) {
                            int mr = mc - ir < MR ? mc - ir : MR;
                            int64_t tile = (ic + ir) / MR;
                            float *C = Y + (int64_t)(ic + ir) * ldy + jc + jr;
                            if (mode == 2)
                                ukr_bf16(kp, (const uint32_t *)xall + pc / 2 * Mpad + tile * kp * MR,
                                         (const uint32_t *)wb + (int64_t)(jr / NR) * kp * NR, C, ldy, mr, m0, m1, load);
                            else
                                ukr_f32(kc, xall + pc * Mpad + tile * kc * MR, wb + (int64_t)(jr / NR) * kc * NR, C, ldy,
                                        mr, m0, m1, load);
                        }
                    }
                }
            }
        }
    }
}

/* ================= skinny (decode) kernels ================= */

#define SN 4 /* weight rows per block */
#define SM 4 /* activation rows per block */
#ifndef PF_DIST
#define PF_DIST 4096 /* bytes ahead to prefetch weight rows (streams from DRAM) */
#endif

/* fp32 FMAs; X already rounded by the caller in mode 1 (rnd then rounds the weights too). */
static inline __attribute__((always_inline)) void skinny_block_f32(cb_dtype dt, int sm, int64_t K,
                                                                   const float *const *xr, const void *const *wr,
                                                                   bool rnd, int64_t pf, float out[SM][SN]) {
    __m512 acc[SM][SN];
#pragma GCC unroll 4
    for (int i = 0; i < sm; i++)
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        __mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m512 w[SN];
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) {
            _mm_prefetch((const char *)wr[j] + k * (int64_t)(dt == CB_F32 ? 4 : 2) + pf, _MM_HINT_T0);
            w[j] = load_w(dt, wr[j], k, m);
            if (rnd) w[j] = round_bf16(w[j]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < sm; i++) {
            __m512 x = _mm512_maskz_loadu_ps(m, xr[i] + k);
#pragma GCC unroll 4
            for (int j = 0; j < SN; j++) acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < sm; i++)
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* bf16 weights, exact mode: 32 weights per 64-byte load, split into even (shift) and odd (mask) lanes with no
 * cross-lane widening; the activations are de-interleaved to match once per 32 columns and shared by the rows. */
static inline __attribute__((always_inline)) void skinny_block_bf16eo(int sm, int64_t K, const float *const *xr,
                                                                      const void *const *wr, int64_t pf,
                                                                      float out[SM][SN]) {
    /* M = 1: even / odd columns in two accumulators (shorter FMA chains); more rows would run out of registers */
    __m512 acc[SM][SN], acc2[SM][SN];
#pragma GCC unroll 4
    for (int i = 0; i < sm; i++)
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) acc[i][j] = acc2[i][j] = _mm512_setzero_ps();
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    for (int64_t k = 0; k < K; k += 32) {
        int64_t rem = K - k;
        __mmask32 m = rem >= 32 ? 0xffffffffu : (__mmask32)((1u << rem) - 1);
        __mmask16 m0 = (__mmask16)m, m1 = (__mmask16)(m >> 16);
        __m512 xe[SM], xo[SM];
#pragma GCC unroll 4
        for (int i = 0; i < sm; i++) {
            __m512 a = _mm512_maskz_loadu_ps(m0, xr[i] + k), b = _mm512_maskz_loadu_ps(m1, xr[i] + k + 16);
            xe[i] = _mm512_permutex2var_ps(a, ev, b);
            xo[i] = _mm512_permutex2var_ps(a, od, b);
        }
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) {
            _mm_prefetch((const char *)((const uint16_t *)wr[j] + k) + pf, _MM_HINT_T0);
            __m512i v = _mm512_maskz_loadu_epi16(m, (const uint16_t *)wr[j] + k);
            __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
#pragma GCC unroll 4
            for (int i = 0; i < sm; i++) {
                acc[i][j] = _mm512_fmadd_ps(xe[i], we, acc[i][j]);
                if (sm == 1) acc2[i][j] = _mm512_fmadd_ps(xo[i], wo, acc2[i][j]);
                else acc[i][j] = _mm512_fmadd_ps(xo[i], wo, acc[i][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < sm; i++)
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) out[i][j] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][j], acc2[i][j]));
}

/* vdpbf16ps: xr rows are bf16 (K padded to even with zeros); weights converted/rounded per 32 lanes. */
static CB_TARGET_BF16_INLINE void skinny_block_dp(cb_dtype dt, int sm, int64_t K,
                                                                  const uint16_t *const *xr, const void *const *wr,
                                                                  int64_t pf, float out[SM][SN]) {
    __m512 acc[SM][SN];
#pragma GCC unroll 4
    for (int i = 0; i < sm; i++)
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 32) {
        int64_t rem = K - k;
        __mmask32 m = rem >= 32 ? 0xffffffffu : (__mmask32)((1u << rem) - 1);
        __m512bh w[SN];
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) {
            _mm_prefetch((const char *)wr[j] + k * (int64_t)(dt == CB_F32 ? 4 : 2) + pf, _MM_HINT_T0);
            if (dt == CB_F32) _mm_prefetch((const char *)wr[j] + k * 4 + pf + 64, _MM_HINT_T0);
            if (dt == CB_BF16) {
                w[j] = (__m512bh)_mm512_maskz_loadu_epi16(m, (const uint16_t *)wr[j] + k);
            } else {
                __m512 lo = load_w(dt, wr[j], k, (__mmask16)m), hi = load_w(dt, wr[j], k + 16, (__mmask16)(m >> 16));
                __m256i l16 = _mm512_cvtepi32_epi16(bf16_bits(lo)), h16 = _mm512_cvtepi32_epi16(bf16_bits(hi));
                w[j] = (__m512bh)_mm512_inserti64x4(_mm512_castsi256_si512(l16), h16, 1);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < sm; i++) {
            __m512bh x = (__m512bh)_mm512_maskz_loadu_epi16(m, xr[i] + k);
#pragma GCC unroll 4
            for (int j = 0; j < SN; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], x, w[j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < sm; i++)
#pragma GCC unroll 4
        for (int j = 0; j < SN; j++) out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* M = 1, exact mode, bf16 weights: x is split once per call into 32-column groups [16 even | 16 odd] (zeros
 * past K), so that each weight row is read from start to end on its own. Reading a block's 4 rows
 * interleaved (64 bytes of each in turn) streamed 30-33 GB/s on one Zen 5 core against 42 row after row.
 * Same two accumulators, same operations in the same order as skinny_block_bf16eo at sm = 1: bit-identical. */
/* Which order a machine streams faster is measured, not derived (docs/performance.md, "Batch-1 decode at the
 * bandwidth"): on the 2-core Zen 5 VM rows were 1.2-1.3x faster than blocks, on the 16-vCPU Sapphire
 * Rapids VM (8 cores x 2 hyper-threads) blocks were 1.10-1.16x faster. Hence the default by vendor. */
static int gemv_rows = -1;

int cb_matmul_avx512_gemv_rows(int order) {
    if (order == 0 || order == 1) return gemv_rows = order;
    const char *env = getenv("CTXBENCH_GEMV_ORDER");
    if (env && !strcmp(env, "rows")) return gemv_rows = 1;
    if (env && !strcmp(env, "blocks")) return gemv_rows = 0;
    if (env && *env) fprintf(stderr, "ctxbench: CTXBENCH_GEMV_ORDER='%s' unknown (rows|blocks); using the default\n", env);
    __builtin_cpu_init();
    return gemv_rows = __builtin_cpu_is("amd") ? 1 : 0;
}

static _Thread_local cb_tscratch t_xsplit;

static const float *split_x(const float *x, int64_t K) {
    const int64_t Kp = (K + 31) & ~(int64_t)31;
    const size_t bytes = (size_t)Kp * sizeof(float);
    float *xs = cb_tscratch_get(&t_xsplit, bytes);
    if (!xs) return NULL;
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int64_t k = 0; k < K; k += 32) {
        const int64_t rem = K - k;
        const __mmask32 m = rem >= 32 ? 0xffffffffu : (__mmask32)((1u << rem) - 1);
        __m512 a = _mm512_maskz_loadu_ps((__mmask16)m, x + k), b = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), x + k + 16);
        _mm512_store_ps(xs + k, _mm512_permutex2var_ps(a, ev, b));
        _mm512_store_ps(xs + k + 16, _mm512_permutex2var_ps(a, od, b));
    }
    return xs;
}

static inline float row_bf16_split(int64_t K, const float *xsp, const uint16_t *w, int64_t pf) {
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 32) {
        const int64_t rem = K - k;
        const __mmask32 m = rem >= 32 ? 0xffffffffu : (__mmask32)((1u << rem) - 1);
        _mm_prefetch((const char *)(w + k) + pf, _MM_HINT_T0);
        __m512i v = _mm512_maskz_loadu_epi16(m, w + k);
        acc = _mm512_fmadd_ps(_mm512_load_ps(xsp + k), _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), acc);
        acc2 = _mm512_fmadd_ps(_mm512_load_ps(xsp + k + 16), _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask)), acc2);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2));
}

/* skinny_block_dp at a constant block height, for one row block of skinny_rows in mode 2. */
static CB_TARGET_BF16 void skinny_dp(cb_dtype dt, int mm, int64_t K, const uint16_t *const *xr, const void *const *wr,
                                     int64_t pf, float out[SM][SN]) {
#define DP(D) (mm == 1 ? skinny_block_dp(D, 1, K, xr, wr, pf, out) : mm == 2 ? skinny_block_dp(D, 2, K, xr, wr, pf, out) \
                                                                  : skinny_block_dp(D, 4, K, xr, wr, pf, out))
    switch (dt) {
    case CB_BF16: DP(CB_BF16); break;
    case CB_F16: DP(CB_F16); break;
    default: DP(CB_F32); break;
    }
#undef DP
}

/* M = 1, vdpbf16ps (fast mode), bf16 weights: the same row-after-row order; one accumulator per row as in
 * skinny_block_dp at sm = 1, so bit-identical too. */
static CB_TARGET_BF16 float row_dp_bf16(int64_t K, const uint16_t *x, const uint16_t *w, int64_t pf) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 32) {
        const int64_t rem = K - k;
        const __mmask32 m = rem >= 32 ? 0xffffffffu : (__mmask32)((1u << rem) - 1);
        _mm_prefetch((const char *)(w + k) + pf, _MM_HINT_T0);
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi16(m, x + k), (__m512bh)_mm512_maskz_loadu_epi16(m, w + k));
    }
    return _mm512_reduce_add_ps(acc);
}

/* M = 1 on fp32 FMAs (exact mode on f32 / f16 weights, fast mode 1 on any): row after row as well, one
 * accumulator per row as in skinny_block_f32 at sm = 1 (bit-identical). */
static inline float row_fma(cb_dtype dt, int64_t K, const float *x, const void *w, bool rnd, int64_t pf) {
    __m512 acc = _mm512_setzero_ps();
    const int64_t es = dt == CB_F32 ? 4 : 2;
    for (int64_t k = 0; k < K; k += 16) {
        __mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        _mm_prefetch((const char *)w + k * es + pf, _MM_HINT_T0);
        __m512 wv = load_w(dt, w, k, m);
        if (rnd) wv = round_bf16(wv);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + k), wv, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* One block of SN weight rows (starting at row n0 of W) for all M activation rows. mode as gemm_blocked;
 * Xs: fp32 rows (mode 0/1; already rounded in mode 1) or bf16 rows (mode 2), row stride lds. */
static void skinny_rows(int M, const void *Xs, int64_t lds, const cb_weight *W, int64_t n0, float *Y, int64_t ldy,
                        bool accumulate, int mode, int64_t pf, bool rows, const float *xsplit) {
    const int64_t N = W->rows, K = W->cols;
    const cb_dtype dt = W->dtype;
    const size_t esz = cb_dtype_size(dt);
    int nn = N - n0 < SN ? (int)(N - n0) : SN;
    if (rows && (mode != 2 || dt == CB_BF16) && !(mode == 0 && dt == CB_BF16 && !xsplit)) { /* row after row */
        for (int j = 0; j < nn; j++) {
            const char *w = (const char *)W->data + (size_t)(n0 + j) * (size_t)K * esz;
            float r = mode == 2 ? row_dp_bf16(K, (const uint16_t *)Xs, (const uint16_t *)w, pf)
                      : mode == 0 && dt == CB_BF16 ? row_bf16_split(K, xsplit, (const uint16_t *)w, pf)
                      : dt == CB_F32 ? row_fma(CB_F32, K, (const float *)Xs, w, mode == 1, pf)
                      : dt == CB_F16 ? row_fma(CB_F16, K, (const float *)Xs, w, mode == 1, pf)
                                     : row_fma(CB_BF16, K, (const float *)Xs, w, mode == 1, pf);
            Y[n0 + j] = accumulate ? Y[n0 + j] + r : r;
        }
        return;
    }
    const void *wr[SN];
    for (int j = 0; j < SN; j++) wr[j] = (const char *)W->data + (size_t)((n0 + (j < nn ? j : 0)) * K) * esz;
    for (int m0 = 0; m0 < M; m0 += SM) {
        int mm = M - m0 < SM ? M - m0 : SM;
        float out[SM][SN];
        if (mode == 2) {
            const uint16_t *xr[SM];
            for (int i = 0; i < SM; i++) xr[i] = (const uint16_t *)Xs + (m0 + (i < mm ? i : 0)) * lds;
            skinny_dp(dt, mm, K, xr, wr, pf, out);
        } else {
            const float *xr[SM];
            for (int i = 0; i < SM; i++) xr[i] = (const float *)Xs + (m0 + (i < mm ? i : 0)) * lds;
            bool rnd = mode == 1;
#define FB(D) (mm == 1 ? skinny_block_f32(D, 1, K, xr, wr, rnd, pf, out) \
               : mm == 2 ? skinny_block_f32(D, 2, K, xr, wr, rnd, pf, out) : skinny_block_f32(D, 4, K, xr, wr, rnd, pf, out))
            switch (dt) {
            case CB_BF16:
                if (rnd) FB(CB_BF16);
                else if (mm == 1) skinny_block_bf16eo(1, K, xr, wr, pf, out);
                else if (mm == 2) skinny_block_bf16eo(2, K, xr, wr, pf, out);
                else skinny_block_bf16eo(4, K, xr, wr, pf, out);
                break;
            case CB_F16: FB(CB_F16); break;
            default: FB(CB_F32); break;
            }
#undef FB
        }
        for (int i = 0; i < mm; i++)
            for (int j = 0; j < nn; j++) {
                float *y = Y + (int64_t)(m0 + i) * ldy + n0 + j;
                *y = accumulate ? *y + out[i][j] : out[i][j];
            }
    }
}

/* n weights on the same activations in one parallel region: the blocks of SN rows of all of them form one
 * index space split statically over the threads, so each thread streams one contiguous range of rows and
 * small projections (k/v) cost no fork/join of their own. Each output element is computed by one thread
 * with the same operations whatever the split. */
#define MULTI_MAX 4
/* Thread t of T: its contiguous range of the blocks (a direct call with t = 0, T = 1 does them all). */
static void multi_slice(int M, const void *Xs, int64_t lds, int n, const cb_weight *const *W, float *const *Y,
                        const int64_t *ldy, bool accumulate, int mode, const int64_t *first, const int64_t *pf,
                        bool rows, const float *xsplit, int t, int T) {
    const int64_t total = first[n], lo = total * t / T, hi = total * (t + 1) / T;
    int i = 0;
    while (i < n - 1 && lo >= first[i + 1]) i++;
    if (lo < hi) { /* the in-loop prefetch covers the blocks after the first one: request that one now */
        const cb_weight *w = W[i];
        const size_t es = cb_dtype_size(w->dtype);
        const int64_t r0 = (lo - first[i]) * SN, nr = CB_MIN((int64_t)SN, w->rows - r0);
        const char *p0 = (const char *)w->data + (size_t)(r0 * w->cols) * es;
        for (size_t o = 0; o < (size_t)(nr * w->cols) * es; o += 64) _mm_prefetch(p0 + o, _MM_HINT_T0);
    }
    for (int64_t b = lo; b < hi; b++) {
        while (b >= first[i + 1]) i++;
        skinny_rows(M, Xs, lds, W[i], (b - first[i]) * SN, Y[i], ldy[i], accumulate, mode, pf[i], rows, xsplit);
    }
}
static void gemm_skinny_multi(int M, const void *Xs, int64_t lds, int n, const cb_weight *const *W, float *const *Y,
                              const int64_t *ldy, bool accumulate, int mode) {
    int64_t first[MULTI_MAX + 1] = { 0 }, pf[MULTI_MAX];
    double work = 0;
    for (int i = 0; i < n; i++) {
        const int64_t K = W[i]->cols;
        first[i + 1] = first[i] + (W[i]->rows + SN - 1) / SN;
        work += (double)W[i]->rows * (double)K * (double)(M > 4 ? 4 : M);
        /* Prefetch the same position one block of SN rows ahead (at least PF_DIST bytes): each thread
         * streams a contiguous range of rows, so that is where its stream will be. */
        pf[i] = CB_MAX((int64_t)PF_DIST, (int64_t)SN * K * (int64_t)cb_dtype_size(W[i]->dtype));
    }
    const bool rows = M == 1 && (gemv_rows >= 0 ? gemv_rows : cb_matmul_avx512_gemv_rows(-1)) == 1;
    if (rows) /* one stream per thread: PF_DIST ahead in it (a block of SN rows ahead would be 4 rows, up to
               * 112 KiB for K = 14336: far past L1, evicted before use) */
        for (int i = 0; i < n; i++) pf[i] = PF_DIST;
    bool all_bf16 = rows && mode == 0;
    for (int i = 0; i < n; i++) all_bf16 = all_bf16 && W[i]->dtype == CB_BF16 && W[i]->cols == W[0]->cols;
    const float *xsplit = all_bf16 ? split_x((const float *)Xs, W[0]->cols) : NULL;
    if (work > 1e5 && !cb_omp_nested()) {
#pragma omp parallel
        multi_slice(M, Xs, lds, n, W, Y, ldy, accumulate, mode, first, pf, rows, xsplit, omp_get_thread_num(),
                    omp_get_num_threads());
    } else {
        multi_slice(M, Xs, lds, n, W, Y, ldy, accumulate, mode, first, pf, rows, xsplit, 0, 1);
    }
}

static void gemm_skinny(int M, const void *Xs, int64_t lds, const cb_weight *W, float *Y, int64_t ldy, bool accumulate,
                        int mode) {
    gemm_skinny_multi(M, Xs, lds, 1, &W, &Y, &ldy, accumulate, mode);
}

/* ================= entry points ================= */

static bool use_skinny(int M) {
    if (force_mode == 1) return true;
    if (force_mode == 2) return false;
    return M <= SKINNY_MAX_DEFAULT;
}

static void zero_or_keep(int M, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    if (accumulate) return;
    for (int m = 0; m < M; m++) memset(Y + m * ldy, 0, (size_t)W->rows * sizeof(float));
}

void cb_matmul_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    if (M <= 0 || W->rows <= 0) return;
    if (W->cols <= 0) return zero_or_keep(M, W, Y, ldy, accumulate);
    if (use_skinny(M)) gemm_skinny(M, X, ldx, W, Y, ldy, accumulate, 0);
    else gemm_blocked(M, X, ldx, W, Y, ldy, accumulate, 0);
}

/* Fast mode rounds the (few) activation rows to bf16 once per call, into a buffer kept per thread. */
static _Thread_local cb_tscratch t_xs;

static void *round_rows(int M, const float *X, int64_t ldx, int64_t K, bool use_dpbf16, int64_t *lds) {
    *lds = (K + 31) & ~(int64_t)31;
    size_t bytes = (size_t)M * (size_t)*lds * (use_dpbf16 ? 2 : 4);
    void *xs = cb_tscratch_get(&t_xs, bytes);
    if (!xs) return NULL;
    for (int m = 0; m < M; m++)
        for (int64_t k = 0; k < *lds; k++) {
            uint16_t b = k < K ? cb_f32_to_bf16(X[m * ldx + k]) : 0;
            if (use_dpbf16) ((uint16_t *)xs)[m * *lds + k] = b;
            else ((float *)xs)[m * *lds + k] = cb_bf16_to_f32(b);
        }
    return xs;
}

void cb_matmul_bf16_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                           bool accumulate, bool use_dpbf16) {
    if (M <= 0 || W->rows <= 0) return;
    int64_t K = W->cols;
    if (K <= 0) return zero_or_keep(M, W, Y, ldy, accumulate);
    if (!use_skinny(M)) return gemm_blocked(M, X, ldx, W, Y, ldy, accumulate, use_dpbf16 ? 2 : 1);
    int64_t lds;
    void *xs = round_rows(M, X, ldx, K, use_dpbf16, &lds);
    if (!xs) return cb_matmul_bf16_ref(M, X, ldx, W, Y, ldy, accumulate);
    gemm_skinny(M, xs, lds, W, Y, ldy, accumulate, use_dpbf16 ? 2 : 1);
}

/* Skinny shapes with a shared K and supported dtypes go through one parallel region; anything else is the
 * per-weight entry point (same results either way). fast: -1 exact, 0 fast on fp32 FMAs, 1 fast vdpbf16ps. */
static bool multi_ok(int M, int n, const cb_weight *const *W) {
    if (!use_skinny(M) || n < 1 || n > MULTI_MAX) return false;
    for (int i = 0; i < n; i++)
        if (!cb_matmul_avx512_supports(W[i]) || W[i]->rows <= 0 || W[i]->cols != W[0]->cols || W[i]->cols <= 0)
            return false;
    return true;
}

void cb_matmul_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                            const int64_t *ldy) {
    if (M <= 0) return;
    if (!multi_ok(M, n, W)) {
        for (int i = 0; i < n; i++) cb_matmul_avx512(M, X, ldx, W[i], Y[i], ldy[i], false);
        return;
    }
    gemm_skinny_multi(M, X, ldx, n, W, Y, ldy, false, 0);
}

void cb_matmul_bf16_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                                 float *const *Y, const int64_t *ldy, bool use_dpbf16) {
    if (M <= 0) return;
    int64_t lds;
    void *xs = multi_ok(M, n, W) ? round_rows(M, X, ldx, W[0]->cols, use_dpbf16, &lds) : NULL;
    if (!xs) {
        for (int i = 0; i < n; i++) cb_matmul_bf16_avx512(M, X, ldx, W[i], Y[i], ldy[i], false, use_dpbf16);
        return;
    }
    gemm_skinny_multi(M, xs, lds, n, W, Y, ldy, false, use_dpbf16 ? 2 : 1);
}
