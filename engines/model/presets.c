/* Named random-weight models. Weights go straight into their storage dtype in one allocation; every
 * 16Ki-element chunk of every tensor has its own RNG stream, so the bytes depend only on (name, seed,
 * dtype), never on the thread count. The tensors are presented as an in-memory safetensors set so the
 * same binder (model.c) that checks real checkpoints checks presets too. */
#include "presets.h"

#include "../kernels/gemm8.h"
#include "../stack/family.h"
#include "quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>

typedef struct {
    const char *scale;
    int d, layers, heads, kv_heads, head_dim, m_heads, m_head_dim, state, d_ff, vocab;
    int attn[4], n_attn;
} scale_spec;

static const scale_spec scales[] = {
    /* 9b: exactly Bamba-9B */
    { "9b", 4096, 32, 32, 8, 128, 128, 64, 128, 14336, 128256, { 9, 18, 27 }, 3 },
    { "s", 1024, 32, 8, 2, 128, 32, 64, 128, 3584, 32000, { 9, 18, 27 }, 3 },
    { "xs", 512, 32, 4, 1, 128, 16, 64, 128, 1792, 32000, { 9, 18, 27 }, 3 },
    { "tiny", 256, 8, 4, 1, 64, 8, 64, 64, 768, 4096, { 3, 7 }, 2 },
};
#define N_SCALES ((int)(sizeof scales / sizeof scales[0]))
static const char *families[] = { "bamba", "mamba2", "transformer" };
#define N_FAMILIES 3

/* Granite 4.0-H (granitemoehybrid) at the published shapes, and xs/s-scale MoE hybrids whose active
 * feed-forward width (shared + top_k experts) equals the bamba-xs/-s MLP width. Where each published
 * number comes from: docs/models.md "Granite presets". */
typedef struct {
    const char *name;
    int d, layers, heads, kv_heads, head_dim, m_heads, m_head_dim, state, shared_ff, experts, top_k, expert_ff, vocab;
    bool tied;
    double emb, resid, attn, logits;
    int attn_at[4], n_attn;
} granite_spec;

static const granite_spec granites[] = {
    { "granite-4.0-h-micro", 2048, 40, 32, 8, 64, 64, 64, 128, 8192, 0, 0, 0, 100352, true, 12, 0.22, 0.015625, 8,
      { 5, 15, 25, 35 }, 4 },
    { "granite-4.0-h-tiny", 1536, 40, 12, 4, 128, 48, 64, 128, 1024, 64, 6, 512, 100352, true, 12, 0.22, 0.0078125, 6,
      { 5, 15, 25, 35 }, 4 },
    { "granite-4.0-h-small", 4096, 40, 32, 8, 128, 128, 64, 128, 1536, 72, 10, 768, 100352, true, 12, 0.22, 0.0078125,
      16, { 5, 15, 25, 35 }, 4 },
    { "granite-s", 1024, 32, 8, 2, 128, 32, 64, 128, 1536, 32, 4, 512, 32000, false, 12, 0.22, 0.0078125, 8,
      { 9, 18, 27 }, 3 },
    { "granite-xs", 512, 32, 4, 1, 128, 16, 64, 128, 768, 32, 4, 256, 32000, false, 12, 0.22, 0.0078125, 8,
      { 9, 18, 27 }, 3 },
    { "granite-tiny", 256, 8, 4, 1, 64, 8, 64, 64, 256, 8, 2, 256, 4096, false, 12, 0.22, 0.015625, 8, { 3, 7 }, 2 },
};
#define N_GRANITES ((int)(sizeof granites / sizeof granites[0]))

int cb_preset_count(void) { return N_SCALES * N_FAMILIES + N_GRANITES; }

const char *cb_preset_name(int i) {
    static char names[N_SCALES * N_FAMILIES][32];
    if (i < 0 || i >= cb_preset_count()) return NULL;
    if (i >= N_SCALES * N_FAMILIES) return granites[i - N_SCALES * N_FAMILIES].name;
    if (!names[i][0]) snprintf(names[i], sizeof names[i], "%s-%s", families[i % N_FAMILIES], scales[i / N_FAMILIES].scale);
    return names[i];
}

static void set_mamba(cb_config *cfg, int heads, int head_dim, int state) {
    cfg->m_heads = heads;
    cfg->m_head_dim = head_dim;
    cfg->m_state = state;
    cfg->m_groups = 1;
    cfg->m_conv = 4;
    cfg->m_chunk = 256;
    cfg->m_d_inner = heads * head_dim;
    cfg->m_conv_dim = cfg->m_d_inner + 2 * cfg->m_groups * cfg->m_state;
    cfg->m_in_proj_rows = 2 * cfg->m_d_inner + 2 * cfg->m_groups * cfg->m_state + cfg->m_heads;
    cfg->m_proj_bias = false;
    cfg->m_conv_bias = true;
    cfg->m_dt_min = 0.0;
    cfg->m_dt_max = INFINITY;
}

static void count_layers(cb_config *cfg) {
    cfg->n_attn_layers = cfg->n_mamba_layers = 0;
    for (int i = 0; i < cfg->n_layers; i++) {
        if (cfg->mixer[i] == CB_MIXER_ATTENTION) cfg->n_attn_layers++;
        else cfg->n_mamba_layers++;
    }
    cfg->arch = cfg->n_mamba_layers == 0 ? CB_ARCH_TRANSFORMER : cfg->n_attn_layers == 0 ? CB_ARCH_MAMBA2 : CB_ARCH_HYBRID;
}

/* What every preset sets alike: bf16 weights, untied, eps 1e-5, an MLP of d_ff, and no RoPE scaling
 * (theta 10000, factors 1; the rope type is the family's). */
static void preset_base(cb_config *cfg, cb_model_type mt, const char *type_str, int d, int layers, int vocab, int d_ff) {
    memset(cfg, 0, sizeof *cfg);
    cfg->model_type = mt;
    snprintf(cfg->model_type_str, sizeof cfg->model_type_str, "%s", type_str);
    cfg->d_model = d;
    cfg->n_layers = layers;
    cfg->vocab = vocab;
    cfg->eps = 1e-5;
    cfg->tie_embeddings = false;
    cfg->weights_dtype = CB_BF16;
    cfg->has_mlp = true;
    cfg->d_ff = d_ff;
    cfg->rope.theta = 10000.0;
    cfg->rope.factor = cfg->rope.low_freq_factor = cfg->rope.high_freq_factor = 1.0;
}

static void preset_heads(cb_config *cfg, int heads, int kv_heads, int head_dim) {
    cfg->n_heads = heads;
    cfg->n_kv_heads = kv_heads;
    cfg->head_dim = head_dim;
}

static int granite_config(const granite_spec *g, cb_config *cfg, cb_err *err) {
    preset_base(cfg, CB_MT_GRANITE, "granitemoehybrid", g->d, g->layers, g->vocab, g->shared_ff);
    cfg->tie_embeddings = g->tied;
    cfg->n_experts = g->experts;
    cfg->top_k = g->top_k;
    cfg->d_ff_expert = g->expert_ff;
    preset_heads(cfg, g->heads, g->kv_heads, g->head_dim);
    cfg->rope.type = CB_ROPE_NONE; /* NoPE, as every published Granite 4.0-H */
    cfg->embedding_multiplier = g->emb;
    cfg->residual_multiplier = g->resid;
    cfg->attn_scale = g->attn;
    cfg->logits_scaling = g->logits;
    for (int i = 0; i < g->layers; i++) cfg->mixer[i] = CB_MIXER_MAMBA2;
    for (int k = 0; k < g->n_attn; k++) cfg->mixer[g->attn_at[k]] = CB_MIXER_ATTENTION;
    count_layers(cfg);
    set_mamba(cfg, g->m_heads, g->m_head_dim, g->state);
    return cb_config_validate(cfg, g->name, err);
}

static void list_presets(char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < cb_preset_count() && o < n; i++)
        o += snprintf(buf + o, n - o, "%s%s", i ? ", " : "", cb_preset_name(i));
}

int cb_preset_config(const char *name, cb_config *cfg, cb_err *err) {
    for (int i = 0; i < N_GRANITES; i++)
        if (strcmp(name, granites[i].name) == 0) return granite_config(&granites[i], cfg, err);
    int idx = -1;
    for (int i = 0; i < cb_preset_count(); i++)
        if (strcmp(name, cb_preset_name(i)) == 0) idx = i;
    if (idx < 0) {
        char list[512];
        list_presets(list, sizeof list);
        cb_err_set(err, "unknown preset \"%.64s\" (valid: %s)", name, list);
        return -1;
    }
    const scale_spec *s = &scales[idx / N_FAMILIES];
    const int fam = idx % N_FAMILIES; /* 0 bamba, 1 mamba2 (model_type bamba), 2 transformer (llama) */
    preset_base(cfg, fam == 2 ? CB_MT_LLAMA : CB_MT_BAMBA, fam == 2 ? "llama" : "bamba", s->d, s->layers, s->vocab, s->d_ff);
    preset_heads(cfg, s->heads, s->kv_heads, s->head_dim);
    cfg->rope.type = CB_ROPE_DEFAULT;
    cfg->rope.rot_dim = fam == 2 ? s->head_dim : s->head_dim / 2; /* bamba: partial_rotary_factor 0.5 */
    for (int i = 0; i < s->layers; i++) cfg->mixer[i] = fam == 2 ? CB_MIXER_ATTENTION : CB_MIXER_MAMBA2;
    if (fam == 0)
        for (int k = 0; k < s->n_attn; k++) cfg->mixer[s->attn[k]] = CB_MIXER_ATTENTION;
    count_layers(cfg);
    if (fam != 2) set_mamba(cfg, s->m_heads, s->m_head_dim, s->state);
    return cb_config_validate(cfg, name, err);
}

/* ---- tensor list implied by a config (the inverse of model.c's binder; names from the family) ---- */

typedef enum { INIT_UNIFORM, INIT_ONE_PLUS, INIT_A_LOG, INIT_DT_BIAS } init_kind;
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[3];
    init_kind init;
    float scale;
    size_t offset, count;
    cb_dtype dt;      /* storage: the preset dtype, or 8-bit for linear projections (F32 for their scales) */
    int scale_of;     /* a `<weight>_scale` [rows, 1] tensor: index of its weight spec; else -1 */
} spec;

typedef struct { spec *v; int n, cap; } spec_list;

static int add(spec_list *l, init_kind k, float scale, int ndim, int64_t a, int64_t b, int64_t c, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static int add(spec_list *l, init_kind k, float scale, int ndim, int64_t a, int64_t b, int64_t c, const char *fmt, ...) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        spec *nv = realloc(l->v, l->cap * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
    }
    spec *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->ndim = ndim;
    s->shape[0] = a, s->shape[1] = b, s->shape[2] = c;
    s->count = (size_t)a * (ndim > 1 ? (size_t)b : 1) * (ndim > 2 ? (size_t)c : 1);
    s->init = k;
    s->scale = scale;
    return 0;
}

/* A stacked SwiGLU (gate|up in one input_linear, granitemoehybrid's shared expert) and the routed experts
 * of the family's moe module, after the feed-forward norm. */
static int stacked_ffn_specs(const cb_config *c, const cb_tensor_names *nm, spec_list *l, const char *root, float res) {
    const int64_t d = c->d_model, f = c->d_ff, E = c->n_experts, fe = c->d_ff_expert;
    int r = 0;
    r |= add(l, INIT_ONE_PLUS, 0.05f, 1, d, 0, 0, "%s.%s", root, nm->ff_norm);
    r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)d), 2, 2 * f, d, 0, "%s.%s.input_linear.weight", root, nm->ff);
    r |= add(l, INIT_UNIFORM, res / sqrtf((float)f), 2, d, f, 0, "%s.%s.output_linear.weight", root, nm->ff);
    if (E == 0 || !nm->moe) return r;
    r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)d), 2, E, d, 0, "%s.%s.router.layer.weight", root, nm->moe);
    r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)d), 3, E, 2 * fe, d, "%s.%s.input_linear.weight", root, nm->moe);
    r |= add(l, INIT_UNIFORM, res / sqrtf((float)fe), 3, E, d, fe, "%s.%s.output_linear.weight", root, nm->moe);
    return r;
}

static int build_specs(const cb_config *c, spec_list *l) {
    const cb_tensor_names *nm = &cb_family_for(c)->names; /* checked by the caller */
    const int64_t d = c->d_model;
    /* Output projections feeding the residual are damped by 1/sqrt(2L) so that the residual stream
     * keeps a plausible magnitude through 32 layers. */
    const float res = 1.0f / sqrtf(2.0f * (float)c->n_layers);
    int r = 0;
    r |= add(l, INIT_UNIFORM, 1.0f, 2, c->vocab, d, 0, "%s", nm->embed);
    r |= add(l, INIT_ONE_PLUS, 0.05f, 1, d, 0, 0, "%s", nm->final_norm);
    if (!c->tie_embeddings) r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)d), 2, c->vocab, d, 0, "%s", nm->lm_head);
    for (int i = 0; i < c->n_layers && !r; i++) {
        char root[128];
        snprintf(root, sizeof root, nm->layer, i);
        r |= add(l, INIT_ONE_PLUS, 0.05f, 1, d, 0, 0, "%s.%s", root, nm->mixer_norm);
        if (c->mixer[i] == CB_MIXER_ATTENTION) {
            int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
            float s_in = 1.0f / sqrtf((float)d), s_o = res / sqrtf((float)q);
            r |= add(l, INIT_UNIFORM, s_in, 2, q, d, 0, "%s.%s.q_proj.weight", root, nm->attention);
            r |= add(l, INIT_UNIFORM, s_in, 2, kv, d, 0, "%s.%s.k_proj.weight", root, nm->attention);
            r |= add(l, INIT_UNIFORM, s_in, 2, kv, d, 0, "%s.%s.v_proj.weight", root, nm->attention);
            r |= add(l, INIT_UNIFORM, s_o, 2, d, q, 0, "%s.%s.o_proj.weight", root, nm->attention);
            if (c->attn_bias) {
                r |= add(l, INIT_UNIFORM, 0.02f, 1, q, 0, 0, "%s.%s.q_proj.bias", root, nm->attention);
                r |= add(l, INIT_UNIFORM, 0.02f, 1, kv, 0, 0, "%s.%s.k_proj.bias", root, nm->attention);
                r |= add(l, INIT_UNIFORM, 0.02f, 1, kv, 0, 0, "%s.%s.v_proj.bias", root, nm->attention);
                r |= add(l, INIT_UNIFORM, 0.02f, 1, d, 0, 0, "%s.%s.o_proj.bias", root, nm->attention);
            }
        } else {
            const char *mx = nm->mamba;
            r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)d), 2, c->m_in_proj_rows, d, 0, "%s.%s.in_proj.weight", root, mx);
            if (c->m_proj_bias) r |= add(l, INIT_UNIFORM, 0.02f, 1, c->m_in_proj_rows, 0, 0, "%s.%s.in_proj.bias", root, mx);
            r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)c->m_conv), 3, c->m_conv_dim, 1, c->m_conv, "%s.%s.conv1d.weight", root, mx);
            if (c->m_conv_bias) r |= add(l, INIT_UNIFORM, 0.1f, 1, c->m_conv_dim, 0, 0, "%s.%s.conv1d.bias", root, mx);
            r |= add(l, INIT_DT_BIAS, 0, 1, c->m_heads, 0, 0, "%s.%s.dt_bias", root, mx);
            r |= add(l, INIT_A_LOG, 0, 1, c->m_heads, 0, 0, "%s.%s.A_log", root, mx);
            r |= add(l, INIT_ONE_PLUS, 0.1f, 1, c->m_heads, 0, 0, "%s.%s.D", root, mx);
            r |= add(l, INIT_ONE_PLUS, 0.05f, 1, c->m_d_inner, 0, 0, "%s.%s.norm.weight", root, mx);
            r |= add(l, INIT_UNIFORM, res / sqrtf((float)c->m_d_inner), 2, d, c->m_d_inner, 0, "%s.%s.out_proj.weight", root, mx);
            if (c->m_proj_bias) r |= add(l, INIT_UNIFORM, 0.02f, 1, d, 0, 0, "%s.%s.out_proj.bias", root, mx);
        }
        if (c->has_mlp && nm->gate_up_stacked) {
            r |= stacked_ffn_specs(c, nm, l, root, res);
        } else if (c->has_mlp) {
            const char *mlp = nm->ff;
            r |= add(l, INIT_ONE_PLUS, 0.05f, 1, d, 0, 0, "%s.%s", root, nm->ff_norm);
            r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)d), 2, c->d_ff, d, 0, "%s.%s.gate_proj.weight", root, mlp);
            r |= add(l, INIT_UNIFORM, 1.0f / sqrtf((float)d), 2, c->d_ff, d, 0, "%s.%s.up_proj.weight", root, mlp);
            r |= add(l, INIT_UNIFORM, res / sqrtf((float)c->d_ff), 2, d, c->d_ff, 0, "%s.%s.down_proj.weight", root, mlp);
            if (c->mlp_bias) {
                r |= add(l, INIT_UNIFORM, 0.02f, 1, c->d_ff, 0, 0, "%s.%s.gate_proj.bias", root, mlp);
                r |= add(l, INIT_UNIFORM, 0.02f, 1, c->d_ff, 0, 0, "%s.%s.up_proj.bias", root, mlp);
                r |= add(l, INIT_UNIFORM, 0.02f, 1, d, 0, 0, "%s.%s.down_proj.bias", root, mlp);
            }
        }
    }
    return r ? -1 : 0;
}

/* Two uniforms in [-1, 1) per RNG step (the 32-bit halves): the fill is memory-bound, not RNG-bound. */
static inline float u32_to_uniform(uint32_t x) { return (float)(int32_t)x * (1.0f / 2147483648.0f); }

static float special_value(init_kind k, float u) {
    if (k == INIT_A_LOG) return logf(1.0f + 7.5f * (u + 1.0f)); /* A in [1, 16] */
    /* dt log-uniform in [1e-3, 1e-1]; bias = softplus^-1(dt) = dt + log(-expm1(-dt)) */
    double dt = exp(log(1e-3) + (u + 1.0) * 0.5 * (log(1e-1) - log(1e-3)));
    return (float)(dt + log(-expm1(-dt)));
}

#define CHUNK 16384 /* elements per RNG stream; the fp32 block lives on the thread stack (64 KiB) */

static void fill_tensor(void *base, const spec *s, int tensor_index, uint64_t seed, cb_dtype dt) {
    const size_t nchunks = (s->count + CHUNK - 1) / CHUNK;
    /* value = shift + scale * u for the affine kinds */
    const float shift = s->init == INIT_ONE_PLUS ? 1.0f : 0.0f, scale = s->scale;
    const bool affine = s->init == INIT_UNIFORM || s->init == INIT_ONE_PLUS;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t ch = 0; ch < nchunks; ch++) {
        cb_rng rng = { seed ^ ((uint64_t)tensor_index * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ch << 40) };
        rng.s = cb_rng_next(&rng); /* decorrelate nearby seeds */
        const size_t i0 = ch * CHUNK, i1 = CB_MIN(s->count, i0 + CHUNK);
        float buf[CHUNK];
        const size_t n = i1 - i0;
        for (size_t i = 0; i < n; i += 2) {
            uint64_t r = cb_rng_next(&rng);
            buf[i] = u32_to_uniform((uint32_t)r);
            if (i + 1 < n) buf[i + 1] = u32_to_uniform((uint32_t)(r >> 32));
        }
        if (affine) for (size_t i = 0; i < n; i++) buf[i] = shift + scale * buf[i];
        else for (size_t i = 0; i < n; i++) buf[i] = special_value(s->init, buf[i]);
        char *p = (char *)base + s->offset;
        if (dt == CB_F32) memcpy((float *)p + i0, buf, n * sizeof(float));
        else if (dt == CB_BF16) for (size_t i = 0; i < n; i++) ((uint16_t *)p)[i0 + i] = cb_f32_to_bf16(buf[i]);
        else for (size_t i = 0; i < n; i++) ((uint16_t *)p)[i0 + i] = cb_f32_to_f16(buf[i]);
    }
}

/* The values fill_tensor writes for elements [start, start + n) of tensor s, by random access: each
 * chunk's stream is splitmix64, whose state advances by a constant per step, so a pair index is a
 * skip, not a replay. Rounded through bf16: an 8-bit preset is the quantisation of the bf16 one. */
static void gen_bf16_values(const spec *s, int tensor_index, uint64_t seed, size_t start, size_t n, float *out) {
    const float shift = s->init == INIT_ONE_PLUS ? 1.0f : 0.0f, scale = s->scale;
    const bool affine = s->init == INIT_UNIFORM || s->init == INIT_ONE_PLUS;
    size_t i = start;
    const size_t end = start + n;
    while (i < end) {
        const size_t ch = i / CHUNK, i0 = ch * CHUNK, stop = CB_MIN(end, CB_MIN(s->count, i0 + CHUNK));
        cb_rng rng = { seed ^ ((uint64_t)tensor_index * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ch << 40) };
        rng.s = cb_rng_next(&rng);
        rng.s += (uint64_t)((i - i0) / 2) * 0x9e3779b97f4a7c15ull; /* skip to the pair holding element i */
        while (i < stop) {
            uint64_t r = cb_rng_next(&rng);
            if (((i - i0) & 1) == 0) {
                out[i - start] = u32_to_uniform((uint32_t)r);
                if (i + 1 < stop) out[i + 1 - start] = u32_to_uniform((uint32_t)(r >> 32));
                i += 2;
            } else {
                out[i - start] = u32_to_uniform((uint32_t)(r >> 32));
                i += 1;
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        float v = affine ? shift + scale * out[k] : special_value(s->init, out[k]);
        out[k] = cb_bf16_to_f32(cb_f32_to_bf16(v));
    }
}

/* A linear projection generated straight into 8 bits: blocks of rows are generated (bf16-rounded
 * fp32, one block per thread at a time) and quantised per row; no full-precision copy exists. */
static int fill_q8(void *base, const spec *s, const spec *sc, int tensor_index, uint64_t seed, cb_err *err) {
    const int64_t rows = s->ndim == 3 ? s->shape[0] * s->shape[1] : s->shape[0], cols = s->shape[s->ndim - 1];
    const int64_t per = CB_MAX((int64_t)1, (int64_t)CHUNK / cols), nblocks = (rows + per - 1) / per;
    int bad = 0;
    cb_err first = { "" };
#pragma omp parallel
    {
        float *buf = malloc(sizeof(float) * (size_t)(per * cols));
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < nblocks; b++) {
            const int64_t r0 = b * per, nr = CB_MIN(per, rows - r0);
            cb_err e = { "" };
            int rc = -1;
            if (buf) {
                gen_bf16_values(s, tensor_index, seed, (size_t)(r0 * cols), (size_t)(nr * cols), buf);
                rc = cb_quantize_rows(buf, CB_F32, nr, cols, s->dt, (uint8_t *)base + s->offset + (size_t)(r0 * cols),
                                      (float *)((char *)base + sc->offset) + r0, &e);
            } else {
                cb_err_set(&e, "out of memory for %lld rows", (long long)nr);
            }
            if (rc) {
#pragma omp critical
                if (!bad) { bad = 1; first = e; }
            }
        }
        free(buf);
    }
    if (bad) cb_err_set(err, "tensor %s: %s", s->name, first.msg);
    return bad ? -1 : 0;
}

static int tensor_name_cmp(const void *a, const void *b) {
    return strcmp(((const cb_tensor *)a)->name, ((const cb_tensor *)b)->name);
}

/* Is spec s a linear projection (quantised in an 8-bit preset)? Every matrix but the embeddings and the
 * MoE router, and the 3-D expert tensors (per row over (expert, output row)). */
static bool is_linear(const spec *s) {
    if (strstr(s->name, "embed") || strstr(s->name, "router")) return false;
    return s->ndim == 2 || (s->ndim == 3 && strstr(s->name, "block_sparse_moe"));
}

/* fill = false: the tensors are bound to an untouched, unreserved anonymous mapping (zero pages on read)
 * instead of being generated: the shapes an engine's create() checks, without the weights' memory or time. */
static int preset_build(const char *name, uint64_t seed, cb_dtype dtype, bool fill, cb_model *m, cb_err *err) {
    memset(m, 0, sizeof *m);
    if (dtype != CB_F32 && dtype != CB_F16 && dtype != CB_BF16 && !cb_dtype_is_q8(dtype)) {
        cb_err_set(err, "preset %s: dtype %s not supported (expected f32, f16, bf16, fp8 or int8)", name,
                   cb_dtype_name(dtype));
        return -1;
    }
    const bool q8 = cb_dtype_is_q8(dtype);
    const cb_dtype kept = q8 ? CB_BF16 : dtype; /* 8-bit presets keep embeddings, norms, SSM params in bf16 */
    if (cb_preset_config(name, &m->cfg, err)) return -1;
    m->cfg.weights_dtype = kept;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->source, sizeof m->source, "preset:%s seed=%llu dtype=%s", name, (unsigned long long)seed,
             cb_dtype_name(dtype));
    spec_list l = { 0 };
    if (!cb_family_for(&m->cfg)) {
        cb_err_set(err, "preset %s: no model family for model_type '%s'", name, m->cfg.model_type_str);
        return -1;
    }
    if (build_specs(&m->cfg, &l)) {
        free(l.v);
        cb_err_set(err, "preset %s: out of memory", name);
        return -1;
    }
    const int n_specs = l.n;
    for (int i = 0; i < n_specs; i++) {
        l.v[i].dt = q8 && is_linear(&l.v[i]) ? dtype : kept;
        l.v[i].scale_of = -1;
    }
    for (int i = 0; i < n_specs; i++) { /* each 8-bit weight gets a `<name>_scale` [rows, 1] F32 companion */
        if (!cb_dtype_is_q8(l.v[i].dt)) continue;
        char wname[sizeof l.v[i].name];
        memcpy(wname, l.v[i].name, sizeof wname); /* add() may move l.v */
        const int64_t rows = l.v[i].ndim == 3 ? l.v[i].shape[0] * l.v[i].shape[1] : l.v[i].shape[0];
        if (add(&l, INIT_UNIFORM, 0, 2, rows, 1, 0, "%s_scale", wname)) {
            free(l.v);
            cb_err_set(err, "preset %s: out of memory", name);
            return -1;
        }
        l.v[l.n - 1].dt = CB_F32;
        l.v[l.n - 1].scale_of = i;
    }
    size_t total = 0;
    for (int i = 0; i < l.n; i++) {
        l.v[i].offset = total;
        total += (l.v[i].count * cb_dtype_size(l.v[i].dt) + 63) / 64 * 64;
    }
    if (fill) {
        m->owned = cb_alloc_in(CB_ALLOC_WEIGHTS, total, err);
    } else {
        void *map = mmap(NULL, total ? total : 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (map == MAP_FAILED) cb_err_set(err, "preset %s: cannot map %zu bytes of weight shapes", name, total);
        else m->owned = map, m->owned_mapped = true;
    }
    if (!m->owned) {
        free(l.v);
        return -1;
    }
    m->owned_bytes = total;
    /* Huge pages where the kernel allows them: first-touch faults dominate filling GBs of weights. */
    const uintptr_t hp = (uintptr_t)2 << 20, lo = ((uintptr_t)m->owned + hp - 1) & ~(hp - 1),
                    hi = ((uintptr_t)m->owned + total) & ~(hp - 1);
    if (fill && hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    cb_safetensors *st = &m->st;
    st->tensors = calloc(l.n, sizeof *st->tensors);
    st->paths = calloc(1, sizeof *st->paths);
    st->maps = calloc(1, sizeof *st->maps);
    st->map_sizes = calloc(1, sizeof *st->map_sizes);
    if (!st->tensors || !st->paths || !st->maps || !st->map_sizes || !(st->paths[0] = strdup(m->source))) {
        free(l.v);
        cb_model_free(m);
        cb_err_set(err, "preset %s: out of memory", name);
        return -1;
    }
    st->n_files = 1;
    for (int i = 0; i < l.n; i++) {
        if (l.v[i].scale_of >= 0 || !fill) { /* filled with its weight, or shapes only */
        } else if (cb_dtype_is_q8(l.v[i].dt)) {
            int si = -1;
            for (int k = n_specs; k < l.n; k++) if (l.v[k].scale_of == i) si = k;
            cb_err e = { "" };
            if (si < 0 || fill_q8(m->owned, &l.v[i], &l.v[si], i, seed, &e)) {
                free(l.v);
                cb_model_free(m);
                cb_err_set(err, "preset %s: %s", name, si < 0 ? "internal: no scale tensor" : e.msg);
                return -1;
            }
        } else {
            fill_tensor(m->owned, &l.v[i], i, seed, l.v[i].dt);
        }
        cb_tensor *t = &st->tensors[st->n_tensors];
        t->name = strdup(l.v[i].name);
        if (!t->name) {
            free(l.v);
            cb_model_free(m);
            cb_err_set(err, "preset %s: out of memory", name);
            return -1;
        }
        st->n_tensors++;
        t->dtype = l.v[i].dt;
        t->ndim = l.v[i].ndim;
        memcpy(t->shape, l.v[i].shape, sizeof l.v[i].shape);
        t->data = (char *)m->owned + l.v[i].offset;
        t->nbytes = l.v[i].count * cb_dtype_size(l.v[i].dt);
    }
    free(l.v);
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, tensor_name_cmp);
    if (cb_model_bind(m, err)) {
        cb_model_free(m);
        return -1;
    }
    return 0;
}

int cb_preset_create(const char *name, uint64_t seed, cb_dtype dtype, cb_model *m, cb_err *err) {
    return preset_build(name, seed, dtype, true, m, err);
}

int cb_preset_create_shapes(const char *name, cb_dtype dtype, cb_model *m, cb_err *err) {
    return preset_build(name, 0, dtype, false, m, err);
}

static bool has_config_json(const char *dir) {
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof p, "%s/config.json", dir);
    return stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(p, &sb) == 0;
}

static int not_found(const char *arg, cb_err *err) {
    char list[512];
    list_presets(list, sizeof list);
    cb_err_set(err, "%.200s: neither a checkpoint directory with config.json nor a preset (valid presets: %s)", arg, list);
    return -1;
}

static bool is_preset(const char *name) {
    for (int i = 0; i < cb_preset_count(); i++)
        if (strcmp(name, cb_preset_name(i)) == 0) return true;
    return false;
}

int cb_model_open(const char *arg, uint64_t seed, cb_dtype preset_dtype, cb_model *m, cb_err *err) {
    if (has_config_json(arg)) {
        if (cb_model_load(arg, m, err)) return -1;
        /* 8-bit asked of a checkpoint: quantise at load (a no-op for one already stored in that format) */
        if (cb_dtype_is_q8(preset_dtype) && cb_model_quantize(m, preset_dtype, err)) {
            cb_model_free(m);
            return -1;
        }
        return 0;
    }
    if (is_preset(arg)) return cb_preset_create(arg, seed, preset_dtype, m, err);
    memset(m, 0, sizeof *m);
    return not_found(arg, err);
}

void cb_config_for_weights(const char *arg, cb_dtype dtype, cb_config *cfg) {
    if (cb_dtype_is_q8(dtype)) {
        if (!cb_config_is_q8(cfg)) cfg->q8_keep_lm_head = false; /* quantised at load: lm_head too */
        cfg->q8 = dtype;
        if (is_preset(arg)) cfg->weights_dtype = CB_BF16;
    } else if (is_preset(arg)) {
        cfg->weights_dtype = dtype;
    }
}

int cb_model_config(const char *arg, cb_config *cfg, cb_err *err) {
    if (has_config_json(arg)) return cb_config_load(arg, cfg, err);
    if (is_preset(arg)) return cb_preset_config(arg, cfg, err);
    return not_found(arg, err);
}
