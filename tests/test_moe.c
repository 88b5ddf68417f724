/* The mixture-of-experts layer with random weights: against a scalar double-precision reference of
 * docs/engines.md "Mixture of experts" (top-k of the router logits, softmax over the k, gate-weighted SwiGLU
 * experts), its invariance to how rows are batched and to the thread count, the routing rule, and the
 * weight bytes it counts (router + only the experts some row chose). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/counters.h"
#include "../engines/kernels/gemm8.h"
#include "../engines/kernels/kernels.h"
#include "../engines/layers/linear.h"
#include "../engines/layers/moe.h"

typedef struct {
    cb_config cfg;
    cb_moe_weights w;
    uint16_t *buf[3];
} moe_model;

/* bf16 weights, as the checkpoints store them. */
static cb_weight randw(uint16_t **keep, int64_t rows, int64_t cols, float scale, cb_rng *r) {
    uint16_t *d = malloc(sizeof(uint16_t) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) d[i] = cb_f32_to_bf16(scale * cb_rng_uniform(r));
    *keep = d;
    return (cb_weight){ .data = d, .dtype = CB_BF16, .rows = rows, .cols = cols, .scale = NULL };
}

static void make_model(moe_model *m, int d, int E, int k, int f, uint64_t seed) {
    memset(m, 0, sizeof *m);
    cb_config *c = &m->cfg;
    c->model_type = CB_MT_GRANITE;
    c->d_model = d;
    c->n_experts = E;
    c->top_k = k;
    c->d_ff_expert = f;
    cb_rng r = { seed };
    m->w.router = randw(&m->buf[0], E, d, 1.0f, &r);
    m->w.experts_in = randw(&m->buf[1], (int64_t)E * 2 * f, d, 1.0f / sqrtf((float)d), &r);
    m->w.experts_out = randw(&m->buf[2], (int64_t)E * d, f, 1.0f / sqrtf((float)f), &r);
}

static void free_model(moe_model *m) {
    for (int i = 0; i < 3; i++) free(m->buf[i]);
}

static double wt(const cb_weight *w, int64_t r, int64_t c) { return cb_load_f32(w->data, w->dtype, (size_t)(r * w->cols + c)); }

/* The layer written out per row: every expert's SwiGLU in double, top-k by a full sort. */
static void reference(const moe_model *m, int n, const float *x, double *out) {
    const cb_config *c = &m->cfg;
    const int d = c->d_model, E = c->n_experts, k = c->top_k, f = c->d_ff_expert;
    double *logit = malloc(sizeof(double) * E), *h = malloc(sizeof(double) * f);
    int *order = malloc(sizeof(int) * E);
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        for (int e = 0; e < E; e++) {
            logit[e] = 0;
            for (int j = 0; j < d; j++) logit[e] += wt(&m->w.router, e, j) * xr[j];
            order[e] = e;
        }
        for (int a = 0; a < E; a++) /* selection sort, descending, stable */
            for (int b = a + 1; b < E; b++)
                if (logit[order[b]] > logit[order[a]]) { int t = order[a]; order[a] = order[b]; order[b] = t; }
        double z = 0;
        for (int j = 0; j < k; j++) z += exp(logit[order[j]] - logit[order[0]]);
        for (int j = 0; j < d; j++) out[(size_t)r * d + j] = 0;
        for (int j = 0; j < k; j++) {
            const int e = order[j];
            const double g = exp(logit[e] - logit[order[0]]) / z;
            for (int i = 0; i < f; i++) {
                double gate = 0, up = 0;
                for (int q = 0; q < d; q++) {
                    gate += wt(&m->w.experts_in, (int64_t)e * 2 * f + i, q) * xr[q];
                    up += wt(&m->w.experts_in, (int64_t)e * 2 * f + f + i, q) * xr[q];
                }
                h[i] = gate / (1 + exp(-gate)) * up;
            }
            for (int o = 0; o < d; o++) {
                double y = 0;
                for (int i = 0; i < f; i++) y += wt(&m->w.experts_out, (int64_t)e * d + o, i) * h[i];
                out[(size_t)r * d + o] += g * y;
            }
        }
    }
    free(logit), free(h), free(order);
}

static float *rand_rows(int n, int d, uint64_t seed) {
    cb_rng r = { seed };
    float *x = malloc(sizeof(float) * (size_t)n * d);
    for (int i = 0; i < n * d; i++) x[i] = cb_rng_uniform(&r);
    return x;
}

static void forward(const moe_model *m, cb_mode mode, int n, const float *x, float *out) {
    float *scratch = cb_alloc(cb_moe_scratch_floats(&m->cfg, n) * sizeof(float), NULL);
    cr_assert_not_null(scratch);
    memset(out, 0, sizeof(float) * (size_t)n * m->cfg.d_model);
    cb_moe_forward(&m->cfg, &m->w, mode, n, x, out, scratch);
    cb_free(scratch);
}

Test(moe, matches_scalar_reference) {
    const int shapes[3][4] = { { 48, 6, 2, 40 }, { 64, 4, 1, 96 }, { 32, 9, 9, 16 } }; /* d, E, k, ff */
    for (int s = 0; s < 3; s++) {
        moe_model m;
        make_model(&m, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 11 + s);
        const int n = s == 1 ? 5 : 37, d = m.cfg.d_model; /* 5: the grouped (decode-sized) path */
        float *x = rand_rows(n, d, 5 + s), *y = malloc(sizeof(float) * n * d);
        double *ref = malloc(sizeof(double) * n * d);
        forward(&m, CB_MODE_EXACT, n, x, y);
        reference(&m, n, x, ref);
        double mx = 0, scale = 0;
        for (int i = 0; i < n * d; i++) mx = fmax(mx, fabs(y[i] - ref[i])), scale = fmax(scale, fabs(ref[i]));
        cr_assert(scale > 0.05, "shape %d: outputs are degenerate (max %g)", s, scale);
        cr_assert(mx <= 2e-5 * scale, "shape %d: max |moe - reference| = %g (output scale %g)", s, mx, scale);
        free(x), free(y), free(ref);
        free_model(&m);
    }
}

/* A row's output may not depend on which other rows share its call, nor on the thread count. */
Test(moe, rows_and_threads_do_not_change_a_row) {
    moe_model m;
    make_model(&m, 64, 8, 3, 48, 3);
    const int n = 29, d = 64;
    float *x = rand_rows(n, d, 9), *all = malloc(sizeof(float) * n * d), *one = malloc(sizeof(float) * d);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    forward(&m, CB_MODE_EXACT, n, x, all);
    omp_set_num_threads(2);
    for (int r = 0; r < n; r++) {
        forward(&m, CB_MODE_EXACT, 1, x + (size_t)r * d, one);
        for (int j = 0; j < d; j++)
            cr_assert(fabsf(one[j] - all[(size_t)r * d + j]) <= 1e-6f * (1 + fabsf(one[j])),
                      "row %d col %d: alone %g, in a batch of %d %g", r, j, one[j], n, all[(size_t)r * d + j]);
    }
    omp_set_num_threads(saved);
    free(x), free(all), free(one);
    free_model(&m);
}

/* The experts' weights quantised per row to 8 bits (the buffers replace the bf16 ones in m->buf). */
static void quantize_experts(moe_model *m, cb_dtype to) {
    cb_weight *w[2] = { &m->w.experts_in, &m->w.experts_out };
    for (int i = 0; i < 2; i++) {
        uint8_t *q = malloc((size_t)(w[i]->rows * w[i]->cols));
        float *sc = malloc(sizeof(float) * (size_t)w[i]->rows);
        cb_err err = { "" };
        cr_assert_eq(cb_quantize_rows(w[i]->data, CB_BF16, w[i]->rows, w[i]->cols, to, q, sc, &err), 0, "%s", err.msg);
        free(m->buf[1 + i]);
        m->buf[1 + i] = (uint16_t *)(void *)q;
        w[i]->data = q, w[i]->dtype = to, w[i]->scale = sc;
    }
}

/* One token through whole-matrix calls per chosen expert, in ascending expert order: what the decode's row
 * tiles must reproduce bit for bit, however many tiles the thread count makes. */
static void one_token_per_expert(const moe_model *m, cb_mode mode, const float *x, float *out) {
    const cb_config *c = &m->cfg;
    const int d = c->d_model, E = c->n_experts, k = c->top_k, f = c->d_ff_expert;
    float *logits = malloc(sizeof(float) * E), *gate = malloc(sizeof(float) * k), *h = malloc(sizeof(float) * 2 * f),
          *y = malloc(sizeof(float) * d);
    int *idx = malloc(sizeof(int) * k);
    cb_linear(CB_MODE_EXACT, 1, x, d, &m->w.router, NULL, logits, E);
    cb_moe_route(E, k, logits, idx, gate);
    memset(out, 0, sizeof(float) * (size_t)d);
    for (int e = 0; e < E; e++)
        for (int j = 0; j < k; j++) {
            if (idx[j] != e) continue;
            cb_weight gu, dn;
            cb_moe_expert(c, &m->w, e, &gu, &dn);
            cb_linear(mode, 1, x, d, &gu, NULL, h, 2 * f);
            cb_silu_mul(f, h, h + f, h);
            cb_linear(mode, 1, h, 2 * f, &dn, NULL, y, d);
            for (int i = 0; i < d; i++) out[i] += gate[j] * y[i];
        }
    free(logits), free(gate), free(h), free(y), free(idx);
}

/* Decode splits the chosen experts' projections into row tiles sized from the thread count (none of a
 * multiple of 16 rows here: d = 100, 2 ff = 152, so the last tile is short). */
Test(moe, decode_tiles_bit_identical_to_whole_expert_calls) {
    const cb_dtype dts[3] = { CB_BF16, CB_F8_E4M3, CB_I8 };
    const int threads[4] = { 1, 2, 3, 7 };
    int saved = omp_get_max_threads();
    for (int di = 0; di < 3; di++)
        for (int mi = 0; mi < 2; mi++) {
            const cb_mode mode = mi ? CB_MODE_FAST : CB_MODE_EXACT;
            moe_model m;
            make_model(&m, 100, 12, 4, 76, 21 + di);
            if (dts[di] != CB_BF16) quantize_experts(&m, dts[di]);
            const int d = m.cfg.d_model;
            float *x = rand_rows(3, d, 4 + di), *want = malloc(sizeof(float) * d), *got = malloc(sizeof(float) * d);
            for (int r = 0; r < 3; r++) {
                omp_set_num_threads(1);
                one_token_per_expert(&m, mode, x + (size_t)r * d, want);
                for (int t = 0; t < 4; t++) {
                    omp_set_num_threads(threads[t]);
                    forward(&m, mode, 1, x + (size_t)r * d, got);
                    for (int j = 0; j < d; j++)
                        cr_assert(memcmp(&got[j], &want[j], sizeof(float)) == 0,
                                  "%s %s, token %d, %d threads, col %d: tiles %.9g, whole experts %.9g",
                                  cb_dtype_name(dts[di]), mi ? "fast" : "exact", r, threads[t], j, got[j], want[j]);
                }
            }
            omp_set_num_threads(saved);
            free(x), free(want), free(got);
            if (dts[di] != CB_BF16) free((void *)m.w.experts_in.scale), free((void *)m.w.experts_out.scale);
            free_model(&m);
        }
}

Test(moe, route_picks_top_k_and_softmaxes_them) {
    const float logits[6] = { 0.5f, 2.0f, -1.0f, 2.0f, 1.0f, -3.0f };
    int idx[3];
    float g[3];
    cb_moe_route(6, 3, logits, idx, g);
    cr_assert(idx[0] == 1 && idx[1] == 3 && idx[2] == 4, "chosen %d %d %d (ties go to the lower index)", idx[0], idx[1],
              idx[2]);
    double z = 2 * exp(2.0) + exp(1.0);
    cr_assert_float_eq(g[0], exp(2.0) / z, 1e-6);
    cr_assert_float_eq(g[1], exp(2.0) / z, 1e-6);
    cr_assert_float_eq(g[2], exp(1.0) / z, 1e-6);
}

/* Decode reads the router and its k experts; a batch reads each chosen expert once. */
Test(moe, counts_only_the_experts_read) {
    moe_model m;
    make_model(&m, 32, 16, 2, 24, 7);
    const int d = 32, f = 24, E = 16, k = 2;
    const long long router = (long long)E * d * 2, expert = 3LL * f * d * 2; /* bf16 bytes */
    float *x = rand_rows(4, d, 1), *y = malloc(sizeof(float) * 4 * d);
    cb_ctr.weight_bytes = 0;
    forward(&m, CB_MODE_EXACT, 1, x, y);
    cr_assert_eq(cb_ctr.weight_bytes, router + k * expert, "one token: %lld bytes, expected router + %d experts = %lld",
                 cb_ctr.weight_bytes, k, router + k * expert);
    /* four rows: count the distinct experts their routing chose */
    float logits[16];
    bool used[16] = { false };
    int distinct = 0;
    for (int r = 0; r < 4; r++) {
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (int j = 0; j < d; j++) s += wt(&m.w.router, e, j) * x[r * d + j];
            logits[e] = (float)s;
        }
        int idx[2];
        float g[2];
        cb_moe_route(E, k, logits, idx, g);
        for (int j = 0; j < k; j++) if (!used[idx[j]]) used[idx[j]] = true, distinct++;
    }
    cb_ctr.weight_bytes = 0;
    forward(&m, CB_MODE_EXACT, 4, x, y);
    cr_assert_eq(cb_ctr.weight_bytes, router + distinct * expert, "four tokens: %lld bytes, expected router + %d experts",
                 cb_ctr.weight_bytes, distinct);
    cr_assert(distinct < E, "the test needs rows that leave some experts unread");
    free(x), free(y);
    free_model(&m);
}
