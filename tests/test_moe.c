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
#include "../engines/kernels/kernels.h"
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
