/* Mamba2 mixer (docs/engines.md, "The Mamba2 mixer, exactly"): in_proj → causal conv1d + silu → SSD (chunked for prefill, recurrence for
 * decode) → gated RMSNorm over all of d_inner → out_proj. Per-sequence state: SSM [H, P, N] fp32 and
 * conv [conv_dim, K−1] in opts.state_dtype. Scratch comes from the shared arena (scratch.h). */
#include "mamba2_mixer.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "../counters.h"
#include "../kernels/kernels.h"
#include "../kernels/ssd.h"
#include "linear.h"
#include "scratch.h"

struct cb_mamba_layer {
    const cb_config *cfg;
    cb_mamba_weights w;
    cb_mode mode;
    cb_dtype state_dtype;
    int max_batch, rows, chunk, nthr;
    float *ssm;        /* [max_batch, H, P, N] */
    void *conv;        /* [max_batch, conv_dim, K-1] in state_dtype */
    size_t ssm_bytes, conv_bytes, scratch_bytes;
    float A[]; /* [H] = −exp(A_log); dt_bias and D are read through the weights */
};

typedef struct {
    int rows, chunk, nthr;
} mixer_shape;

static mixer_shape shape_of(const cb_config *cfg, const cb_engine_opts *o) {
    mixer_shape s;
    s.rows = CB_MAX(o->prefill_chunk, o->max_batch);
    if (s.rows < 1) s.rows = 1;
    s.chunk = o->ssd_chunk > 0 ? o->ssd_chunk : (cfg->m_chunk > 0 ? cfg->m_chunk : 256);
    s.nthr = o->threads > 0 ? o->threads : omp_get_max_threads();
    if (s.nthr < 1) s.nthr = 1;
    return s;
}

static int ssd_q(const mixer_shape *s) { return CB_MIN(s->chunk, s->rows); }
static size_t cb_floats(const mixer_shape *s) {
    size_t q = (size_t)ssd_q(s), nch = ((size_t)s->rows + q - 1) / q;
    return nch * q * q;
}

/* Scratch floats: zxbcdt [rows, in_rows], xBC after conv [rows, conv_dim], dt [rows, H], y [rows, d_in],
 * conv state widened to f32 [conv_dim, K−1] (one sequence at a time), C·Bᵀ per group and chunk (shared
 * by the group's heads), SSD workspace per thread. */
static size_t scratch_floats(const cb_config *c, const mixer_shape *s) {
    size_t r = (size_t)s->rows;
    return r * c->m_in_proj_rows + r * c->m_conv_dim + r * c->m_heads + r * c->m_d_inner +
           (size_t)c->m_conv_dim * (c->m_conv > 1 ? c->m_conv - 1 : 0) + (size_t)c->m_groups * cb_floats(s) +
           (size_t)s->nthr * cb_ssd_workspace_floats(ssd_q(s), c->m_head_dim, c->m_state);
}

static size_t ssm_bytes_per_seq(const cb_config *c) {
    return (size_t)c->m_heads * c->m_head_dim * c->m_state * sizeof(float);
}
static size_t conv_elems_per_seq(const cb_config *c) {
    return (size_t)c->m_conv_dim * (c->m_conv > 1 ? c->m_conv - 1 : 0);
}

void cb_mamba_plan(const cb_config *cfg, const cb_engine_opts *o, int batch, size_t *ssm_bytes, size_t *conv_bytes,
                   size_t *scratch_bytes) {
    cb_engine_opts ob = *o;
    ob.max_batch = batch;
    mixer_shape s = shape_of(cfg, &ob);
    if (ssm_bytes) *ssm_bytes = cb_bytes_mul((size_t)batch, ssm_bytes_per_seq(cfg));
    if (conv_bytes) *conv_bytes = cb_bytes_mul((size_t)batch, conv_elems_per_seq(cfg) * cb_dtype_size(o->state_dtype));
    if (scratch_bytes) *scratch_bytes = scratch_floats(cfg, &s) * sizeof(float);
}

static float wload(const cb_weight *w, int64_t i) { return cb_load_f32(w->data, w->dtype, (size_t)i); }

int cb_mamba_create(const cb_config *cfg, const cb_mamba_weights *w, const cb_engine_opts *o, cb_mamba_layer **out,
                    cb_err *err) {
    *out = NULL;
    const int H = cfg->m_heads;
    if (H <= 0 || cfg->m_head_dim <= 0 || cfg->m_state <= 0 || cfg->m_groups <= 0 || H % cfg->m_groups ||
        cfg->m_conv < 1 || cfg->m_d_inner != H * cfg->m_head_dim ||
        cfg->m_conv_dim != cfg->m_d_inner + 2 * cfg->m_groups * cfg->m_state ||
        cfg->m_in_proj_rows != cfg->m_d_inner + cfg->m_conv_dim + H) {
        cb_err_set(err, "mamba2 mixer: inconsistent config (heads %d, head_dim %d, state %d, groups %d, conv %d, "
                        "d_inner %d, conv_dim %d, in_proj rows %d)",
                   H, cfg->m_head_dim, cfg->m_state, cfg->m_groups, cfg->m_conv, cfg->m_d_inner, cfg->m_conv_dim,
                   cfg->m_in_proj_rows);
        return -1;
    }
    if (w->in_proj.rows != cfg->m_in_proj_rows || w->in_proj.cols != cfg->d_model || w->out_proj.rows != cfg->d_model ||
        w->out_proj.cols != cfg->m_d_inner || w->conv_w.rows != cfg->m_conv_dim || w->conv_w.cols != cfg->m_conv) {
        cb_err_set(err, "mamba2 mixer: weight shapes: in_proj [%lld, %lld] (expected [%d, %d]), out_proj [%lld, %lld] "
                        "(expected [%d, %d]), conv1d [%lld, %lld] (expected [%d, %d])",
                   (long long)w->in_proj.rows, (long long)w->in_proj.cols, cfg->m_in_proj_rows, cfg->d_model,
                   (long long)w->out_proj.rows, (long long)w->out_proj.cols, cfg->d_model, cfg->m_d_inner,
                   (long long)w->conv_w.rows, (long long)w->conv_w.cols, cfg->m_conv_dim, cfg->m_conv);
        return -1;
    }
    if (o->state_dtype != CB_F32 && o->state_dtype != CB_BF16 && o->state_dtype != CB_F16) {
        cb_err_set(err, "mamba2 mixer: state dtype %s not supported (f32, bf16, f16)", cb_dtype_name(o->state_dtype));
        return -1;
    }
    cb_mamba_layer *l = cb_calloc(sizeof *l + (size_t)H * sizeof(float), err);
    if (!l) return -1;
    mixer_shape s = shape_of(cfg, o);
    l->cfg = cfg;
    l->w = *w;
    l->mode = o->mode;
    l->state_dtype = o->state_dtype;
    l->max_batch = o->max_batch;
    l->rows = s.rows;
    l->chunk = s.chunk;
    l->nthr = s.nthr;
    for (int h = 0; h < H; h++) l->A[h] = -expf(wload(&w->A_log, h));
    cb_mamba_plan(cfg, o, o->max_batch, &l->ssm_bytes, &l->conv_bytes, &l->scratch_bytes);
    l->ssm = cb_calloc_in(CB_ALLOC_SSM, l->ssm_bytes, err);
    l->conv = l->conv_bytes ? cb_calloc_in(CB_ALLOC_CONV, l->conv_bytes, err) : NULL;
    if (!l->ssm || (l->conv_bytes && !l->conv) || cb_scratch_reserve(l->scratch_bytes, err)) {
        cb_free(l->ssm);
        cb_free(l->conv);
        cb_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void cb_mamba_destroy(cb_mamba_layer *l) {
    if (!l) return;
    cb_scratch_release(l->scratch_bytes);
    cb_free(l->ssm);
    cb_free(l->conv);
    cb_free(l);
}

void cb_mamba_memory(const cb_mamba_layer *l, size_t *ssm_bytes, size_t *conv_bytes, size_t *scratch_bytes) {
    if (ssm_bytes) *ssm_bytes = l->ssm_bytes;
    if (conv_bytes) *conv_bytes = l->conv_bytes;
    if (scratch_bytes) *scratch_bytes = l->scratch_bytes;
}

static float *ssm_of(cb_mamba_layer *l, int seq) {
    return l->ssm + (size_t)seq * ssm_bytes_per_seq(l->cfg) / sizeof(float);
}
static void *conv_of(cb_mamba_layer *l, int seq) {
    return (char *)l->conv + (size_t)seq * conv_elems_per_seq(l->cfg) * cb_dtype_size(l->state_dtype);
}

void cb_mamba_reset(cb_mamba_layer *l, int seq) {
    size_t ssm = ssm_bytes_per_seq(l->cfg), conv = conv_elems_per_seq(l->cfg) * cb_dtype_size(l->state_dtype);
    for (int b = 0; b < l->max_batch; b++) {
        if (seq >= 0 && b != seq) continue;
        memset(ssm_of(l, b), 0, ssm);
        if (conv) memset(conv_of(l, b), 0, conv);
    }
}

/* Conv state in its storage dtype <-> f32 working copy. */
static void conv_state_load(const cb_mamba_layer *l, const void *src, float *dst, size_t n) {
    if (l->state_dtype == CB_F32) memcpy(dst, src, n * sizeof(float));
    else
        for (size_t i = 0; i < n; i++) dst[i] = cb_load_f32(src, l->state_dtype, i);
}
static void conv_state_store(const cb_mamba_layer *l, const float *src, void *dst, size_t n) {
    if (l->state_dtype == CB_F32) memcpy(dst, src, n * sizeof(float));
    else if (l->state_dtype == CB_BF16)
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = cb_f32_to_bf16(src[i]);
    else
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = cb_f32_to_f16(src[i]);
}

void cb_mamba_fill_synthetic(cb_mamba_layer *l, int seq, int64_t depth, cb_rng *rng) {
    (void)depth; /* the state has the same size and cost at any depth */
    float *S = ssm_of(l, seq);
    size_t ns = ssm_bytes_per_seq(l->cfg) / sizeof(float), nc = conv_elems_per_seq(l->cfg);
    for (size_t i = 0; i < ns; i++) S[i] = 0.1f * cb_rng_uniform(rng);
    float *tmp = cb_scratch_get();
    for (size_t i = 0; i < nc; i++) tmp[i] = cb_rng_uniform(rng);
    if (nc) conv_state_store(l, tmp, conv_of(l, seq), nc);
}

/* zx = x · in_projᵀ. Fast mode rounds activations to bf16 for the z and x rows only: B, C and dt (the last
 * 2·G·N + H rows, ~2-12% of the FLOPs) stay fp32 because their errors are multiplied through the exponential
 * decay and the C·Bᵀ products of every later token. Measured on bamba-tiny: max |Δlogit| 0.144 -> 0.056. */
static void in_projection(const struct cb_mamba_layer *l, int n, const float *x, float *zx) {
    const cb_config *c = l->cfg;
    const cb_weight *w = &l->w.in_proj;
    const cb_weight *bias = c->m_proj_bias ? &l->w.in_proj_b : NULL;
    if (l->mode != CB_MODE_FAST) {
        cb_linear(l->mode, n, x, c->d_model, w, bias, zx, c->m_in_proj_rows);
        return;
    }
    const int64_t split = 2 * (int64_t)c->m_d_inner; /* z | x of xBC */
    cb_weight wide = cb_weight_rows(w, 0, split), fine = cb_weight_rows(w, split, w->rows - split);
    cb_weight wide_b = { 0 }, fine_b = { 0 }; /* the bias split the same way: each row still gets one add */
    if (bias && bias->data) {
        wide_b = fine_b = *bias;
        wide_b.cols = split;
        fine_b.cols = bias->cols - split;
        fine_b.data = (const char *)bias->data + (size_t)split * cb_dtype_size(bias->dtype);
    }
    cb_linear(CB_MODE_FAST, n, x, c->d_model, &wide, &wide_b, zx, c->m_in_proj_rows);
    cb_linear(CB_MODE_EXACT, n, x, c->d_model, &fine, &fine_b, zx + split, c->m_in_proj_rows);
}

typedef struct {
    float *zx, *xbc, *dt, *y, *convf, *cb, *ws;
    size_t cb_group; /* floats per group in cb */
} scratch_views;

static scratch_views views(const cb_mamba_layer *l) {
    const cb_config *c = l->cfg;
    size_t r = (size_t)l->rows;
    scratch_views v;
    v.zx = cb_scratch_get();
    v.xbc = v.zx + r * c->m_in_proj_rows;
    v.dt = v.xbc + r * c->m_conv_dim;
    v.y = v.dt + r * c->m_heads;
    v.convf = v.y + r * c->m_d_inner;
    mixer_shape s = { l->rows, l->chunk, l->nthr };
    v.cb = v.convf + conv_elems_per_seq(c);
    v.cb_group = cb_floats(&s);
    v.ws = v.cb + (size_t)c->m_groups * v.cb_group;
    return v;
}

/* in_proj for n rows, conv for row block [r0, r0+nr) of sequence seq, silu, dt. */
static void conv_rows(cb_mamba_layer *l, int seq, const scratch_views *v, int r0, int nr) {
    const cb_config *c = l->cfg;
    const int K = c->m_conv, C = c->m_conv_dim, R = c->m_in_proj_rows;
    size_t nc = conv_elems_per_seq(c);
    /* an f32 state is updated in place: no copy in and out at every decode step */
    const bool direct = l->state_dtype == CB_F32;
    float *state = direct && nc ? (float *)conv_of(l, seq) : v->convf;
    if (nc && !direct) conv_state_load(l, conv_of(l, seq), state, nc);
    cb_conv1d_causal(nr, C, K, v->zx + (int64_t)r0 * R + c->m_d_inner, R, &l->w.conv_w,
                     l->cfg->m_conv_bias ? &l->w.conv_b : NULL, state, v->xbc + (int64_t)r0 * C, C);
    if (nc && !direct) conv_state_store(l, state, conv_of(l, seq), nc);
}

static void post_proj(cb_mamba_layer *l, int n, const scratch_views *v) {
    const cb_config *c = l->cfg;
    const int H = c->m_heads, C = c->m_conv_dim, R = c->m_in_proj_rows;
    const float lo = (float)c->m_dt_min, hi = (float)c->m_dt_max;
#pragma omp parallel for schedule(static) if (n > 4)
    for (int t = 0; t < n; t++) {
        float *xb = v->xbc + (int64_t)t * C;
        cb_ssd_silu(C, xb);
        const float *dtr = v->zx + (int64_t)t * R + c->m_d_inner + C;
        for (int h = 0; h < H; h++) {
            float d = cb_softplus(dtr[h] + wload(&l->w.dt_bias, h));
            v->dt[(int64_t)t * H + h] = d < lo ? lo : (d > hi ? hi : d);
        }
    }
}

/* y ← RMSNorm(y · silu(z)) over d_inner; out = out_proj(y). */
static void gate_norm_out(cb_mamba_layer *l, int n, const scratch_views *v, float *out) {
    const cb_config *c = l->cfg;
    const int Di = c->m_d_inner, R = c->m_in_proj_rows;
    long long t = cb_ctr_ns();
#pragma omp parallel for schedule(static) if (n > 4)
    for (int r = 0; r < n; r++) {
        float *y = v->y + (int64_t)r * Di;
        const float *z = v->zx + (int64_t)r * R;
        cb_silu_mul(Di, z, y, y);
    }
    cb_rmsnorm(n, Di, v->y, Di, &l->w.norm, c->eps, v->y, Di);
    cb_prof_lap(&t, CB_PROF_GATE_NORM);
    cb_linear(l->mode, n, v->y, Di, &l->w.out_proj, c->m_proj_bias ? &l->w.out_proj_b : NULL, out, c->d_model);
    cb_prof_lap(&t, CB_PROF_OUT_PROJ);
}

static cb_ssd_head head_view(const cb_mamba_layer *l, const scratch_views *v, int h, int t0, int T, float *S,
                             bool shared_cb) {
    const cb_config *c = l->cfg;
    const int P = c->m_head_dim, N = c->m_state, Di = c->m_d_inner, C = c->m_conv_dim;
    const int g = h / (c->m_heads / c->m_groups);
    const float *row = v->xbc + (int64_t)t0 * C;
    return (cb_ssd_head){ .T = T, .P = P, .N = N, .x = row + (int64_t)h * P, .ldx = C,
                          .B = row + Di + (int64_t)g * N, .C = row + Di + (int64_t)c->m_groups * N + (int64_t)g * N,
                          .ldbc = C, .dt = v->dt + (int64_t)t0 * c->m_heads + h, .lddt = c->m_heads,
                          .A = l->A[h], .D = wload(&l->w.D, h), .y = v->y + (int64_t)t0 * Di + (int64_t)h * P,
                          .ldy = Di, .S = S + (size_t)h * P * N,
                          .CB = shared_cb ? v->cb + (size_t)g * v->cb_group : NULL };
}

static void count(const cb_mamba_layer *l, int n, int nseq, long long ssd_flops) {
    const cb_config *c = l->cfg;
    /* in_proj and out_proj are counted by cb_linear */
    cb_ctr.flops += 2LL * n * c->m_conv_dim * c->m_conv + ssd_flops;
    cb_ctr.weight_bytes += (long long)(cb_weight_bytes(&l->w.conv_w) + cb_weight_bytes(&l->w.norm));
    cb_ctr.state_bytes += 2LL * nseq *
                          (long long)(ssm_bytes_per_seq(c) + conv_elems_per_seq(c) * cb_dtype_size(l->state_dtype));
}

void cb_mamba_prefill(cb_mamba_layer *l, int seq, const float *x, int n, float *out) {
    const cb_config *c = l->cfg;
    if (n == 0) return;
    scratch_views v = views(l);
    long long t = cb_ctr_ns();
    in_projection(l, n, x, v.zx);
    cb_prof_lap(&t, CB_PROF_IN_PROJ);
    conv_rows(l, seq, &v, 0, n);
    post_proj(l, n, &v);
    cb_prof_lap(&t, CB_PROF_CONV);
    float *S = ssm_of(l, seq);
    const int H = c->m_heads, G = c->m_groups, N = c->m_state, Cd = c->m_conv_dim, Q = CB_MIN(l->chunk, l->rows);
    const int nch = (n + Q - 1) / Q;
    const size_t wsf = cb_ssd_workspace_floats(Q, c->m_head_dim, N);
    const int nthr = CB_MIN(l->nthr, omp_get_max_threads());
    const long long t_ssd = cb_ctr_ns();
#pragma omp parallel num_threads(nthr)
    {
        float *ws = v.ws + (size_t)omp_get_thread_num() * wsf;
        /* C·Bᵀ once per group and chunk, shared by the group's H/G heads */
#pragma omp for schedule(static)
        for (int i = 0; i < G * nch; i++) {
            int g = i / nch, c0 = (i % nch) * Q;
            const float *B = v.xbc + (int64_t)c0 * Cd + c->m_d_inner + (int64_t)g * N;
            (l->mode == CB_MODE_FAST ? cb_ssd_cb_fast : cb_ssd_cb)(CB_MIN(Q, n - c0), Q, N, B, B + (int64_t)G * N, Cd, v.cb + (size_t)g * v.cb_group + (size_t)c0 * Q,
                      ws);
        }
#pragma omp for schedule(static)
        for (int h = 0; h < H; h++) {
            cb_ssd_head hv = head_view(l, &v, h, 0, n, S, true);
            (l->mode == CB_MODE_FAST ? cb_ssd_chunked_fast : cb_ssd_chunked)(&hv, Q, ws);
        }
    }
    cb_ctr.ssd_ns += cb_ctr_ns() - t_ssd;
    cb_prof_lap(&t, CB_PROF_SSD);
    gate_norm_out(l, n, &v, out);
    count(l, n, 1,
          (long long)H * cb_ssd_chunked_flops(n, Q, c->m_head_dim, N, true) + (long long)G * cb_ssd_cb_flops(n, Q, N));
}

/* The conv weights and conv states are read once per token, right after in_proj: request them before
 * in_proj streams its weights, so they are in cache when the conv step needs them (cold, its scattered
 * loads cost more than the arithmetic). */
static void prefetch_conv(const cb_mamba_layer *l, int batch, const int *seqs) {
    const cb_config *c = l->cfg;
    const char *w = l->w.conv_w.data;
    size_t wb = cb_weight_bytes(&l->w.conv_w);
    size_t sb = conv_elems_per_seq(c) * cb_dtype_size(l->state_dtype);
    for (size_t o = 0; o < wb; o += 64) __builtin_prefetch(w + o, 0, 3);
    if (c->m_conv_bias && l->w.conv_b.data) {
        const char *bb = l->w.conv_b.data;
        for (size_t o = 0; o < (size_t)c->m_conv_dim * cb_dtype_size(l->w.conv_b.dtype); o += 64)
            __builtin_prefetch(bb + o, 0, 3);
    }
    for (int b = 0; b < batch; b++) {
        const char *st = conv_of((cb_mamba_layer *)l, seqs[b]);
        for (size_t o = 0; o < sb; o += 64) __builtin_prefetch(st + o, 1, 3);
    }
}

void cb_mamba_decode(cb_mamba_layer *l, int batch, const int *seqs, const float *x, float *out) {
    const cb_config *c = l->cfg;
    scratch_views v = views(l);
    long long t = cb_ctr_ns();
    prefetch_conv(l, batch, seqs);
    in_projection(l, batch, x, v.zx);
    cb_prof_lap(&t, CB_PROF_IN_PROJ);
    for (int b = 0; b < batch; b++) conv_rows(l, seqs[b], &v, b, 1);
    post_proj(l, batch, &v);
    cb_prof_lap(&t, CB_PROF_CONV);
    const int H = c->m_heads;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < batch * H; i++) {
        int b = i / H, h = i % H;
        cb_ssd_head hv = head_view(l, &v, h, b, 1, ssm_of(l, seqs[b]), false);
        cb_ssd_step(&hv);
    }
    cb_prof_lap(&t, CB_PROF_SSD);
    gate_norm_out(l, batch, &v, out);
    count(l, batch, batch, 4LL * batch * H * c->m_head_dim * c->m_state);
}
