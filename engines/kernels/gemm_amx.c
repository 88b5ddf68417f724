/* AMX GEMM: Y[M, N] (+)= X[M, K] · Wᵀ for bf16 weights W [N, K], on the tile unit (TDPBF16PS: 16 × 16 fp32
 * accumulators += 16 × 32 bf16 · 32 × 16 bf16, products exact, fp32 sums). See docs/performance.md "AMX".
 *
 * Operands. A = the activations, converted once per call into bf16 tiles (rows padded to 32, K to 32; shared
 * by all threads and reused across N). Exact mode splits each fp32 x into bf16 parts, hi = bf16(x),
 * mid = bf16(x − hi), lo = bf16(x − hi − mid), which together carry all 24 bits of x, and accumulates one tile
 * product per part against the exact bf16 weights: the numbers are the AVX-512 exact kernel's up to fp32
 * summation order. CTXBENCH_AMX_SPLIT=2 drops lo (~2⁻¹⁷ relative per product, a third fewer products). Fast
 * mode uses hi alone (its contract: activations rounded to bf16). B = W in the tile layout of kernels/tiles.h:
 * the weight's tile copy (W->tiles, made once by the engine) when it has one, else packed per call, per
 * thread, per NC × KC block (a 16 × 16 transpose of 32-bit words).
 *
 * Blocking. Threads form a grid over N and M (thread_grid). Each thread runs 32 × 32 register blocks
 * (2 × 2 C tiles, 2 A + 2 B tiles) over its slice in K blocks; C tiles live in Y between K blocks (loaded
 * and stored in place: exact in fp32, so the K blocking does not change a bit). Edge tiles go through a
 * 16 × 16 scratch tile.
 *
 * Determinism: the K order (32-wide steps, parts in order) does not depend on the thread split or the
 * blocking, nor on whether the weight has a tile copy. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../counters.h"
#include "kernels_amx.h"
#include "amx_internal.h"
#include "tiles.h"
#include "thread_scratch.h"

/* Blocking (docs/performance.md "AMX", "Tuning" and "on the 2-core AMX VM"): K in blocks of KC = 1024, so
 * the C tiles of a 32 × 32 block are loaded and stored once per 1024 k (smaller blocks, which keep A in L1,
 * measured slower: the C traffic cost more; 4096 measured slower at K ≥ 1792, where a slice's B panel no
 * longer fits L2), N in slices of NC = 256. CTXBENCH_AMX_TUNE="kc,nc,order" overrides them for tuning
 * runs (order 0: K blocks outside the row blocks; 1: row blocks outside, C of a row block in L2 across K,
 * needs the weights' tile copy; 2: as 0 with column pairs outside the row blocks). */
typedef struct {
    int kc, nc, order;
} blocking;
static blocking tune(void) {
    static blocking b; /* kc == 0: not read yet */
    if (!b.kc) {
        blocking t = { 1024, 256, 0 };
        const char *e = getenv("CTXBENCH_AMX_TUNE");
        int kc, nc, order;
        if (e && sscanf(e, "%d,%d,%d", &kc, &nc, &order) == 3 && kc >= 32 && kc % 32 == 0 && nc >= 32 &&
            nc % 32 == 0 && order >= 0 && order <= 2)
            t = (blocking){ kc, nc, order };
        b = t;
    }
    return b;
}
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

/* ---- weights: 16 rows × 32 k of bf16 W -> one B tile (row r = pairs k+2r, k+2r+1 of the 16 rows) ---- */
static void pack_tile(const uint16_t *W, int64_t K, int64_t N, int64_t n0, int64_t k0, uint32_t *dst) {
    int64_t left = K - k0;
    __mmask32 mk = left >= 32 ? 0xffffffffu : left <= 0 ? 0 : (__mmask32)((1u << left) - 1);
    __m512i r[16];
    for (int i = 0; i < 16; i++)
        r[i] = n0 + i < N ? _mm512_maskz_loadu_epi16(mk, W + (n0 + i) * K + k0) : _mm512_setzero_si512();
    transpose16_u32(r);
    for (int c = 0; c < 16; c++) _mm512_store_si512(dst + c * 16, r[c]);
}

/* Block [n0, n0 + nc) × [k0, k0 + kc) of a weight without a tile copy: tile (g, s) at dst + (g·kc/32 + s)·TILE_U32,
 * the layout of kernels/tiles.h restricted to the block. */
static void pack_block(const cb_weight *W, int64_t n0, int nc, int64_t k0, int kc, uint32_t *dst) {
    for (int g = 0; g < nc / 16; g++)
        for (int s = 0; s < kc / 32; s++)
            pack_tile(W->data, W->cols, W->rows, n0 + 16 * g, k0 + 32 * s, dst + (g * (kc / 32) + s) * TILE_U32);
}


typedef struct {
    const cb_weight *W;
    uint16_t *act; /* A tiles, Mp / 16 row blocks × S steps × parts */
    int M, Mp, parts;
    int64_t S;     /* k steps: Kp / 32 */
    float *Y;
    int64_t ldy;
    bool accumulate;
    blocking bl;
} gemm_job;

/* The 32 × 32 blocks of rows [m0, m0 + 32) × the column groups [0, ncp / 16) of a slice starting at jc, over the
 * k steps [s0, s0 + ks); B tile (g, s) of the slice at b + g·gstride + s·TILE_U32. */
static void row_block(const gemm_job *j, c_ctx *c, int m0, int64_t jc, int ncp, int64_t s0, int ks, bool load,
                      const uint32_t *b, size_t gstride) {
    const size_t ablock = (size_t)j->S * (size_t)j->parts * TILE_U16; /* one 16-row block, all steps */
    const uint16_t *a0 = j->act + (size_t)(m0 / 16) * ablock + (size_t)s0 * (size_t)j->parts * TILE_U16,
                   *a1 = a0 + ablock;
    for (int g = 0; g < ncp / 16; g += 2) {
        int64_t n0 = jc + 16 * g;
        bool one = g + 1 >= ncp / 16; /* a last lone 16-column group */
        const uint32_t *b0 = b + (size_t)g * gstride, *b1 = b0 + gstride;
        switch (j->parts) {
        case 1: block32(c, m0, n0, load, one, a0, a1, b0, b1, ks, 1); break;
        case 2: block32(c, m0, n0, load, one, a0, a1, b0, b1, ks, 2); break;
        default: block32(c, m0, n0, load, one, a0, a1, b0, b1, ks, 3); break;
        }
    }
}

/* Rows [ma, mb) × columns [na, nb) of C (ma, mb multiples of 32; na a multiple of 32). pack: a thread's
 * NC × KC buffer, used when the weight has no tile copy. */
static void gemm_slice(const gemm_job *j, uint32_t *pack, int ma, int mb, int64_t na, int64_t nb) {
    const int64_t N = j->W->rows;
    const uint32_t *pre = j->W->tiles;
    const size_t pre_g = (size_t)j->S * TILE_U32;
    c_ctx c __attribute__((aligned(64)));
    c.Y = j->Y;
    c.ldy = j->ldy;
    c.M = j->M;
    c.N = (int)N;
    const int KCs = j->bl.kc / 32;
    for (int64_t jc = na; jc < nb; jc += j->bl.nc) {
        int nc = (int)CB_MIN((int64_t)j->bl.nc, nb - jc);
        int ncp = (nc + 15) & ~15;
        if (pre && j->bl.order == 1) { /* C of the row block stays in L2 across the K blocks */
            for (int m0 = ma; m0 < mb; m0 += 32)
                for (int64_t s0 = 0; s0 < j->S; s0 += KCs) {
                    int ks = (int)CB_MIN((int64_t)KCs, j->S - s0);
                    row_block(j, &c, m0, jc, ncp, s0, ks, j->accumulate || s0 > 0,
                              pre + (size_t)(jc / 16) * pre_g + (size_t)s0 * TILE_U32, pre_g);
                }
            continue;
        }
        for (int64_t s0 = 0; s0 < j->S; s0 += KCs) {
            int ks = (int)CB_MIN((int64_t)KCs, j->S - s0);
            const uint32_t *b = pack;
            size_t gs = (size_t)ks * TILE_U32;
            if (pre) b = pre + (size_t)(jc / 16) * pre_g + (size_t)s0 * TILE_U32, gs = pre_g;
            else pack_block(j->W, jc, ncp, 32 * s0, 32 * ks, pack);
            if (j->bl.order == 2) /* column pairs outermost: a B pair stays in L1 while the row blocks pass */
                for (int g = 0; g < ncp / 16; g += 2)
                    for (int m0 = ma; m0 < mb; m0 += 32)
                        row_block(j, &c, m0, jc + 16 * g, CB_MIN(ncp - 16 * g, 32), s0, ks, j->accumulate || s0 > 0,
                                  b + (size_t)g * gs, gs);
            else
                for (int m0 = ma; m0 < mb; m0 += 32)
                    row_block(j, &c, m0, jc, ncp, s0, ks, j->accumulate || s0 > 0, b, gs);
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

static _Thread_local cb_tscratch t_pack;

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

static _Thread_local cb_tscratch t_act;

static uint16_t *act_buffer(size_t elems) { return cb_tscratch_get(&t_act, elems * 2); }

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

/* nw weights of the same K on one X: the split once, shared by all of them (q/k/v, gate/up), and one
 * parallel region in which each thread takes its slice of every weight in turn (no join between them:
 * the outputs are disjoint). Each weight's slices and K order are those of a call of its own, so the
 * results are bit-identical to nw separate calls. */
static void gemm_amx_n(int M, const float *X, int64_t ldx, int nw, const cb_weight *const *W, float *const *Y,
                       const int64_t *ldy, bool accumulate, bool exact) {
    if (M <= 0 || nw <= 0) return;
    const int64_t K = W[0]->cols;
    if (K <= 0) {
        if (!accumulate)
            for (int i = 0; i < nw; i++)
                for (int m = 0; m < M; m++) memset(Y[i] + m * ldy[i], 0, (size_t)W[i]->rows * sizeof(float));
        return;
    }
    const int Mp = (M + 31) & ~31;
    const int64_t S = (K + 31) / 32;
    const int parts = exact ? exact_parts() : 1;
    uint16_t *act = act_buffer((size_t)Mp * (size_t)S * 32 * (size_t)parts);
    if (!act) { /* out of memory: the portable twin */
        for (int i = 0; i < nw; i++) {
            if (exact) cb_matmul_ref(M, X, ldx, W[i], Y[i], ldy[i], accumulate);
            else cb_matmul_bf16_ref(M, X, ldx, W[i], Y[i], ldy[i], accumulate);
        }
        return;
    }
    const bool top = !omp_in_parallel(); /* the profile's timers are the calling thread's */
    long long t_split = top ? cb_ctr_ns() : 0;
    split_rows(M, X, ldx, K, Mp, S, parts, act);
    if (top) cb_prof_lap(&t_split, CB_PROF_SPLIT);
    const int mblocks = Mp / 32;
    const blocking bl = tune();
    double work = 0;
    bool any_untiled = false;
    for (int i = 0; i < nw; i++) work += (double)M * (double)W[i]->rows * (double)K, any_untiled |= !W[i]->tiles;
    const size_t pack_bytes = (size_t)bl.nc * (size_t)bl.kc * 2;
#pragma omp parallel if (work > 4e6)
    {
        const int T = omp_get_num_threads(), t = omp_get_thread_num();
        uint32_t *pack = any_untiled ? cb_tscratch_get(&t_pack, pack_bytes) : t_pack.p;
        bool on = false;
        for (int i = 0; i < nw; i++) {
            const int64_t N = W[i]->rows, ngroups = (N + 31) / 32;
            if (N <= 0) continue;
            gemm_job j = { .W = W[i], .act = act, .M = M, .Mp = Mp, .parts = parts, .S = S, .Y = Y[i],
                           .ldy = ldy[i], .accumulate = accumulate, .bl = bl };
            int tn, tm;
            thread_grid(T, ngroups, mblocks, &tn, &tm);
            const int ti = t % tn, tj = t / tn;
            if (tj >= tm) continue;
            int64_t na = ngroups * ti / tn * 32, nb = CB_MIN(N, ngroups * (ti + 1) / tn * 32);
            int ma = mblocks * tj / tm * 32, mb = mblocks * (tj + 1) / tm * 32;
            if (na >= nb || ma >= mb) continue;
            if (!W[i]->tiles && !pack) {
                slice_fallback(&j, X, ldx, ma, mb, na, nb);
                continue;
            }
            if (!on) tiles_on(), on = true;
            gemm_slice(&j, pack, ma, mb, na, nb);
        }
        if (on) _tile_release();
    }
}

static void gemm_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate,
                     bool exact) {
    gemm_amx_n(M, X, ldx, 1, &W, &Y, &ldy, accumulate, exact);
}

void cb_matmul_amx_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                         const int64_t *ldy) {
    gemm_amx_n(M, X, ldx, n, W, Y, ldy, false, true);
}
void cb_matmul_bf16_amx_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                              const int64_t *ldy) {
    gemm_amx_n(M, X, ldx, n, W, Y, ldy, false, false);
}

void cb_matmul_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    gemm_amx(M, X, ldx, W, Y, ldy, accumulate, true);
}
void cb_matmul_bf16_amx(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                        bool accumulate) {
    gemm_amx(M, X, ldx, W, Y, ldy, accumulate, false);
}
