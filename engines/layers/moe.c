/* Routed mixture of experts (contract in moe.h). */
#include "moe.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "../counters.h"
#include "../kernels/kernels.h"
#include "linear.h"

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; } /* keep every region 64-byte aligned */

/* Calls of at most this many rows (decodes) run every chosen expert in one parallel region of row tiles,
 * each tile a single-threaded cb_matmul on a row view; bigger calls (prefill chunks) run one GEMM per
 * expert, parallel inside. Small experts (H-Tiny's are 0.75-1.5 MB in fp8) would otherwise pay a
 * fork/join per projection per expert. Tiles: as few as give every thread about TILES_PER_THREAD of them,
 * at most TILE_MAX_ROWS rows each, their row counts multiples of TILE_ALIGN (a multiple of every GEMV's
 * row block, so each output element is computed as one whole-matrix call computes it, whatever the tiling).
 * Each tile costs a kernel call and a cold start of its weight stream: on one Zen 4 thread 256-row tiles
 * read 4 % slower than whole projections (docs/performance.md, "Granite 4.0-H: MoE decode on Zen 4"). */
#ifndef GROUPED_MAX_ROWS
#define GROUPED_MAX_ROWS 16
#endif
#define TILE_ALIGN 16
#define TILE_MAX_ROWS 1024
#define TILES_PER_THREAD 2

/* Rows of the gathered input / gate|up / output buffers: one expert's rows, or all slots of a grouped call. */
static size_t slot_rows(const cb_config *c, int n) {
    return n <= GROUPED_MAX_ROWS ? (size_t)n * (size_t)c->top_k : (size_t)n;
}

/* Scratch regions for n rows, in floats (int regions share the float size). */
typedef struct {
    float *logits;  /* [n, E] */
    float *gate;    /* [n, k] routing weights */
    int *idx;       /* [n, k] chosen experts */
    int *start;     /* [E + 1] first slot of each expert in member[] */
    int *member;    /* [n k] rows, grouped by expert, ascending rows within an expert */
    float *mgate;   /* [n k] their routing weights */
    float *xe, *h, *ye; /* gathered input [R, d], gate|up [R, 2 ff_e], output [R, d]; R = slot_rows() */
} moe_scratch;

static size_t layout(const cb_config *c, int n, float *base, moe_scratch *s) {
    const size_t E = (size_t)c->n_experts, k = (size_t)c->top_k, d = (size_t)c->d_model, f = (size_t)c->d_ff_expert;
    const size_t N = (size_t)n, R = slot_rows(c, n);
    const size_t sizes[9] = { N * E, N * k, N * k, E + 1, N * k, N * k, R * d, R * 2 * f, R * d };
    size_t off[9], o = 0;
    for (int i = 0; i < 9; i++) off[i] = o, o += pad16(sizes[i]);
    if (base) {
        s->logits = base + off[0];
        s->gate = base + off[1];
        s->idx = (int *)(void *)(base + off[2]);
        s->start = (int *)(void *)(base + off[3]);
        s->member = (int *)(void *)(base + off[4]);
        s->mgate = base + off[5];
        s->xe = base + off[6];
        s->h = base + off[7];
        s->ye = base + off[8];
    }
    return o;
}

size_t cb_moe_scratch_floats(const cb_config *cfg, int n) {
    return cfg->n_experts > 0 ? layout(cfg, n, NULL, NULL) : 0;
}

void cb_moe_expert(const cb_config *cfg, const cb_moe_weights *w, int e, cb_weight *gate_up, cb_weight *down) {
    const int64_t f = cfg->d_ff_expert, d = cfg->d_model;
    *gate_up = cb_weight_rows(&w->experts_in, (int64_t)e * 2 * f, 2 * f);
    *down = cb_weight_rows(&w->experts_out, (int64_t)e * d, d);
}

void cb_moe_route(int E, int k, const float *logits, int *idx, float *gate) {
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int i = 0; i < j && !taken; i++) taken = idx[i] == e;
            if (!taken && (best < 0 || logits[e] > logits[best])) best = e;
        }
        idx[j] = best;
    }
    float mx = logits[idx[0]], sum = 0.0f;
    for (int j = 0; j < k; j++) sum += gate[j] = expf(logits[idx[j]] - mx);
    for (int j = 0; j < k; j++) gate[j] /= sum;
}

/* Bucket the (row, choice) pairs by expert: counting sort, rows ascending inside each expert. */
static void group_by_expert(int E, int k, int n, const int *idx, const float *gate, int *start, int *member,
                            float *mgate) {
    memset(start, 0, sizeof(int) * (size_t)(E + 1));
    for (int i = 0; i < n * k; i++) start[idx[i] + 1]++;
    for (int e = 0; e < E; e++) start[e + 1] += start[e];
    int fill[E];
    memcpy(fill, start, sizeof(int) * (size_t)E);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < k; j++) {
            int slot = fill[idx[r * k + j]]++;
            member[slot] = r;
            mgate[slot] = gate[r * k + j];
        }
}

/* Expert e over its c rows: gather, gate|up in one GEMM (the two halves are adjacent rows of one weight),
 * silu(gate) * up, down, and the gate-weighted scatter into out. */
static void run_expert(const cb_config *c, const cb_moe_weights *w, cb_mode mode, int e, int cnt, const int *rows,
                       const float *g, const float *x, float *out, const moe_scratch *s) {
    const int d = c->d_model, f = c->d_ff_expert;
    cb_weight gu, down;
    cb_moe_expert(c, w, e, &gu, &down);
    for (int i = 0; i < cnt; i++) memcpy(s->xe + (size_t)i * d, x + (size_t)rows[i] * d, sizeof(float) * (size_t)d);
    cb_linear(mode, cnt, s->xe, d, &gu, NULL, s->h, 2 * f);
    for (int i = 0; i < cnt; i++) {
        float *hi = s->h + (size_t)i * 2 * f;
        cb_silu_mul(f, hi, hi + f, hi);
    }
    cb_linear(mode, cnt, s->h, 2 * f, &down, NULL, s->ye, d);
    for (int i = 0; i < cnt; i++) {
        float *o = out + (size_t)rows[i] * d;
        const float *y = s->ye + (size_t)i * d;
        for (int j = 0; j < d; j++) o[j] += g[i] * y[j];
    }
}

/* A work item of the grouped path: rows [r0, r0 + nr) of expert e's projection. */
typedef struct { int e, r0, nr; } tile;

/* Rows per tile for a projection of `rows` rows in each of `used` experts, on `threads` threads. */
static int tile_rows(int rows, int used, int threads) {
    const int64_t want = ((int64_t)rows * used / (TILES_PER_THREAD * threads) + TILE_ALIGN - 1) / TILE_ALIGN * TILE_ALIGN;
    return (int)CB_MAX(TILE_ALIGN, CB_MIN(TILE_MAX_ROWS, want));
}

/* The tiles of one projection of every used expert: each projection in at most ceil(rows / tr) tiles of
 * nearly equal height (multiples of TILE_ALIGN, the last one takes the rest). */
static int make_tiles(const int *start, int E, int rows, int tr, tile *t) {
    const int per = (rows + tr - 1) / tr;
    const int h = CB_MIN(rows, ((rows + per - 1) / per + TILE_ALIGN - 1) / TILE_ALIGN * TILE_ALIGN);
    int n = 0;
    for (int e = 0; e < E; e++)
        if (start[e + 1] > start[e])
            for (int r0 = 0; r0 < rows; r0 += h) t[n++] = (tile){ e, r0, CB_MIN(h, rows - r0) };
    return n;
}

/* Every chosen expert at once (n <= GROUPED_MAX_ROWS), in one parallel region: the gate|up tiles, silu * up
 * per slot, the down tiles (a barrier between the phases, no fork/join), then the gate-weighted sum per row in
 * ascending expert order. The tiles' GEMMs run on the calling thread (the kernels do not nest a team inside a
 * region), each output element computed exactly as one whole-matrix call computes it. */
static void tile_product(const cb_config *c, const cb_moe_weights *w, cb_mode mode, const tile *t, bool down,
                         const moe_scratch *s) {
    const int d = c->d_model, f = c->d_ff_expert;
    cb_weight gu, dn;
    cb_moe_expert(c, w, t->e, &gu, &dn);
    const cb_weight v = cb_weight_rows(down ? &dn : &gu, t->r0, t->nr);
    const int s0 = s->start[t->e], cnt = s->start[t->e + 1] - s0;
    if (down) cb_linear_product(mode, cnt, s->h + (size_t)s0 * 2 * f, 2 * f, &v, s->ye + (size_t)s0 * d + t->r0, d);
    else cb_linear_product(mode, cnt, s->xe + (size_t)s0 * d, d, &v, s->h + (size_t)s0 * 2 * f + t->r0, 2 * f);
}

static void run_grouped(const cb_config *c, const cb_moe_weights *w, cb_mode mode, int n, const float *x, float *out,
                        const moe_scratch *s) {
    const int E = c->n_experts, d = c->d_model, f = c->d_ff_expert, slots = n * c->top_k;
    for (int i = 0; i < slots; i++) memcpy(s->xe + (size_t)i * d, x + (size_t)s->member[i] * d, sizeof(float) * (size_t)d);
    int used = 0;
    for (int e = 0; e < E; e++) used += s->start[e + 1] > s->start[e];
    const int T = omp_get_max_threads(), trg = tile_rows(2 * f, used, T), trd = tile_rows(d, used, T);
    tile tgu[used * ((2 * f + trg - 1) / trg)], tdn[used * ((d + trd - 1) / trd)];
    const int ngu = make_tiles(s->start, E, 2 * f, trg, tgu), ndn = make_tiles(s->start, E, d, trd, tdn);
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < ngu; i++) tile_product(c, w, mode, &tgu[i], false, s);
#pragma omp for schedule(static)
        for (int i = 0; i < slots; i++) {
            float *hi = s->h + (size_t)i * 2 * f;
            cb_silu_mul(f, hi, hi + f, hi);
        }
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < ndn; i++) tile_product(c, w, mode, &tdn[i], true, s);
    }
    for (int e = 0; e < E; e++) {
        const int cnt = s->start[e + 1] - s->start[e];
        if (!cnt) continue;
        for (int i = s->start[e]; i < s->start[e + 1]; i++) {
            float *o = out + (size_t)s->member[i] * d;
            const float *y = s->ye + (size_t)i * d;
            for (int j = 0; j < d; j++) o[j] += s->mgate[i] * y[j];
        }
        cb_weight gu, down;
        cb_moe_expert(c, w, e, &gu, &down);
        cb_linear_count(cnt, &gu, NULL);
        cb_linear_count(cnt, &down, NULL);
    }
}

void cb_moe_forward(const cb_config *cfg, const cb_moe_weights *w, cb_mode mode, int n, const float *x, float *out,
                    float *scratch) {
    const int E = cfg->n_experts, k = cfg->top_k, d = cfg->d_model;
    if (E == 0 || n < 1) return;
    moe_scratch s = { 0 }; /* layout() fills it; zeroed so -O3 sees no uninitialised read */
    layout(cfg, n, scratch, &s);
    long long t = cb_ctr_ns();
    cb_linear(CB_MODE_EXACT, n, x, d, &w->router, NULL, s.logits, E); /* exact in either mode: docs/engines.md */
    for (int r = 0; r < n; r++) cb_moe_route(E, k, s.logits + (size_t)r * E, s.idx + (size_t)r * k, s.gate + (size_t)r * k);
    group_by_expert(E, k, n, s.idx, s.gate, s.start, s.member, s.mgate);
    cb_prof_lap(&t, CB_PROF_ROUTER);
    if (n <= GROUPED_MAX_ROWS) run_grouped(cfg, w, mode, n, x, out, &s);
    else
        for (int e = 0; e < E; e++) {
            int cnt = s.start[e + 1] - s.start[e];
            if (cnt > 0) run_expert(cfg, w, mode, e, cnt, s.member + s.start[e], s.mgate + s.start[e], x, out, &s);
        }
    cb_prof_lap(&t, CB_PROF_EXPERTS);
}
