/* The engine every built-in family runs (contract in stack.h). Prefill runs in chunks of
 * o->prefill_chunk tokens so scratch never depends on context length. */
#include "stack.h"

#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "../counters.h"
#include "../kernels/kernels.h"
#include "../layers/attention_layer.h"
#include "../layers/linear.h"
#include "../layers/mamba2_mixer.h"
#include "../layers/mlp.h"
#include "../layers/moe.h"
#include "../layers/scratch.h"
#include "family.h"

struct cb_engine {
    const cb_model *m;
    const cb_family *fam;
    cb_config cfg;
    cb_engine_opts o;
    cb_attn_layer *attn[CB_MAX_LAYERS];
    cb_mamba_layer *mamba[CB_MAX_LAYERS];
    int64_t *len;     /* tokens per sequence */
    int rows;         /* max rows per step: max(prefill_chunk, max_batch) */
    float *x, *h, *y; /* residual stream, normalised input, layer output: [rows, d] each */
    size_t own_bytes; /* the three buffers above */
    size_t ff_reserved;
    float *capture;   /* optional [L+1][n][d] of the next prefill */
    cb_layer_weights *lw; /* the model's layer weights, plus the tile copies below (n_layers) */
    uint32_t *tiles;      /* tile copies of the bf16 / int8 projections (o.tile_weights), tile_bytes */
    size_t tile_bytes;
};

/* Thread count is process-global in OpenMP: apply the engine's before each call. */
static void apply_threads(const cb_engine *s) {
    if (s->o.threads > 0) omp_set_num_threads(s->o.threads);
}

static int stack_rows(const cb_engine_opts *o) { return CB_MAX(o->prefill_chunk, o->max_batch); }

static size_t own_scratch_bytes(const cb_config *cfg, const cb_engine_opts *o) {
    return 3 * (size_t)stack_rows(o) * (size_t)cfg->d_model * sizeof(float);
}

/* The feed-forward's share of the scratch arena (the mixers reserve theirs): the MLP and the routed
 * experts run one after the other and share it. */
static size_t ff_scratch_bytes(const cb_config *cfg, const cb_engine_opts *o) {
    size_t mlp = cfg->has_mlp ? cb_mlp_scratch_floats(cfg, stack_rows(o)) : 0;
    return CB_MAX(mlp, cb_moe_scratch_floats(cfg, stack_rows(o))) * sizeof(float);
}

/* muP multipliers (docs/models.md): a config built in code leaves them 0, which means 1. */
static float multiplier(double m) { return m > 0 ? (float)m : 1.0f; }

/* x += a * y, exactly cb_add when a == 1 (the families without a residual multiplier). */
static void add_residual(int64_t n, float *x, float *y, float a) {
    if (a != 1.0f)
        for (int64_t i = 0; i < n; i++) y[i] *= a;
    cb_add(n, x, y);
}

static size_t param_bytes(const cb_config *cfg) {
    cb_weight_split w; /* 8-bit projections + scales + kept-precision tensors (docs/quantization.md) */
    cb_config_weight_split(cfg, &w);
    return w.total;
}

/* The dtype of the projections that get tile copies: bf16 weights (both modes read them), int8 weights in
 * fast mode (the TDPBSSD layout; exact mode decodes int8 panels instead); CB_F32 for none. */
static cb_dtype tiled_dtype(const cb_config *c, const cb_engine_opts *o) {
    if (!o->tile_weights) return CB_F32;
    if (cb_config_is_q8(c)) return c->q8 == CB_I8 && o->mode == CB_MODE_FAST ? CB_I8 : CB_F32;
    return c->weights_dtype == CB_BF16 ? CB_BF16 : CB_F32;
}

/* The projections of layer i that get a tile copy (kernels/tiles.h) when the engine keeps them: every bf16
 * (or int8, fast mode) linear projection of the mixer and the MLP (the LM head and routed experts,
 * decode-sized or sliced per expert, are packed per call). Their addresses in L (when L is given) and their
 * shapes from the config, the one list both plan() and create() count. */
#define MAX_TILED 7
static int tiled_projections(const cb_config *c, const cb_engine_opts *o, int i, cb_layer_weights *L,
                             cb_weight *w[MAX_TILED], int64_t shape[MAX_TILED][2]) {
    if (tiled_dtype(c, o) == CB_F32) return 0;
    int n = 0;
#define TILED(field, r, k) (w[n] = L ? &L->field : NULL, shape[n][0] = (r), shape[n][1] = (k), n++)
    const int64_t d = c->d_model;
    if (c->mixer[i] == CB_MIXER_ATTENTION) {
        const int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
        TILED(attn.q, q, d), TILED(attn.k, kv, d), TILED(attn.v, kv, d), TILED(attn.o, d, q);
    } else {
        TILED(mamba.in_proj, c->m_in_proj_rows, d), TILED(mamba.out_proj, d, c->m_d_inner);
    }
    if (c->has_mlp) TILED(mlp.gate, c->d_ff, d), TILED(mlp.up, c->d_ff, d), TILED(mlp.down, d, c->d_ff);
#undef TILED
    return n;
}

static size_t tile_plan_bytes(const cb_config *c, const cb_engine_opts *o) {
    size_t total = 0;
    for (int i = 0; i < c->n_layers; i++) {
        cb_weight *w[MAX_TILED];
        int64_t sh[MAX_TILED][2];
        int n = tiled_projections(c, o, i, NULL, w, sh);
        for (int k = 0; k < n; k++) total = cb_bytes_add(total, cb_tiles_bytes_of(tiled_dtype(c, o), sh[k][0], sh[k][1]));
    }
    return total;
}

/* Copy the model's layer weights into s->lw and give the listed projections their tile copies. */
static int make_tiles(cb_engine *s, cb_err *err) {
    const cb_config *c = &s->cfg;
    if (!(s->lw = cb_alloc((size_t)c->n_layers * sizeof *s->lw, err))) return -1;
    memcpy(s->lw, s->m->layers, (size_t)c->n_layers * sizeof *s->lw);
    size_t bytes = tile_plan_bytes(c, &s->o);
    if (!bytes) return 0;
    if (!(s->tiles = cb_alloc(bytes, err))) return -1;
    s->tile_bytes = bytes;
    size_t at = 0; /* in uint32; every copy is a whole number of 1 KiB tiles, so each stays 64-byte aligned */
    for (int i = 0; i < c->n_layers; i++) {
        cb_weight *w[MAX_TILED];
        int64_t sh[MAX_TILED][2];
        int n = tiled_projections(c, &s->o, i, &s->lw[i], w, sh);
        for (int k = 0; k < n; k++) {
            const cb_dtype dt = tiled_dtype(c, &s->o);
            size_t b = cb_tiles_bytes_of(dt, sh[k][0], sh[k][1]);
            if (w[k]->data && w[k]->dtype == dt && w[k]->rows == sh[k][0] && w[k]->cols == sh[k][1]) {
                if (dt == CB_I8) cb_tiles_pack_i8(w[k], s->tiles + at);
                else cb_tiles_pack(w[k], s->tiles + at);
                w[k]->tiles = s->tiles + at;
            }
            at += b / sizeof(uint32_t);
        }
    }
    return 0;
}

void cb_stack_plan(const cb_config *cfg, const cb_engine_opts *o, int64_t context, int batch, cb_memory_report *out) {
    cb_engine_opts ob = *o;
    ob.max_context = context;
    ob.max_batch = batch;
    memset(out, 0, sizeof *out);
    out->weights = cb_bytes_add(param_bytes(cfg), tile_plan_bytes(cfg, o));
    size_t arena = ff_scratch_bytes(cfg, &ob);
    for (int i = 0; i < cfg->n_layers; i++) {
        if (cfg->mixer[i] == CB_MIXER_ATTENTION) {
            size_t kv, sc;
            cb_attn_plan(cfg, &ob, context, batch, &kv, &sc);
            out->kv_cache = cb_bytes_add(out->kv_cache, kv);
            arena = CB_MAX(arena, sc);
        } else {
            size_t ssm, conv, sc;
            cb_mamba_plan(cfg, &ob, batch, &ssm, &conv, &sc);
            out->ssm_state = cb_bytes_add(out->ssm_state, ssm);
            out->conv_state = cb_bytes_add(out->conv_state, conv);
            arena = CB_MAX(arena, sc);
        }
    }
    out->scratch = own_scratch_bytes(cfg, &ob) + arena;
    out->total = cb_bytes_add(cb_bytes_add(cb_bytes_add(out->weights, out->kv_cache), cb_bytes_add(out->ssm_state, out->conv_state)),
                              out->scratch);
}

void cb_stack_destroy(cb_engine *s) {
    if (!s) return;
    for (int i = 0; i < s->cfg.n_layers; i++) {
        if (s->attn[i]) cb_attn_destroy(s->attn[i]);
        if (s->mamba[i]) cb_mamba_destroy(s->mamba[i]);
    }
    if (s->ff_reserved) cb_scratch_release(s->ff_reserved);
    cb_free(s->x);
    cb_free(s->h);
    cb_free(s->y);
    cb_free(s->len);
    cb_free(s->lw);
    cb_free(s->tiles);
    cb_free(s);
}

int cb_stack_create(const cb_model *m, const cb_engine_opts *o, cb_engine **out, cb_err *err) {
    *out = NULL;
    if (o->max_batch < 1 || o->prefill_chunk < 1 || o->max_context < 1) {
        cb_err_set(err, "engine options: max_batch (%d), prefill_chunk (%d) and max_context (%lld) must be >= 1",
                   o->max_batch, o->prefill_chunk, (long long)o->max_context);
        return -1;
    }
    const cb_family *fam = cb_family_for(&m->cfg);
    if (!fam || !cb_family_supports(fam, &m->cfg)) {
        cb_err_set(err, "%s: no model family runs model_type '%s' with this layer pattern", m->name, m->cfg.model_type_str);
        return -1;
    }
    cb_engine *s = cb_calloc(sizeof *s, err);
    if (!s) return -1;
    s->m = m;
    s->fam = fam;
    s->cfg = m->cfg;
    s->o = *o;
    s->rows = stack_rows(o);
    size_t buf = (size_t)s->rows * (size_t)s->cfg.d_model * sizeof(float);
    s->own_bytes = 3 * buf;
    if (!(s->len = cb_calloc((size_t)o->max_batch * sizeof(int64_t), err)) || !(s->x = cb_alloc_in(CB_ALLOC_SCRATCH, buf, err)) ||
        !(s->h = cb_alloc_in(CB_ALLOC_SCRATCH, buf, err)) || !(s->y = cb_alloc_in(CB_ALLOC_SCRATCH, buf, err)))
        goto fail;
    if (s->cfg.has_mlp || s->cfg.n_experts > 0) {
        size_t need = ff_scratch_bytes(&s->cfg, o);
        if (cb_scratch_reserve(need, err)) goto fail;
        s->ff_reserved = need;
    }
    if (make_tiles(s, err)) goto fail;
    for (int i = 0; i < s->cfg.n_layers; i++) {
        int rc = s->cfg.mixer[i] == CB_MIXER_ATTENTION
                     ? cb_attn_create(&s->cfg, &s->lw[i].attn, o, &s->attn[i], err)
                     : cb_mamba_create(&s->cfg, &s->lw[i].mamba, o, &s->mamba[i], err);
        if (rc) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err ? err->msg : "");
            cb_err_set(err, "layer %d: %s", i, why);
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    cb_stack_destroy(s);
    return -1;
}

static void embed_rows(const cb_engine *s, const int32_t *tokens, int n, float *x) {
    const cb_weight *e = &s->m->embed;
    int d = s->cfg.d_model;
    const float mult = multiplier(s->cfg.embedding_multiplier);
    for (int r = 0; r < n; r++) {
        size_t base = (size_t)tokens[r] * (size_t)d;
        float *dst = x + (size_t)r * d;
        if (e->dtype == CB_F32) memcpy(dst, (const float *)e->data + base, (size_t)d * sizeof(float));
        else
            for (int i = 0; i < d; i++) dst[i] = cb_load_f32(e->data, e->dtype, base + (size_t)i);
        if (mult != 1.0f)
            for (int i = 0; i < d; i++) dst[i] *= mult;
    }
}

static int check_tokens(const cb_engine *s, const int32_t *tokens, int n, cb_err *err) {
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->cfg.vocab) {
            cb_err_set(err, "token %d at index %d is outside the vocabulary [0, %d)", tokens[i], i, s->cfg.vocab);
            return -1;
        }
    return 0;
}

/* logits[n, vocab] of the last n rows of x: final norm, LM head. */
static void head(cb_engine *s, int n, const float *x, float *logits) {
    const cb_config *c = &s->cfg;
    long long t = cb_ctr_ns();
    cb_rmsnorm(n, c->d_model, x, c->d_model, &s->m->final_norm, c->eps, s->h, c->d_model);
    cb_linear(s->o.mode, n, s->h, c->d_model, &s->m->lm_head, NULL, logits, c->vocab);
    const float div = multiplier(c->logits_scaling); /* granitemoehybrid's logits_scaling */
    if (div != 1.0f)
        for (int64_t i = 0; i < (int64_t)n * c->vocab; i++) logits[i] /= div;
    cb_prof_lap(&t, CB_PROF_OTHER);
}

/* x += mixer(norm(x)) for layer i. seqs == NULL: prefill of n tokens of sequence `seq`; else a decode
 * batch with pos[b] = the tokens sequence seqs[b] holds. */
static void mixer_step(cb_engine *s, int i, int seq, const int *seqs, const int64_t *pos, int n) {
    const cb_config *c = &s->cfg;
    const int d = c->d_model;
    long long t = cb_ctr_ns();
    cb_rmsnorm(n, d, s->x, d, &s->lw[i].in_norm, c->eps, s->h, d);
    cb_prof_lap(&t, CB_PROF_NORM);
    if (c->mixer[i] == CB_MIXER_ATTENTION) {
        if (seqs) cb_attn_decode(s->attn[i], n, seqs, pos, s->h, s->y);
        else cb_attn_prefill(s->attn[i], seq, s->len[seq], s->h, n, s->y);
    } else {
        if (seqs) cb_mamba_decode(s->mamba[i], n, seqs, s->h, s->y);
        else cb_mamba_prefill(s->mamba[i], seq, s->h, n, s->y);
    }
    t = cb_ctr_ns();
    add_residual((int64_t)n * d, s->x, s->y, multiplier(c->residual_multiplier));
    cb_prof_lap(&t, CB_PROF_RESIDUAL);
}

/* x += feed_forward(norm(x)) for layer i, the family's kind: the SwiGLU MLP (granitemoehybrid's shared
 * expert), plus the routed experts where the config has them (layers/moe.h). */
static void ff_step(cb_engine *s, int i, int n) {
    const cb_config *c = &s->cfg;
    const cb_layer_weights *lw = &s->lw[i];
    const int d = c->d_model;
    switch (s->fam->ff) {
    case CB_FF_NONE: return;
    case CB_FF_SWIGLU: {
        long long t = cb_ctr_ns();
        cb_rmsnorm(n, d, s->x, d, &lw->ff_norm, c->eps, s->h, d);
        cb_prof_lap(&t, CB_PROF_NORM);
        cb_mlp_forward(c, &lw->mlp, s->o.mode, n, s->h, s->y, cb_scratch_get());
        if (c->n_experts > 0) cb_moe_forward(c, &lw->moe, s->o.mode, n, s->h, s->y, cb_scratch_get());
        break;
    }
    }
    long long t = cb_ctr_ns();
    add_residual((int64_t)n * d, s->x, s->y, multiplier(c->residual_multiplier));
    cb_prof_lap(&t, CB_PROF_RESIDUAL);
}

/* x[n, d] through every layer; a prefill's residual stream is captured when asked (verify --layers). */
static void run_layers(cb_engine *s, int seq, const int *seqs, const int64_t *pos, int n, size_t capture_row0,
                       size_t capture_n) {
    const int d = s->cfg.d_model;
    for (int i = 0; i < s->cfg.n_layers; i++) {
        mixer_step(s, i, seq, seqs, pos, n);
        ff_step(s, i, n);
        if (s->capture && !seqs)
            memcpy(s->capture + ((size_t)(i + 1) * capture_n + capture_row0) * d, s->x, (size_t)n * d * sizeof(float));
    }
}

int cb_stack_prefill(cb_engine *s, int seq, const int32_t *tokens, int n, float *logits, bool all_logits, cb_err *err) {
    const cb_config *c = &s->cfg;
    int d = c->d_model;
    if (seq < 0 || seq >= s->o.max_batch) {
        cb_err_set(err, "prefill: sequence %d out of range [0, %d)", seq, s->o.max_batch);
        return -1;
    }
    if (n < 1) return 0;
    apply_threads(s);
    if (s->len[seq] + n > s->o.max_context) {
        cb_err_set(err, "prefill: sequence %d would hold %lld tokens, more than max_context %lld", seq,
                   (long long)(s->len[seq] + n), (long long)s->o.max_context);
        return -1;
    }
    if (check_tokens(s, tokens, n, err)) return -1;
    for (int start = 0; start < n; start += s->o.prefill_chunk) {
        int r = CB_MIN(s->o.prefill_chunk, n - start);
        long long t = cb_ctr_ns();
        embed_rows(s, tokens + start, r, s->x);
        cb_prof_lap(&t, CB_PROF_OTHER);
        if (s->capture) memcpy(s->capture + (size_t)start * d, s->x, (size_t)r * d * sizeof(float));
        run_layers(s, seq, NULL, NULL, r, (size_t)start, (size_t)n);
        s->len[seq] += r;
        if (!logits) continue;
        if (all_logits) head(s, r, s->x, logits + (size_t)start * c->vocab);
        else if (start + r == n) head(s, 1, s->x + (size_t)(r - 1) * d, logits);
    }
    cb_ctr.tokens += n;
    return 0;
}

int cb_stack_decode(cb_engine *s, int batch, const int *seqs, const int32_t *tokens, float *logits, cb_err *err) {
    if (batch < 1 || batch > s->o.max_batch) {
        cb_err_set(err, "decode: batch %d out of range [1, %d]", batch, s->o.max_batch);
        return -1;
    }
    for (int b = 0; b < batch; b++) {
        if (seqs[b] < 0 || seqs[b] >= s->o.max_batch) {
            cb_err_set(err, "decode: sequence %d out of range [0, %d)", seqs[b], s->o.max_batch);
            return -1;
        }
        for (int j = 0; j < b; j++)
            if (seqs[j] == seqs[b]) {
                cb_err_set(err, "decode: sequence %d appears twice in one batch", seqs[b]);
                return -1;
            }
        if (s->len[seqs[b]] + 1 > s->o.max_context) {
            cb_err_set(err, "decode: sequence %d is full (max_context %lld)", seqs[b], (long long)s->o.max_context);
            return -1;
        }
    }
    if (check_tokens(s, tokens, batch, err)) return -1;
    apply_threads(s);
    int64_t pos[batch];
    for (int b = 0; b < batch; b++) pos[b] = s->len[seqs[b]];
    embed_rows(s, tokens, batch, s->x);
    run_layers(s, -1, seqs, pos, batch, 0, 0);
    for (int b = 0; b < batch; b++) s->len[seqs[b]]++;
    if (logits) head(s, batch, s->x, logits);
    cb_ctr.tokens += batch;
    return 0;
}

int cb_stack_fill_synthetic(cb_engine *s, int seq, int64_t depth, uint64_t seed, cb_err *err) {
    if (seq < 0 || seq >= s->o.max_batch || depth < 0 || depth > s->o.max_context) {
        cb_err_set(err, "fill_synthetic: sequence %d / depth %lld outside [0, %d) / [0, %lld]", seq, (long long)depth,
                   s->o.max_batch, (long long)s->o.max_context);
        return -1;
    }
    apply_threads(s);
    cb_rng rng = { seed ^ (0x51ed270b27aULL * (uint64_t)(seq + 1)) };
    for (int i = 0; i < s->cfg.n_layers; i++) {
        if (s->attn[i]) cb_attn_fill_synthetic(s->attn[i], seq, depth, &rng);
        else cb_mamba_fill_synthetic(s->mamba[i], seq, depth, &rng);
    }
    s->len[seq] = depth;
    return 0;
}

int64_t cb_stack_seq_len(const cb_engine *s, int seq) {
    return seq >= 0 && seq < s->o.max_batch ? s->len[seq] : -1;
}

void cb_stack_memory(const cb_engine *s, cb_memory_report *out) {
    memset(out, 0, sizeof *out);
    out->weights = cb_bytes_add(s->m->weight_bytes, s->tile_bytes);
    for (int i = 0; i < s->cfg.n_layers; i++) {
        if (s->attn[i]) {
            size_t kv, sc;
            cb_attn_memory(s->attn[i], &kv, &sc);
            out->kv_cache = cb_bytes_add(out->kv_cache, kv);
        } else {
            size_t ssm, conv, sc;
            cb_mamba_memory(s->mamba[i], &ssm, &conv, &sc);
            out->ssm_state = cb_bytes_add(out->ssm_state, ssm);
            out->conv_state = cb_bytes_add(out->conv_state, conv);
        }
    }
    out->scratch = s->own_bytes + cb_scratch_size();
    out->total = cb_bytes_add(cb_bytes_add(cb_bytes_add(out->weights, out->kv_cache), cb_bytes_add(out->ssm_state, out->conv_state)),
                              out->scratch);
}

void cb_stack_reset(cb_engine *s, int seq) {
    /* a KV cache needs no reset: attention reads positions below the sequence's length only */
    for (int i = 0; i < s->cfg.n_layers; i++)
        if (s->mamba[i]) cb_mamba_reset(s->mamba[i], seq);
    for (int b = 0; b < s->o.max_batch; b++)
        if (seq < 0 || b == seq) s->len[b] = 0;
}

void cb_stack_capture_hidden(cb_engine *s, float *buf) { s->capture = buf; }
