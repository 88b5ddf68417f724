/* AMX GEMM: Y[M, N] (+)= X[M, K] · Wᵀ for bf16 weights W [N, K], on the tile unit (TDPBF16PS: 16 × 16 fp32
 * accumulators += 16 × 32 bf16 · 32 × 16 bf16, products exact, fp32 sums). See docs/performance.md "AMX".
 *
 * Operands. A = the activations, converted once per call to bf16 rows padded to 32 rows × 32 columns
 * (shared by all threads, loaded straight into tiles). Exact mode splits each fp32 x into bf16 parts,
 * hi = bf16(x), mid = bf16(x − hi), lo = bf16(x − hi − mid), which together carry all 24 bits of x, and
 * accumulates one tile product per part against the exact bf16 weights: the numbers are the AVX-512 exact
 * kernel's up to fp32 summation order. CTXBENCH_AMX_SPLIT=2 drops lo (~2⁻¹⁷ relative per product, a third
 * fewer products). Fast mode uses hi alone (its contract: activations rounded to bf16). B = W, packed into
 * the tile layout (pairs of bf16 along K: a tile row holds k, k+1 of 16 output columns): a 16 × 16
 * transpose of 32-bit words.
 *
 * Blocking. Threads form a grid over N and M (thread_grid). Each thread packs its N slice in
 * NC × KC blocks (NC × KC × 2 bytes: L2), then runs 32 × 32 register blocks (2 × 2 C tiles, 2 A + 2 B tiles)
 * over all M rows; C tiles live in Y between K blocks (loaded and stored in place). Edge tiles go through
 * a 16 × 16 scratch tile.
 *
 * Determinism: the K order (KC blocks, 32-wide steps, parts in order) does not depend on the thread split. */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_amx.h"

#define KC 512 /* K per packed block (multiple of 32) */
#define NC 256 /* N per packed block (multiple of 32) */
#define KSTEPS (KC / 32)
#define TILE_U32 256 /* one packed B tile: 16 rows × 16 pairs */

static int amx_min_m; /* 0: not read yet */
int cb_matmul_amx_min_m(int m) {
    if (m > 0) amx_min_m = m;
    if (amx_min_m == 0) {
        const char *e = getenv("CTXBENCH_AMX_MIN_M"); /* tests and benches move the crossover */
        amx_min_m = e && atoi(e) > 0 ? atoi(e) : CB_AMX_MIN_M_DEFAULT;
    }
    return amx_min_m;
}

bool cb_matmul_amx_supports(const cb_weight *W) { return W->dtype == CB_BF16; }

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Every tile 16 rows × 64 bytes: 0-3 C (fp32), 4-5 A (bf16 rows), 6-7 B (bf16 pairs). */
static void tiles_on(void) {
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    _tile_loadconfig(&c);
}

/* ---- activations: fp32 rows -> bf16 part rows, Mp rows, zero padded ---- */
static inline __m512i bf16_of(__m512 v) { /* RNE, 16 values in the low halves of 32-bit lanes */
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
}

/* parts = 1: hi = bf16(x) (fast mode); 2: + lo = bf16(x − hi); 3: + a third term, so hi + mid + lo carries
 * all 24 bits of x (each remainder is exact in fp32). Row pitch lda elements (Kp plus a skew, see below). */
static void split_rows(int M, const float *X, int64_t ldx, int64_t K, int Mp, int64_t lda, int parts,
                       uint16_t *const part[3]) {
#pragma omp parallel for schedule(static) if ((double)M * (double)K > 1e5)
    for (int m = 0; m < Mp; m++)
        for (int64_t k = 0; k < lda; k += 16) {
            int64_t left = m < M ? K - k : 0;
            __mmask16 mk = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
            __m512 r = _mm512_maskz_loadu_ps(mk, X + (int64_t)(m < M ? m : 0) * ldx + k);
            for (int p = 0; p < parts; p++) {
                __m512i b = bf16_of(r);
                _mm256_storeu_si256((__m256i *)(part[p] + (int64_t)m * lda + k), _mm512_cvtepi32_epi16(b));
                __m512 bf = _mm512_castsi512_ps(_mm512_slli_epi32(b, 16));
                /* r == its bf16 (inf included) leaves no remainder; elsewhere r − bf16(r) is exact */
                r = _mm512_maskz_sub_ps(_mm512_cmp_ps_mask(r, bf, _CMP_NEQ_UQ), r, bf);
            }
        }
}

/* ---- weights: 16 rows × 32 k of bf16 W -> one B tile (row r = pairs k+2r, k+2r+1 of the 16 rows) ---- */
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

static void pack_tile(const uint16_t *W, int64_t K, int64_t N, int64_t n0, int64_t k0, uint32_t *dst) {
    int64_t left = K - k0;
    __mmask32 mk = left >= 32 ? 0xffffffffu : left <= 0 ? 0 : (__mmask32)((1u << left) - 1);
    __m512i r[16];
    for (int i = 0; i < 16; i++)
        r[i] = n0 + i < N ? _mm512_maskz_loadu_epi16(mk, W + (n0 + i) * K + k0) : _mm512_setzero_si512();
    transpose16_u32(r);
    for (int c = 0; c < 16; c++) _mm512_store_si512(dst + c * 16, r[c]);
}

/* Block [n0, n0 + nc) × [k0, k0 + kc): tile (g, s) at dst + (g·KSTEPS + s)·TILE_U32. */
static void pack_block(const cb_weight *W, int64_t n0, int nc, int64_t k0, int kc, uint32_t *dst) {
    for (int g = 0; g < nc / 16; g++)
        for (int s = 0; s < kc / 32; s++)
            pack_tile(W->data, W->cols, W->rows, n0 + 16 * g, k0 + 32 * s, dst + (g * KSTEPS + s) * TILE_U32);
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
static void c_stage(c_ctx *c, int t, int m0, int64_t n0, bool load) {
    float *s = c->scratch[t];
    memset(s, 0, sizeof c->scratch[t]);
    if (!load) return;
    for (int i = 0; i < 16 && m0 + i < c->M; i++)
        for (int j = 0; j < 16 && n0 + j < c->N; j++) s[i * 16 + j] = c->Y[(int64_t)(m0 + i) * c->ldy + n0 + j];
}
static void c_unstage(c_ctx *c, int t, int m0, int64_t n0) {
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

/* One 32 × 32 block of C over ksteps 32-wide k steps. A rows of each part at (m0, k0) with row pitch lda
 * bytes; B tiles b0 (columns n0..+15) and b1 (n0+16..+31), consecutive k steps TILE_U32 apart. */
static inline __attribute__((always_inline)) void block32(c_ctx *c, int m0, int64_t n0, bool load, bool skip_c1,
                                                          const uint16_t *const a[3], int64_t lda,
                                                          const uint32_t *b0, const uint32_t *b1, int ksteps,
                                                          const int parts) {
    const bool two_n = !skip_c1;
    C_LOAD(0, 0, 0);
    C_LOAD(2, 1, 0);
    if (two_n) {
        C_LOAD(1, 0, 1);
        C_LOAD(3, 1, 1);
    }
    const int64_t a16 = 16 * lda / 2; /* 16 rows further, in bf16 elements */
    for (int s = 0; s < ksteps; s++) {
        _tile_loadd(6, b0 + s * TILE_U32, 64);
        if (two_n) _tile_loadd(7, b1 + s * TILE_U32, 64);
        for (int p = 0; p < parts; p++) {
            _tile_loadd(4, a[p] + 32 * s, lda);
            _tile_dpbf16ps(0, 4, 6);
            if (two_n) _tile_dpbf16ps(1, 4, 7);
            _tile_loadd(5, a[p] + a16 + 32 * s, lda);
            _tile_dpbf16ps(2, 5, 6);
            if (two_n) _tile_dpbf16ps(3, 5, 7);
        }
    }
    C_STORE(0, 0, 0);
    C_STORE(2, 1, 0);
    if (two_n) {
        C_STORE(1, 0, 1);
        C_STORE(3, 1, 1);
    }
}

typedef struct {
    const cb_weight *W;
    uint16_t *part[3]; /* Mp rows of lda bf16 each */
    int M, Mp, parts;
    int64_t Kp, lda;
    float *Y;
    int64_t ldy;
    bool accumulate;
} gemm_job;

/* Rows [ma, mb) × columns [na, nb) of C (ma, mb multiples of 32; na a multiple of 32). */
static void gemm_slice(const gemm_job *j, uint32_t *pack, int ma, int mb, int64_t na, int64_t nb) {
    const int64_t K = j->W->cols, N = j->W->rows;
    c_ctx c __attribute__((aligned(64)));
    c.Y = j->Y;
    c.ldy = j->ldy;
    c.M = j->M;
    c.N = (int)N;
    const int64_t lda = j->lda * 2;
    for (int64_t jc = na; jc < nb; jc += NC) {
        int nc = (int)CB_MIN((int64_t)NC, nb - jc);
        int ncp = (nc + 15) & ~15;
        for (int64_t pc = 0; pc < K; pc += KC) {
            int kc = (int)CB_MIN((int64_t)KC, j->Kp - pc); /* multiple of 32: Kp is */
            pack_block(j->W, jc, ncp, pc, kc, pack);
            bool load = j->accumulate || pc > 0;
            for (int m0 = ma; m0 < mb; m0 += 32) {
                const uint16_t *a[3];
                for (int p = 0; p < 3; p++) a[p] = p < j->parts ? j->part[p] + (int64_t)m0 * j->lda + pc : NULL;
                for (int g = 0; g < ncp / 16; g += 2) {
                    int64_t n0 = jc + 16 * g;
                    bool one = g + 1 >= ncp / 16; /* a last lone 16-column group */
                    const uint32_t *b0 = pack + g * KSTEPS * TILE_U32, *b1 = b0 + KSTEPS * TILE_U32;
                    switch (j->parts) {
                    case 1: block32(&c, m0, n0, load, one, a, lda, b0, b1, kc / 32, 1); break;
                    case 2: block32(&c, m0, n0, load, one, a, lda, b0, b1, kc / 32, 2); break;
                    default: block32(&c, m0, n0, load, one, a, lda, b0, b1, kc / 32, 3); break;
                    }
                }
            }
        }
    }
}

/* The same slice on the AVX-512 kernels (a thread that could not get its pack buffer). */
static void slice_fallback(const gemm_job *j, const float *X, int64_t ldx, int ma, int mb, int64_t na, int64_t nb) {
    cb_weight sub = *j->W;
    sub.data = (const uint16_t *)j->W->data + na * j->W->cols;
    sub.rows = nb - na;
    int rows = CB_MIN(mb, j->M) - ma;
    if (rows <= 0) return;
    float *y = j->Y + (int64_t)ma * j->ldy + na;
    if (j->parts > 1) cb_matmul_ref(rows, X + (int64_t)ma * ldx, ldx, &sub, y, j->ldy, j->accumulate);
    else cb_matmul_bf16_ref(rows, X + (int64_t)ma * ldx, ldx, &sub, y, j->ldy, j->accumulate);
}

static _Thread_local uint32_t *t_pack;

/* Threads as a tn × tm grid over (32-column groups, 32-row blocks): least work on the busiest thread first,
 * then least operand traffic (each thread reads its rows of A and its columns of W once per K block). */
static void thread_grid(int T, int64_t ngroups, int mblocks, int *tn, int *tm) {
    double best_work = 1e300, best_traffic = 1e300;
    *tn = 1, *tm = 1;
    for (int n = 1; n <= T; n++) {
        int m = T / n;
        if (n > ngroups || m < 1) continue;
        if (m > mblocks) m = mblocks;
        double gn = (double)((ngroups + n - 1) / n), bm = (double)((mblocks + m - 1) / m);
        double work = gn * bm, traffic = gn + bm;
        if (work < best_work || (work == best_work && traffic < best_traffic))
            best_work = work, best_traffic = traffic, *tn = n, *tm = m;
    }
}

static _Thread_local uint16_t *t_act;
static _Thread_local size_t t_act_cap;

static bool act_buffers(size_t elems, int parts, uint16_t *part[3]) {
    size_t bytes = elems * 2 * (size_t)parts;
    if (bytes > t_act_cap) {
        free(t_act);
        t_act = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        t_act_cap = t_act ? bytes : 0;
    }
    for (int p = 0; p < 3; p++) part[p] = t_act && p < parts ? t_act + elems * (size_t)p : NULL;
    return t_act != NULL;
}

/* Exact mode's split: 3 parts by default (x to fp32 precision: the AVX-512 kernel's numbers up to
 * summation order); CTXBENCH_AMX_SPLIT=2 trades ~2⁻¹⁷ relative per product for a third fewer tile products. */
static int split_parts;
int cb_matmul_amx_split(int parts) {
    if (parts == 2 || parts == 3) split_parts = parts;
    if (!split_parts) {
        const char *e = getenv("CTXBENCH_AMX_SPLIT");
        split_parts = e && atoi(e) == 2 ? 2 : 3;
    }
    return split_parts;
}
static int exact_parts(void) { return cb_matmul_amx_split(0); }

static void gemm_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate,
                     bool exact) {
    const int64_t N = W->rows, K = W->cols;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int m = 0; m < M; m++) memset(Y + m * ldy, 0, (size_t)N * sizeof(float));
        return;
    }
    const int Mp = (M + 31) & ~31;
    const int64_t Kp = (K + 31) & ~(int64_t)31;
    /* rows one cache line longer than Kp: the 16 rows of an A tile never share an L1 set at power-of-two K */
    const int64_t lda = Kp + 32;
    gemm_job j = { .W = W, .M = M, .Mp = Mp, .parts = exact ? exact_parts() : 1, .Kp = Kp, .lda = lda, .Y = Y,
                   .ldy = ldy, .accumulate = accumulate };
    if (!act_buffers((size_t)Mp * (size_t)lda, j.parts, j.part)) { /* out of memory: the portable twin */
        if (exact) cb_matmul_ref(M, X, ldx, W, Y, ldy, accumulate);
        else cb_matmul_bf16_ref(M, X, ldx, W, Y, ldy, accumulate);
        return;
    }
    split_rows(M, X, ldx, K, Mp, lda, j.parts, j.part);
    const int64_t ngroups = (N + 31) / 32;
    const int mblocks = Mp / 32;
    const double work = (double)M * (double)N * (double)K;
#pragma omp parallel if (work > 4e6)
    {
        const int T = omp_get_num_threads(), t = omp_get_thread_num();
        int tn, tm;
        thread_grid(T, ngroups, mblocks, &tn, &tm);
        const int ti = t % tn, tj = t / tn;
        if (tj < tm) {
            int64_t na = ngroups * ti / tn * 32, nb = CB_MIN(N, ngroups * (ti + 1) / tn * 32);
            int ma = mblocks * tj / tm * 32, mb = mblocks * (tj + 1) / tm * 32;
            if (!t_pack) t_pack = aligned_alloc(64, (size_t)NC * KC * 2);
            if (na < nb && ma < mb) {
                if (!t_pack) slice_fallback(&j, X, ldx, ma, mb, na, nb);
                else {
                    tiles_on();
                    gemm_slice(&j, t_pack, ma, mb, na, nb);
                    _tile_release();
                }
            }
        }
    }
}

void cb_matmul_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    gemm_amx(M, X, ldx, W, Y, ldy, accumulate, true);
}
void cb_matmul_bf16_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                        bool accumulate) {
    gemm_amx(M, X, ldx, W, Y, ldy, accumulate, false);
}
