/* The whole Mamba2 mixer with random weights: against a naive double-precision implementation of
 * docs/engines.md ("The Mamba2 mixer, exactly"), and its invariances (prefill split, prefill+decode, batching, threads, chunk size), plus
 * memory plan == allocation to the byte (Bamba-9B shapes included). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../engines/layers/mamba2_mixer.h"
#include "../engines/layers/mlp.h"

typedef struct {
    cb_config cfg;
    cb_mamba_weights w;
    float *buf[10];
} mixer_model;

static cb_weight randw(float **keep, int64_t rows, int64_t cols, float scale, float offset, cb_rng *r) {
    float *d = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) d[i] = offset + scale * cb_rng_uniform(r);
    *keep = d;
    return (cb_weight){ .data = d, .dtype = CB_F32, .rows = rows, .cols = cols, .scale = NULL };
}

static void make_model(mixer_model *m, int d, int H, int P, int N, int G, int K, int chunk, bool bias, uint64_t seed) {
    memset(m, 0, sizeof *m);
    cb_config *c = &m->cfg;
    c->model_type = CB_MT_MAMBA2;
    c->d_model = d;
    c->eps = 1e-5;
    c->m_heads = H; c->m_head_dim = P; c->m_state = N; c->m_groups = G; c->m_conv = K; c->m_chunk = chunk;
    c->m_d_inner = H * P;
    c->m_conv_dim = H * P + 2 * G * N;
    c->m_in_proj_rows = 2 * H * P + 2 * G * N + H;
    c->m_proj_bias = bias;
    c->m_conv_bias = true;
    c->m_dt_min = 0.001;
    c->m_dt_max = 2.0;
    cb_rng r = { seed };
    m->w.in_proj = randw(&m->buf[0], c->m_in_proj_rows, d, 1.0f / sqrtf((float)d), 0, &r);
    m->w.conv_w = randw(&m->buf[1], c->m_conv_dim, K, 0.5f, 0, &r);
    m->w.conv_b = randw(&m->buf[2], 1, c->m_conv_dim, 0.1f, 0, &r);
    m->w.dt_bias = randw(&m->buf[3], 1, H, 1.0f, -1.0f, &r);
    m->w.A_log = randw(&m->buf[4], 1, H, 1.5f, 0.5f, &r);
    m->w.D = randw(&m->buf[5], 1, H, 1.0f, 0, &r);
    m->w.norm = randw(&m->buf[6], 1, c->m_d_inner, 0.2f, 1.0f, &r);
    m->w.out_proj = randw(&m->buf[7], d, c->m_d_inner, 1.0f / sqrtf((float)c->m_d_inner), 0, &r);
    if (bias) {
        m->w.in_proj_b = randw(&m->buf[8], 1, c->m_in_proj_rows, 0.1f, 0, &r);
        m->w.out_proj_b = randw(&m->buf[9], 1, d, 0.1f, 0, &r);
    }
}

static void free_model(mixer_model *m) {
    for (int i = 0; i < 10; i++) free(m->buf[i]);
}

static float *rand_input(int T, int d, uint64_t seed) {
    cb_rng r = { seed };
    float *x = malloc(sizeof(float) * (size_t)T * d);
    for (size_t i = 0; i < (size_t)T * d; i++) x[i] = cb_rng_uniform(&r);
    return x;
}

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

/* The mixer of docs/engines.md token by token in double. out [T, d]. */
static void naive_mixer(const mixer_model *m, int T, const float *x, double *out) {
    const cb_config *c = &m->cfg;
    const int d = c->d_model, H = c->m_heads, P = c->m_head_dim, N = c->m_state, G = c->m_groups, K = c->m_conv;
    const int Di = c->m_d_inner, Cd = c->m_conv_dim, R = c->m_in_proj_rows;
    const float *Win = m->w.in_proj.data, *Wout = m->w.out_proj.data, *cw = m->w.conv_w.data, *cb = m->w.conv_b.data;
    const float *dtb = m->w.dt_bias.data, *Al = m->w.A_log.data, *Dv = m->w.D.data, *nw = m->w.norm.data;
    double *zx = calloc((size_t)T * R, sizeof(double)), *S = calloc((size_t)H * P * N, sizeof(double));
    double *xbc = calloc((size_t)Cd, sizeof(double)), *y = calloc((size_t)Di, sizeof(double));
    for (int t = 0; t < T; t++)
        for (int o = 0; o < R; o++) {
            double a = c->m_proj_bias ? ((const float *)m->w.in_proj_b.data)[o] : 0;
            for (int i = 0; i < d; i++) a += (double)Win[(size_t)o * d + i] * x[(size_t)t * d + i];
            zx[(size_t)t * R + o] = a;
        }
    for (int t = 0; t < T; t++) {
        for (int ch = 0; ch < Cd; ch++) {
            double a = cb[ch];
            for (int k = 0; k < K; k++) {
                int tt = t - (K - 1) + k;
                if (tt >= 0) a += (double)cw[(size_t)ch * K + k] * zx[(size_t)tt * R + Di + ch];
            }
            xbc[ch] = a * sigm(a);
        }
        for (int h = 0; h < H; h++) {
            int g = h / (H / G);
            double v = zx[(size_t)t * R + Di + Cd + h] + dtb[h];
            double dt = v > 20 ? v : log1p(exp(v));
            dt = fmin(fmax(dt, c->m_dt_min), c->m_dt_max);
            double e = exp(-dt * exp(Al[h]));
            const double *B = xbc + Di + (size_t)g * N, *C = xbc + Di + (size_t)G * N + (size_t)g * N;
            for (int p = 0; p < P; p++) {
                double *s = S + ((size_t)h * P + p) * N, xv = xbc[h * P + p], acc = 0;
                for (int n = 0; n < N; n++) {
                    s[n] = e * s[n] + dt * xv * B[n];
                    acc += s[n] * C[n];
                }
                y[h * P + p] = acc + Dv[h] * xv;
            }
        }
        double ss = 0;
        for (int i = 0; i < Di; i++) {
            double z = zx[(size_t)t * R + i];
            y[i] *= z * sigm(z);
            ss += y[i] * y[i];
        }
        double inv = 1.0 / sqrt(ss / Di + c->eps);
        for (int i = 0; i < Di; i++) y[i] *= inv * nw[i];
        for (int o = 0; o < d; o++) {
            double a = c->m_proj_bias ? ((const float *)m->w.out_proj_b.data)[o] : 0;
            for (int i = 0; i < Di; i++) a += (double)Wout[(size_t)o * Di + i] * y[i];
            out[(size_t)t * d + o] = a;
        }
    }
    free(zx); free(S); free(xbc); free(y);
}

static cb_mamba_layer *create(const mixer_model *m, int max_batch, int ssd_chunk, cb_dtype sd, cb_mode mode) {
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.threads = 2;
    o.max_batch = max_batch;
    o.prefill_chunk = 64;
    o.ssd_chunk = ssd_chunk;
    o.state_dtype = sd;
    o.mode = mode;
    cb_mamba_layer *l = NULL;
    cb_err err = { "" };
    cr_assert_eq(cb_mamba_create(&m->cfg, &m->w, &o, &l, &err), 0, "%s", err.msg);
    return l;
}

/* prefill tokens [0, k) in calls of `split`, then decode the rest one at a time (k may be T). */
static void run_seq(cb_mamba_layer *l, int seq, const mixer_model *m, int T, const float *x, int k, int split,
                    float *out) {
    int d = m->cfg.d_model;
    for (int t0 = 0; t0 < k; t0 += split) {
        int n = CB_MIN(split, k - t0);
        cb_mamba_prefill(l, seq, x + (size_t)t0 * d, n, out + (size_t)t0 * d);
    }
    for (int t = k; t < T; t++) cb_mamba_decode(l, 1, &seq, x + (size_t)t * d, out + (size_t)t * d);
}

static double rel_err(const float *a, const double *ref, size_t n) {
    double scale = 0, e = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - ref[i]));
    return e / scale;
}
static double rel_err_f(const float *a, const float *b, size_t n) {
    double scale = 0, e = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e / scale;
}

#define T_LEN 100

Test(mamba2_mixer, matches_naive_for_every_prefill_decode_split) {
    /* one thread: the thread count is covered by its own test, and tiny parallel regions on a busy
     * 2-core machine cost more than the work */
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const struct { int G; bool bias; } models[] = { { 1, false }, { 2, true }, { 4, true } };
    for (int mi = 0; mi < 3; mi++) {
        mixer_model m;
        make_model(&m, 32, 4, 8, 16, models[mi].G, 4, 16, models[mi].bias, 100 + mi);
        int d = m.cfg.d_model;
        float *x = rand_input(T_LEN, d, 7), *out = malloc(sizeof(float) * T_LEN * d);
        double *ref = malloc(sizeof(double) * T_LEN * d);
        naive_mixer(&m, T_LEN, x, ref);
        const int ks[] = { 0, 1, 16, 17, T_LEN }, chunks[] = { 1, 8, 16, 64, 256 };
        const cb_kpath paths[] = { CB_PATH_PORTABLE, cb_kernels_best_path() };
        for (int pi = 0; pi < 2; pi++) {
            cb_kernels_set_path(paths[pi]);
            for (int ki = 0; ki < 5; ki++)
                for (int ci = 0; ci < 5; ci++) {
                    if (pi == 0 && (ki % 2 || ci % 2)) continue; /* portable: a subset (it is slow) */
                    cb_mamba_layer *l = create(&m, 1, chunks[ci], CB_F32, CB_MODE_EXACT);
                    run_seq(l, 0, &m, T_LEN, x, ks[ki], 64, out);
                    double e = rel_err(out, ref, (size_t)T_LEN * d);
                    cr_expect(e <= 1e-4, "%s G=%d bias=%d prefill %d + decode, ssd chunk %d: rel err %.3g",
                              cb_kpath_name(paths[pi]), models[mi].G, models[mi].bias, ks[ki], chunks[ci], e);
                    cb_mamba_destroy(l);
                }
        }
        cb_kernels_set_path(cb_kernels_best_path());
        free(x); free(out); free(ref);
        free_model(&m);
    }
    omp_set_num_threads(saved);
}

Test(mamba2_mixer, split_prefill_equals_one_call_and_any_conv_kernel) {
    const int Ks[] = { 1, 2, 4, 5 };
    for (int ki = 0; ki < 4; ki++) {
        mixer_model m;
        make_model(&m, 32, 4, 8, 16, 2, Ks[ki], 16, true, 200 + ki);
        int d = m.cfg.d_model;
        float *x = rand_input(T_LEN, d, 9), *a = malloc(sizeof(float) * T_LEN * d), *b = malloc(sizeof(float) * T_LEN * d);
        double *ref = malloc(sizeof(double) * T_LEN * d);
        naive_mixer(&m, T_LEN, x, ref);
        cb_mamba_layer *l = create(&m, 1, 16, CB_F32, CB_MODE_EXACT);
        run_seq(l, 0, &m, T_LEN, x, 64, 64, a);
        run_seq(l, 0, &m, 0, x, 0, 1, a); /* nothing */
        cb_mamba_reset(l, -1);
        run_seq(l, 0, &m, 64, x, 64, 64, a); /* one call of 64 */
        cb_mamba_reset(l, 0);
        /* the same 64 tokens in calls of 7 (at depth, partial chunks), then the rest in calls of 13 */
        run_seq(l, 0, &m, 64, x, 64, 7, b);
        run_seq(l, 0, &m, 0, x, 0, 1, b);
        cr_expect(rel_err_f(b, a, (size_t)64 * d) <= 1e-5, "K=%d: split prefill differs: %.3g", Ks[ki],
                  rel_err_f(b, a, (size_t)64 * d));
        for (int t0 = 64; t0 < T_LEN; t0 += 13) {
            int n = CB_MIN(13, T_LEN - t0);
            cb_mamba_prefill(l, 0, x + (size_t)t0 * d, n, b + (size_t)t0 * d);
        }
        cr_expect(rel_err(b, ref, (size_t)T_LEN * d) <= 1e-4, "K=%d: chunked prefill at depth vs naive: %.3g", Ks[ki],
                  rel_err(b, ref, (size_t)T_LEN * d));
        cb_mamba_destroy(l);
        free(x); free(a); free(b); free(ref);
        free_model(&m);
    }
}

Test(mamba2_mixer, batch_of_three_equals_alone) {
    mixer_model m;
    make_model(&m, 32, 4, 8, 16, 2, 4, 16, true, 300);
    int d = m.cfg.d_model;
    const int pre[3] = { 5, 40, 17 };
    float *x[3], *alone[3], *batched[3];
    for (int s = 0; s < 3; s++) {
        x[s] = rand_input(T_LEN, d, 400 + s);
        alone[s] = malloc(sizeof(float) * T_LEN * d);
        batched[s] = malloc(sizeof(float) * T_LEN * d);
        cb_mamba_layer *l = create(&m, 1, 16, CB_F32, CB_MODE_EXACT);
        run_seq(l, 0, &m, pre[s] + 30, x[s], pre[s], 64, alone[s]);
        cb_mamba_destroy(l);
    }
    cb_mamba_layer *l = create(&m, 3, 16, CB_F32, CB_MODE_EXACT);
    const int order[3] = { 2, 0, 1 }; /* slots in a different order than the batch rows */
    for (int s = 0; s < 3; s++) run_seq(l, order[s], &m, pre[s], x[s], pre[s], 64, batched[s]);
    float *xin = malloc(sizeof(float) * 3 * d), *o = malloc(sizeof(float) * 3 * d);
    for (int step = 0; step < 30; step++) {
        for (int s = 0; s < 3; s++) memcpy(xin + s * d, x[s] + (size_t)(pre[s] + step) * d, sizeof(float) * d);
        cb_mamba_decode(l, 3, order, xin, o);
        for (int s = 0; s < 3; s++) memcpy(batched[s] + (size_t)(pre[s] + step) * d, o + s * d, sizeof(float) * d);
    }
    for (int s = 0; s < 3; s++) {
        double e = rel_err_f(batched[s], alone[s], (size_t)(pre[s] + 30) * d);
        cr_expect(e <= 1e-6, "sequence %d: batched vs alone %.3g", s, e);
    }
    cb_mamba_destroy(l);
    for (int s = 0; s < 3; s++) { free(x[s]); free(alone[s]); free(batched[s]); }
    free(xin); free(o);
    free_model(&m);
}

Test(mamba2_mixer, one_and_two_threads_agree) {
    mixer_model m;
    make_model(&m, 64, 8, 16, 32, 2, 4, 16, true, 500);
    int d = m.cfg.d_model;
    float *x = rand_input(T_LEN, d, 11), *a = malloc(sizeof(float) * T_LEN * d), *b = malloc(sizeof(float) * T_LEN * d);
    int saved = omp_get_max_threads();
    cb_mamba_layer *l = create(&m, 1, 16, CB_F32, CB_MODE_EXACT);
    omp_set_num_threads(1);
    run_seq(l, 0, &m, T_LEN, x, 70, 64, a);
    cb_mamba_reset(l, 0);
    omp_set_num_threads(2);
    run_seq(l, 0, &m, T_LEN, x, 70, 64, b);
    omp_set_num_threads(saved);
    cr_expect(rel_err_f(a, b, (size_t)T_LEN * d) <= 1e-6, "1 vs 2 threads: %.3g", rel_err_f(a, b, (size_t)T_LEN * d));
    cb_mamba_destroy(l);
    free(x); free(a); free(b);
    free_model(&m);
}

Test(mamba2_mixer, state_dtypes_and_fast_mode_stay_close) {
    mixer_model m;
    make_model(&m, 32, 4, 8, 16, 2, 4, 16, true, 600);
    int d = m.cfg.d_model;
    float *x = rand_input(T_LEN, d, 13), *out = malloc(sizeof(float) * T_LEN * d);
    double *ref = malloc(sizeof(double) * T_LEN * d);
    naive_mixer(&m, T_LEN, x, ref);
    const cb_dtype sds[] = { CB_BF16, CB_F16 };
    for (int i = 0; i < 2; i++) {
        cb_mamba_layer *l = create(&m, 1, 16, sds[i], CB_MODE_EXACT);
        run_seq(l, 0, &m, T_LEN, x, 30, 7, out); /* conv state stored between calls, rounded */
        double e = rel_err(out, ref, (size_t)T_LEN * d);
        cr_expect(e <= 3e-2 && e > 0, "conv state %s: rel err %.3g", cb_dtype_name(sds[i]), e);
        cb_mamba_destroy(l);
    }
    cb_mamba_layer *l = create(&m, 1, 16, CB_F32, CB_MODE_FAST);
    run_seq(l, 0, &m, T_LEN, x, 50, 64, out);
    double e = rel_err(out, ref, (size_t)T_LEN * d);
    cr_expect(e <= 3e-2, "fast mode: rel err %.3g", e);
    cb_mamba_destroy(l);
    free(x); free(out); free(ref);
    free_model(&m);
}

Test(mamba2_mixer, plan_equals_memory_to_the_byte) {
    mixer_model m;
    make_model(&m, 32, 4, 8, 16, 2, 4, 16, true, 700);
    const cb_dtype sds[] = { CB_F32, CB_BF16, CB_F16 };
    for (int i = 0; i < 3; i++)
        for (int batch = 1; batch <= 4; batch += 3) {
            cb_engine_opts o;
            cb_engine_opts_default(&o);
            o.threads = 2;
            o.max_batch = batch;
            o.state_dtype = sds[i];
            cb_mamba_layer *l = NULL;
            cb_err err = { "" };
            cr_assert_eq(cb_mamba_create(&m.cfg, &m.w, &o, &l, &err), 0, "%s", err.msg);
            size_t a[3], p[3];
            cb_mamba_memory(l, &a[0], &a[1], &a[2]);
            cb_mamba_plan(&m.cfg, &o, batch, &p[0], &p[1], &p[2]);
            cr_expect(a[0] == p[0] && a[1] == p[1] && a[2] == p[2], "plan != memory (%zu %zu %zu vs %zu %zu %zu)",
                      p[0], p[1], p[2], a[0], a[1], a[2]);
            cr_expect_eq(a[0], (size_t)batch * 4 * 8 * 16 * 4);
            cr_expect_eq(a[1], (size_t)batch * (32 + 2 * 2 * 16) * 3 * cb_dtype_size(sds[i]));
            cb_rng r = { 1 };
            cb_mamba_fill_synthetic(l, batch - 1, 1 << 20, &r);
            cb_mamba_destroy(l);
        }
    free_model(&m);

    /* Bamba-9B mixer shapes (per layer; the stack multiplies by its 29 Mamba layers). No weights needed. */
    cb_config c = { 0 };
    c.d_model = 4096;
    c.m_heads = 128; c.m_head_dim = 64; c.m_state = 128; c.m_groups = 1; c.m_conv = 4; c.m_chunk = 256;
    c.m_d_inner = 8192; c.m_conv_dim = 8192 + 2 * 128; c.m_in_proj_rows = 2 * 8192 + 2 * 128 + 128;
    for (int i = 0; i < 3; i++) {
        cb_engine_opts o;
        cb_engine_opts_default(&o);
        o.state_dtype = sds[i];
        size_t ssm, conv, sc, sc_ctx;
        cb_mamba_plan(&c, &o, 1, &ssm, &conv, &sc);
        cr_expect_eq(29 * ssm, (size_t)29 * 128 * 64 * 128 * 4);
        cr_expect_eq(29 * conv, (size_t)29 * (8192 + 2 * 128) * 3 * cb_dtype_size(sds[i]));
        o.max_context = 1 << 20; /* scratch does not depend on the context */
        cb_mamba_plan(&c, &o, 1, NULL, NULL, &sc_ctx);
        cr_expect_eq(sc, sc_ctx);
    }
}

/* ---- The real fixture (tests/fixtures/mamba2-tiny, HF transformers fp32): each layer's mixer on the
 * reference residual stream, hidden_states[i+1] = hidden_states[i] + Mixer(RMSNorm(hidden_states[i])).
 * A minimal safetensors reader (F32/I32 only) keeps this test independent of the model loader. */
typedef struct {
    char *buf;
    json_t *hdr;
    size_t base;
} st_file;

static void st_read(st_file *s, const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s->buf = malloc((size_t)n);
    cr_assert_eq(fread(s->buf, 1, (size_t)n, f), (size_t)n, "short read of %s", path);
    fclose(f);
    uint64_t hl;
    memcpy(&hl, s->buf, 8);
    json_error_t e;
    s->hdr = json_loadb(s->buf + 8, hl, 0, &e);
    cr_assert(s->hdr, "%s: bad header: %s", path, e.text);
    s->base = 8 + hl;
}

static const void *st_tensor(st_file *s, const char *name) {
    json_t *t = json_object_get(s->hdr, name);
    cr_assert(t, "tensor %s missing", name);
    return s->buf + s->base + json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
}

typedef struct {
    const char *dir, *layer_prefix, *mixer, *in_norm; /* tensor naming of the model type */
    cb_dtype dtype;
    int n_layers, T, mamba_layers[4], n_mamba;
    bool mlp; /* bamba: x += MLP(RMSNorm_pre_ff(x)) after the mixer */
} fixture;

static cb_weight st_weight(st_file *s, const fixture *fx, int layer, const char *what, int64_t rows, int64_t cols) {
    char name[160];
    snprintf(name, sizeof name, "%s.%d.%s", fx->layer_prefix, layer, what);
    return (cb_weight){ .data = st_tensor(s, name), .dtype = fx->dtype, .rows = rows, .cols = cols, .scale = NULL };
}

static void check_fixture(const fixture *fx, const cb_config *cfg) {
    char path[256];
    st_file m, r;
    snprintf(path, sizeof path, "%s/model.safetensors", fx->dir);
    st_read(&m, path);
    snprintf(path, sizeof path, "%s/reference.safetensors", fx->dir);
    st_read(&r, path);
    const cb_config c = *cfg;
    const int d = c.d_model, T = fx->T;
    const float *hs = st_tensor(&r, "hidden_states");
    float *h = malloc(sizeof(float) * T * d), *y = malloc(sizeof(float) * T * d), *x1 = malloc(sizeof(float) * T * d);
    float *mlp_scratch = fx->mlp ? malloc(sizeof(float) * cb_mlp_scratch_floats(&c, T)) : NULL;
    const int prefills[] = { 1, 17, 100, T }, chunks[] = { 8, 16, 256 };
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int li = 0; li < fx->n_mamba; li++) {
        int i = fx->mamba_layers[li];
        char mx[64];
        cb_mamba_weights w = { 0 };
#define MW(field, what, rows, cols) \
    snprintf(mx, sizeof mx, "%s.%s", fx->mixer, what); \
    w.field = st_weight(&m, fx, i, mx, rows, cols)
        MW(in_proj, "in_proj.weight", c.m_in_proj_rows, d);
        MW(conv_w, "conv1d.weight", c.m_conv_dim, c.m_conv);
        MW(conv_b, "conv1d.bias", 1, c.m_conv_dim);
        MW(dt_bias, "dt_bias", 1, c.m_heads);
        MW(A_log, "A_log", 1, c.m_heads);
        MW(D, "D", 1, c.m_heads);
        MW(norm, "norm.weight", 1, c.m_d_inner);
        MW(out_proj, "out_proj.weight", d, c.m_d_inner);
#undef MW
        cb_weight norm = st_weight(&m, fx, i, fx->in_norm, 1, d);
        cb_mlp_weights mw = { 0 };
        cb_weight ffn = { 0 };
        if (fx->mlp) {
            mw.gate = st_weight(&m, fx, i, "feed_forward.gate_proj.weight", c.d_ff, d);
            mw.up = st_weight(&m, fx, i, "feed_forward.up_proj.weight", c.d_ff, d);
            mw.down = st_weight(&m, fx, i, "feed_forward.down_proj.weight", d, c.d_ff);
            ffn = st_weight(&m, fx, i, "pre_ff_layernorm.weight", 1, d);
        }
        const float *in = hs + (size_t)i * T * d, *want = hs + (size_t)(i + 1) * T * d;
        cb_rmsnorm(T, d, in, d, &norm, c.eps, h, d);
        for (int pi = 0; pi < 4; pi++)
            for (int ci = 0; ci < 3; ci++) {
                mixer_model mm = { .cfg = c, .w = w };
                cb_mamba_layer *l = create(&mm, 1, chunks[ci], CB_F32, CB_MODE_EXACT);
                run_seq(l, 0, &mm, T, h, prefills[pi], 64, y);
                for (size_t k = 0; k < (size_t)T * d; k++) x1[k] = in[k] + y[k];
                if (fx->mlp) {
                    cb_rmsnorm(T, d, x1, d, &ffn, c.eps, y, d);
                    cb_mlp_forward(&c, &mw, CB_MODE_EXACT, T, y, y, mlp_scratch);
                    for (size_t k = 0; k < (size_t)T * d; k++) x1[k] += y[k];
                }
                double e = 0;
                for (size_t k = 0; k < (size_t)T * d; k++) e = fmax(e, fabs(x1[k] - want[k]));
                cr_expect(e <= 1e-4, "%s layer %d, prefill %d + decode, ssd chunk %d: max abs %.3g", fx->dir, i,
                          prefills[pi], chunks[ci], e);
                cb_mamba_destroy(l);
            }
    }
    omp_set_num_threads(saved);
    free(h); free(y); free(x1); free(mlp_scratch);
    json_decref(m.hdr); json_decref(r.hdr);
    free(m.buf); free(r.buf);
}

static cb_config tiny_config(int groups, int heads, int head_dim, int state) {
    cb_config c = { 0 };
    c.d_model = 128; c.eps = 1e-5;
    c.m_heads = heads; c.m_head_dim = head_dim; c.m_state = state; c.m_groups = groups; c.m_conv = 4; c.m_chunk = 16;
    c.m_d_inner = heads * head_dim; c.m_conv_dim = c.m_d_inner + 2 * groups * state;
    c.m_in_proj_rows = c.m_d_inner + c.m_conv_dim + heads;
    c.m_conv_bias = true; c.m_dt_min = 0; c.m_dt_max = INFINITY;
    return c;
}

Test(mamba2_mixer, fixture_mamba2_tiny_layers_match_transformers) {
    /* f32, 3 layers, 8 heads x 32, state 16, groups 2, T 160 */
    cb_config c = tiny_config(2, 8, 32, 16);
    c.model_type = CB_MT_MAMBA2;
    fixture fx = { "tests/fixtures/mamba2-tiny", "backbone.layers", "mixer", "norm.weight", CB_F32, 3, 160,
                   { 0, 1, 2 }, 3, false };
    check_fixture(&fx, &c);
}

Test(mamba2_mixer, fixture_bamba_tiny_mamba_layers_match_transformers) {
    /* bf16 weights, Mamba layers 0 and 2 (attention at 1, 3), groups 1, SwiGLU MLP d_ff 320, T 160 */
    cb_config c = tiny_config(1, 8, 32, 16);
    c.model_type = CB_MT_BAMBA;
    c.has_mlp = true;
    c.d_ff = 320;
    fixture fx = { "tests/fixtures/bamba-tiny", "model.layers", "mamba", "input_layernorm.weight", CB_BF16, 4, 160,
                   { 0, 2 }, 2, true };
    check_fixture(&fx, &c);
}
