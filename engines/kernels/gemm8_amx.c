/* AMX-INT8 GEMM for int8 weights in fast mode: Y[M, N] (+)= X[M, K] · (scale ⊙ Q)ᵀ with the activations
 * quantised per row exactly as the VNNI path does (cb_q8_quantize_activations' numbers, gemm8.h), then
 * TDPBSSD (16 × 16 int32 += 16 × 64 s8 · 64 × 16 s8) and y = (float)Σ_k xq_k q_nk · (sx_m · scale[n]).
 * The int32 sums are exact, so every output is bit-identical to the VNNI kernels and the portable twin
 * (cb_matmul_q8_fast_ref) for any blocking and thread count. See docs/engines.md "int8 weights on AMX".
 *
 * Operands. A = the quantised activations in 16 × 64-byte tiles, (row block mb, k step s) at
 * act + (mb·S + s)·1 KiB (rows padded to 32, K to 64, zeros). B = W in the VNNI-4 layout of tiles.h: the
 * weight's tile copy (W->tiles, made once by the engine) when it has one, else packed per call per thread
 * and NC × KC block. C = int32 tiles: with K in one block, 4 KiB per 32 × 32 block converted and scaled
 * right after it; else a per-thread buffer (the slice's rows × NC columns, whole tiles) carried across K
 * blocks, the epilogue converting and scaling them once.
 *
 * Blocking as the bf16 AMX GEMM's default (gemm_amx.c): N in slices of NC = 256 split over the threads,
 * K in blocks of 1024 (the B block, 256 KiB, stays in L2), 32 × 32 register blocks (2 × 2 C tiles). */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "amx_internal.h"
#include "gemm8.h"
#include "kernels_amx.h"
#include "tiles.h"
#include "thread_scratch.h"

#define NC 256          /* columns per slice */
#define KCS 16          /* 64-wide k steps per K block */
#define A_TILE 1024     /* bytes of one A tile */

static int amx8_min_m; /* 0: not read yet */
int cb_matmul_q8_amx_min_m(int m) {
    if (m > 0) amx8_min_m = m;
    if (amx8_min_m == 0) {
        /* CTXBENCH_AMX8_MIN_M moves this one alone; CTXBENCH_AMX_MIN_M moves both (tests, benches) */
        const char *e8 = getenv("CTXBENCH_AMX8_MIN_M"), *e = getenv("CTXBENCH_AMX_MIN_M");
        amx8_min_m = e8 && atoi(e8) > 0 ? atoi(e8) : e && atoi(e) > 0 ? atoi(e) : CB_AMX8_MIN_M_DEFAULT;
    }
    return amx8_min_m;
}

/* 16 rows × 64 k of int8 W -> one B tile (tiles.h): each row's 16 dwords transposed into columns. */
static void pack_tile8(const cb_weight *W, int64_t n0, int64_t k0, uint32_t *dst) {
    const int64_t N = W->rows, K = W->cols, left = K - k0;
    const __mmask64 mk = left >= 64 ? ~(__mmask64)0 : left <= 0 ? 0 : (((__mmask64)1 << left) - 1);
    const int8_t *w = W->data;
    __m512i r[16];
    for (int i = 0; i < 16; i++)
        r[i] = n0 + i < N ? _mm512_maskz_loadu_epi8(mk, w + (n0 + i) * K + k0) : _mm512_setzero_si512();
    transpose16_u32(r);
    for (int c = 0; c < 16; c++) _mm512_store_si512(dst + c * 16, r[c]);
}

/* Block [n0, n0 + ncp) × k steps [s0, s0 + ks): tile (g, s) at dst + (g·ks + s)·TILE_U32. */
static void pack_block8(const cb_weight *W, int64_t n0, int ncp, int64_t s0, int ks, uint32_t *dst) {
    for (int g = 0; g < ncp / 16; g++)
        for (int s = 0; s < ks; s++) pack_tile8(W, n0 + 16 * g, 64 * (s0 + s), dst + (size_t)(g * ks + s) * TILE_U32);
}

typedef struct {
    const cb_weight *W;
    const int8_t *act; /* A tiles */
    const float *sx;   /* per-row activation scales */
    int M, Mp;
    int64_t S;         /* k steps: Kp / 64 */
    float *Y;
    int64_t ldy;
    bool accumulate;
} job8;

/* One 32 × 32 block of C (int32 tiles at c0 / c0 + 256 for rows m0.., c1 / c1 + 256 for rows m0 + 16..) over ks
 * k steps; a0 / a1: the A tiles of the two row blocks at the first step; b0 / b1: the B tiles of the two column
 * groups at the first step (steps TILE_U32 apart). one: a lone last 16-column group. */
static inline void block8(int32_t *c0, int32_t *c1, bool load, bool one, const int8_t *a0, const int8_t *a1,
                          const uint32_t *b0, const uint32_t *b1, int ks) {
    if (load) {
        _tile_loadd(0, c0, 64);
        _tile_loadd(2, c1, 64);
        if (!one) {
            _tile_loadd(1, c0 + 256, 64);
            _tile_loadd(3, c1 + 256, 64);
        }
    } else {
        _tile_zero(0);
        _tile_zero(2);
        if (!one) {
            _tile_zero(1);
            _tile_zero(3);
        }
    }
    for (int s = 0; s < ks; s++) {
        _tile_loadd(6, b0 + (size_t)s * TILE_U32, 64);
        _tile_loadd(4, a0 + (size_t)s * A_TILE, 64);
        _tile_dpbssd(0, 4, 6);
        _tile_loadd(5, a1 + (size_t)s * A_TILE, 64);
        _tile_dpbssd(2, 5, 6);
        if (!one) {
            _tile_loadd(7, b1 + (size_t)s * TILE_U32, 64);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(3, 5, 7);
        }
    }
    _tile_stored(0, c0, 64);
    _tile_stored(2, c1, 64);
    if (!one) {
        _tile_stored(1, c0 + 256, 64);
        _tile_stored(3, c1 + 256, 64);
    }
}

/* y = (float)d · (sx_m · scale[n]) (+ y): the VNNI kernels' epilogue, in the same operation order. Rows
 * [ma, mb), columns [n0, n0 + nc); C tile (row block (m - ma) / 16, column group g) at ci + (rb·G + g)·256. */
static void epilogue(const job8 *j, const int32_t *ci, int G, int ma, int mb, int64_t n0, int nc) {
    const float *scale = j->W->scale + n0;
    for (int m = ma; m < mb; m++) {
        const __m512 sm = _mm512_set1_ps(j->sx[m]);
        float *y = j->Y + (int64_t)m * j->ldy + n0;
        for (int g = 0; 16 * g < nc; g++) {
            const int left = nc - 16 * g;
            const __mmask16 mk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            const int32_t *c = ci + ((size_t)((m - ma) / 16) * (size_t)G + (size_t)g) * 256 + (size_t)((m - ma) % 16) * 16;
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c)),
                                     _mm512_mul_ps(sm, _mm512_maskz_loadu_ps(mk, scale + 16 * g)));
            if (j->accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, y + 16 * g), v);
            _mm512_mask_storeu_ps(y + 16 * g, mk, v);
        }
    }
}

/* Columns [na, nb) of Y for every row. ci: Mp × NC int32; pack: NC × 64·KCS bytes (no tile copy only).
 * K within one block (K <= 1024): each 32 × 32 block goes from its 4 KiB of C tiles (L1) straight through the
 * epilogue; longer K keeps the slice's C tiles in ci across the K blocks. */
static void slice8(const job8 *j, int32_t *ci, uint32_t *pack, int64_t na, int64_t nb) {
    const uint32_t *pre = j->W->tiles;
    const size_t pre_g = (size_t)j->S * TILE_U32, ablock = (size_t)j->S * A_TILE;
    const bool one_block = j->S <= KCS;
    int32_t scr[4 * 256] __attribute__((aligned(64)));
    for (int64_t jc = na; jc < nb; jc += NC) {
        const int nc = (int)CB_MIN((int64_t)NC, nb - jc), G = (nc + 15) / 16;
        for (int64_t s0 = 0; s0 < j->S; s0 += KCS) {
            const int ks = (int)CB_MIN((int64_t)KCS, j->S - s0);
            const uint32_t *b = pack;
            size_t gs = (size_t)ks * TILE_U32;
            if (pre) b = pre + (size_t)(jc / 16) * pre_g + (size_t)s0 * TILE_U32, gs = pre_g;
            else pack_block8(j->W, jc, 16 * G, s0, ks, pack);
            for (int m0 = 0; m0 < j->Mp; m0 += 32) {
                const int8_t *a0 = j->act + (size_t)(m0 / 16) * ablock + (size_t)s0 * A_TILE, *a1 = a0 + ablock;
                int32_t *c0 = ci + (size_t)(m0 / 16) * (size_t)G * 256, *c1 = c0 + (size_t)G * 256;
                for (int g = 0; g < G; g += 2) {
                    if (one_block) {
                        block8(scr, scr + 512, false, g + 1 >= G, a0, a1, b + (size_t)g * gs, b + (size_t)(g + 1) * gs, ks);
                        if (m0 < j->M) epilogue(j, scr, 2, m0, CB_MIN(j->M, m0 + 32), jc + 16 * g, CB_MIN(32, nc - 16 * g));
                    } else
                        block8(c0 + (size_t)g * 256, c1 + (size_t)g * 256, s0 > 0, g + 1 >= G, a0, a1,
                               b + (size_t)g * gs, b + (size_t)(g + 1) * gs, ks);
                }
            }
        }
        if (!one_block) epilogue(j, ci, G, 0, j->M, jc, nc);
    }
}

/* Per-thread buffers, kept across calls (a prefill makes hundreds of these calls). */
/* 0: A tiles, 1: row scales (the caller's), 2: a row's codes, 3: C tiles, 4: B pack (each thread's) */
static _Thread_local cb_tscratch t_buf[5];
static void *tbuf(int i, size_t bytes) { return cb_tscratch_get(&t_buf[i], bytes); }

/* Row m quantised (cb_q8_quantize_row_avx512: cb_q8_quantize_activations' numbers) into its tile rows;
 * q: K bytes of scratch. Padding rows and the k tail are zeros. */
static void quantize_row(const float *X, int64_t ldx, int M, int64_t K, int64_t S, int m, int8_t *q, int8_t *act,
                         float *sx) {
    const size_t ablock = (size_t)S * A_TILE;
    int8_t *dst = act + (size_t)(m / 16) * ablock + (size_t)(m % 16) * 64;
    if (m >= M) {
        for (int64_t s = 0; s < S; s++) memset(dst + (size_t)s * A_TILE, 0, 64);
        return;
    }
    cb_q8_quantize_row_avx512(X + (int64_t)m * ldx, K, q, &sx[m]);
    for (int64_t s = 0; s < S; s++) {
        const int64_t left = K - 64 * s;
        const __mmask64 mk = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
        _mm512_store_si512(dst + (size_t)s * A_TILE, _mm512_maskz_loadu_epi8(mk, q + 64 * s));
    }
}

void cb_matmul_q8_fast_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                           bool accumulate) {
    const int64_t N = W->rows, K = W->cols;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || W->dtype != CB_I8) { /* nothing to tile: the AVX-512 kernel's handling */
        cb_matmul_q8_fast_avx512(M, X, ldx, W, Y, ldy, accumulate);
        return;
    }
    const int Mp = (M + 31) & ~31;
    const int64_t S = cb_tiles_i8_ksteps(K);
    int8_t *act = tbuf(0, (size_t)Mp * (size_t)S * 64);
    float *sx = tbuf(1, (size_t)M * sizeof(float));
    if (!act || !sx) { /* out of memory: the portable twin (same numbers) */
        cb_matmul_q8_fast_ref(M, X, ldx, W, Y, ldy, accumulate);
        return;
    }
    const int64_t ngroups = (N + 31) / 32;
    const bool par = (double)M * (double)N * (double)K > 4e6 && !cb_omp_nested();
    bool failed = false;
#pragma omp parallel if (par)
    {
        const int T = omp_get_num_threads(), t = omp_get_thread_num();
        int8_t *q = tbuf(2, (size_t)K);
        if (!q) {
#pragma omp atomic write
            failed = true;
        }
#pragma omp for schedule(static)
        for (int m = 0; m < Mp; m++)
            if (q) quantize_row(X, ldx, M, K, S, m, q, act, sx);
        /* the loop's barrier: every A tile and every thread's allocation outcome is in */
        const int64_t na = ngroups * t / T * 32, nb = CB_MIN(N, ngroups * (t + 1) / T * 32);
        if (!failed && na < nb) {
            int32_t *ci = tbuf(3, (size_t)Mp * NC * sizeof(int32_t));
            uint32_t *pk = W->tiles ? NULL : tbuf(4, (size_t)NC * 64 * KCS);
            const job8 j = { .W = W, .act = act, .sx = sx, .M = M, .Mp = Mp, .S = S, .Y = Y, .ldy = ldy,
                             .accumulate = accumulate };
            if (ci && (W->tiles || pk)) {
                tiles_on();
                slice8(&j, ci, pk, na, nb);
                _tile_release();
            } else { /* out of memory: these columns on the AVX-512 kernel (same numbers) */
                cb_weight sub = *W;
                sub.data = (const int8_t *)W->data + na * K;
                sub.rows = nb - na;
                sub.scale = W->scale + na;
                sub.tiles = NULL;
                cb_matmul_q8_fast_avx512(M, X, ldx, &sub, Y + na, ldy, accumulate);
            }
        }
    }
    if (failed) cb_matmul_q8_fast_avx512(M, X, ldx, W, Y, ldy, accumulate);
}
