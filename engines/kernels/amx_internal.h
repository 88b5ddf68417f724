/* Tile helpers shared by the AMX kernels (gemm_amx.c, attention_amx.c): tile configuration, the fp32 -> bf16
 * part split of the A operand into tiles, and the 32 × 32 register block over C tiles. Include only from
 * *_amx.c files (AVX-512 + AMX flags). See gemm_amx.c for the layouts. */
#ifndef CB_AMX_INTERNAL_H
#define CB_AMX_INTERNAL_H

#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "tiles.h"

#define TILE_U32 CB_TILE_U32 /* one B tile: 16 rows × 16 pairs */
#define TILE_U16 512         /* one A tile: 16 rows × 32 bf16 */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Every tile 16 rows × 64 bytes: 0-3 C (fp32), 4-5 A (bf16 rows), 6-7 B (bf16 pairs). */
static inline void tiles_on(void) {
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    _tile_loadconfig(&c);
}

/* 16 rows of 16 uint32 transposed in registers: the weight packing of both tile layouts (tiles.h). */
static inline void transpose16_u32(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), v3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[8 + j] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[4 + j] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

/* ---- activations: fp32 rows -> bf16 part rows, Mp rows, zero padded ---- */

/* parts = 1: hi = bf16(x) (fast mode); 2: + lo = bf16(x − hi); 3: + a third term, so hi + mid + lo carries
 * all 24 bits of x (each remainder is exact in fp32). Written in the tile layout: A tile (mb, s, p) — rows
 * 16mb..16mb+15, k 32s..32s+31, part p — is 1 KiB at act + ((mb·S + s)·parts + p)·TILE_U16, S = Kp / 32, so
 * the tiles a row block needs are contiguous (no L1 set conflicts, sequential streams). One tile at a time:
 * 16 rows of 32 floats in, whole 64-byte rows out, in address order (docs/performance.md "AMX", split). */
static inline __m512 bf16_lo_f32(__m512i b) { /* the low 16 bf16 of b as fp32 */
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(b)), 16));
}
static inline __m512 bf16_hi_f32(__m512i b) { /* the high 16 bf16 of b as fp32 */
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(b, 1)), 16));
}
/* r − bf16(r), exact in fp32; 0 where r equals its bf16 (inf included) */
static inline __m512 split_rest(__m512 r, __m512 bf) { return _mm512_maskz_sub_ps(_mm512_cmp_ps_mask(r, bf, _CMP_NEQ_UQ), r, bf); }
/* One A tile: rows 16mb..16mb+15 of X, k..k+31, parts consecutive at dst (zeros past M and K). */
static inline void split_tile(int M, const float *X, int64_t ldx, int64_t K, int mb, int64_t k, int parts,
                              uint16_t *dst) {
    const int64_t left = K - k;
    const __mmask16 m0 = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    const __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
    for (int r = 0; r < 16; r++) {
        const int m = 16 * mb + r;
        __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
        if (m < M) {
            const float *x = X + (int64_t)m * ldx + k;
            lo = _mm512_maskz_loadu_ps(m0, x);
            hi = _mm512_maskz_loadu_ps(m1, x + 16);
        }
        for (int p = 0; p < parts; p++) {
            __m512i b = (__m512i)_mm512_cvtne2ps_pbh(hi, lo); /* RNE; lo's 16 values in the low half */
            _mm512_store_si512((__m512i *)(dst + (size_t)p * TILE_U16 + 32 * r), b);
            if (p + 1 < parts) lo = split_rest(lo, bf16_lo_f32(b)), hi = split_rest(hi, bf16_hi_f32(b));
        }
    }
}
static inline void split_rows(int M, const float *X, int64_t ldx, int64_t K, int Mp, int64_t S, int parts, uint16_t *act) {
    const int64_t tiles = (int64_t)(Mp / 16) * S;
#pragma omp parallel for schedule(static) if ((double)M * (double)K > 1e5)
    for (int64_t t = 0; t < tiles; t++)
        split_tile(M, X, ldx, K, (int)(t / S), 32 * (t % S), parts, act + (size_t)t * (size_t)parts * TILE_U16);
}

/* ---- C tiles: in place in Y when whole, else through a scratch tile ---- */
typedef struct {
    float *Y;
    int64_t ldy;
    int M, N;
    float scratch[4][256] __attribute__((aligned(64)));
} c_ctx;

static inline bool c_whole(const c_ctx *c, int m0, int64_t n0) { return m0 + 16 <= c->M && n0 + 16 <= c->N; }

/* Fill scratch tile t from Y's valid part (zeros elsewhere; zeros only when !load). */
static inline void c_stage(c_ctx *c, int t, int m0, int64_t n0, bool load) {
    float *s = c->scratch[t];
    memset(s, 0, sizeof c->scratch[t]);
    if (!load) return;
    for (int i = 0; i < 16 && m0 + i < c->M; i++)
        for (int j = 0; j < 16 && n0 + j < c->N; j++) s[i * 16 + j] = c->Y[(int64_t)(m0 + i) * c->ldy + n0 + j];
}
static inline void c_unstage(c_ctx *c, int t, int m0, int64_t n0) {
    const float *s = c->scratch[t];
    for (int i = 0; i < 16 && m0 + i < c->M; i++)
        for (int j = 0; j < 16 && n0 + j < c->N; j++) c->Y[(int64_t)(m0 + i) * c->ldy + n0 + j] = s[i * 16 + j];
}

#define C_LOAD(T, mi, nj)                                                                                              \
    do {                                                                                                               \
        int m_ = m0 + 16 * (mi);                                                                                       \
        int64_t n_ = n0 + 16 * (nj);                                                                                   \
        if (c_whole(c, m_, n_)) {                                                                                      \
            if (load) _tile_loadd(T, c->Y + (int64_t)m_ * c->ldy + n_, c->ldy * 4);                                    \
            else _tile_zero(T);                                                                                        \
        } else {                                                                                                       \
            c_stage(c, T, m_, n_, load);                                                                               \
            _tile_loadd(T, c->scratch[T], 64);                                                                         \
        }                                                                                                              \
    } while (0)
#define C_STORE(T, mi, nj)                                                                                             \
    do {                                                                                                               \
        int m_ = m0 + 16 * (mi);                                                                                       \
        int64_t n_ = n0 + 16 * (nj);                                                                                   \
        if (c_whole(c, m_, n_)) _tile_stored(T, c->Y + (int64_t)m_ * c->ldy + n_, c->ldy * 4);                         \
        else {                                                                                                         \
            _tile_stored(T, c->scratch[T], 64);                                                                        \
            c_unstage(c, T, m_, n_);                                                                                   \
        }                                                                                                              \
    } while (0)

/* The 2 × 2 C tiles of a 32 × 32 block: tiles 0 / 2 hold columns n0..+15 of the two 16-row blocks, 1 / 3 the
 * next 16 columns (skipped when two_n is false). */
#define C_LOAD_2X2(two_n)                                                                                              \
    do {                                                                                                               \
        C_LOAD(0, 0, 0);                                                                                               \
        C_LOAD(2, 1, 0);                                                                                               \
        if (two_n) {                                                                                                   \
            C_LOAD(1, 0, 1);                                                                                           \
            C_LOAD(3, 1, 1);                                                                                           \
        }                                                                                                              \
    } while (0)
#define C_STORE_2X2(two_n)                                                                                             \
    do {                                                                                                               \
        C_STORE(0, 0, 0);                                                                                              \
        C_STORE(2, 1, 0);                                                                                              \
        if (two_n) {                                                                                                   \
            C_STORE(1, 0, 1);                                                                                          \
            C_STORE(3, 1, 1);                                                                                          \
        }                                                                                                              \
    } while (0)

/* The four products of a 2 × 2 block for one A tile pair (rows 0..15 from pa0, 16..31 from pa1) against the
 * B tiles already in tiles 6 (and 7 when two_n). */
#define DP_2X2(two_n, pa0, pa1)                                                                                        \
    do {                                                                                                               \
        _tile_loadd(4, pa0, 64);                                                                                       \
        _tile_dpbf16ps(0, 4, 6);                                                                                       \
        if (two_n) _tile_dpbf16ps(1, 4, 7);                                                                            \
        _tile_loadd(5, pa1, 64);                                                                                       \
        _tile_dpbf16ps(2, 5, 6);                                                                                       \
        if (two_n) _tile_dpbf16ps(3, 5, 7);                                                                            \
    } while (0)

/* One 32 × 32 block of C over ksteps 32-wide k steps. a0 / a1: the A tiles of the two 16-row blocks at the
 * first step (parts consecutive, steps parts·TILE_U16 apart); b0 (columns n0..+15) and b1 (n0+16..+31): the
 * B tiles of the first step, consecutive steps TILE_U32 apart. */
static inline __attribute__((always_inline)) void block32(c_ctx *c, int m0, int64_t n0, bool load, bool skip_c1,
                                                          const uint16_t *a0, const uint16_t *a1,
                                                          const uint32_t *b0, const uint32_t *b1, int ksteps,
                                                          const int parts) {
    const bool two_n = !skip_c1;
    C_LOAD_2X2(two_n);
    for (int s = 0; s < ksteps; s++) {
        _tile_loadd(6, b0 + s * TILE_U32, 64);
        if (two_n) _tile_loadd(7, b1 + s * TILE_U32, 64);
        for (int p = 0; p < parts; p++) DP_2X2(two_n, a0 + (s * parts + p) * TILE_U16, a1 + (s * parts + p) * TILE_U16);
    }
    C_STORE_2X2(two_n);
}
#endif
