/* Checkpoint -> cb_model: the family's tensor names (engines/stack/family.h) bound to the shared layer
 * structs, with the exact shape the config implies checked for every tensor. */
#include "model.h"
#include "quantize.h"
#include "../stack/family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct {
    cb_model *m;
    cb_err *err;
    const char *origin; /* checkpoint dir, for tensors that are missing altogether */
} binder;

static const char *tensor_file(const cb_model *m, const cb_tensor *t) { return m->st.paths[t->file_index]; }

static void fmt_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t o = 0;
    o += snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++) o += snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Whether t has exactly `shape`; else an error naming the tensor, the expected and the found shape. */
static int check_shape(binder *b, const cb_tensor *t, const char *name, int ndim, const int64_t *shape) {
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return 0;
    char want[128], found[128];
    fmt_shape(want, sizeof want, shape, ndim);
    fmt_shape(found, sizeof found, t->shape, t->ndim);
    cb_err_set(b->err, "%s: tensor %s: expected shape %s, found %s", tensor_file(b->m, t), name, want, found);
    return -1;
}

/* Find `name` and check its shape; ndim 1 -> vector, 2 -> matrix, 3 -> conv [rows, 1, cols]. */
static int bind_shape(binder *b, const char *name, int ndim, const int64_t *shape, bool optional, cb_weight *w) {
    memset(w, 0, sizeof *w);
    cb_tensor *t = (cb_tensor *)cb_st_find(&b->m->st, name);
    if (!t) {
        if (optional) return 0;
        char want[128];
        fmt_shape(want, sizeof want, shape, ndim);
        cb_err_set(b->err, "%s: tensor %s: missing (expected shape %s)", b->origin, name, want);
        return -1;
    }
    if (check_shape(b, t, name, ndim, shape)) return -1;
    if (t->dtype != CB_F32 && t->dtype != CB_F16 && t->dtype != CB_BF16) {
        cb_err_set(b->err, "%s: tensor %s: dtype %s not supported for weights (expected F32, F16 or BF16)",
                   tensor_file(b->m, t), name, cb_dtype_safetensors_name(t->dtype));
        return -1;
    }
    w->data = t->data;
    w->dtype = t->dtype;
    w->rows = ndim == 1 ? 1 : shape[0];
    w->cols = ndim == 1 ? shape[0] : shape[ndim - 1];
    if (!t->used) b->m->weight_bytes += t->nbytes;
    t->used = true;
    return 0;
}

static int bind_mat(binder *b, const char *name, int64_t rows, int64_t cols, bool optional, cb_weight *w) {
    int64_t s[2] = { rows, cols };
    return bind_shape(b, name, 2, s, optional, w);
}
static int bind_vec(binder *b, const char *name, int64_t n, bool optional, cb_weight *w) {
    int64_t s[1] = { n };
    return bind_shape(b, name, 1, s, optional, w);
}

static bool is_8bit(const cb_tensor *t) { return t && (t->dtype == CB_F8_E4M3 || t->dtype == CB_I8); }

/* An 8-bit tensor t (F8_E4M3 / I8 with its `<name>_scale` companion, docs/quantization.md) of the given
 * shape, bound through cb_quantized_bind: a matrix whose rows run over all but the last dimension. */
static int bind_8bit(binder *b, cb_tensor *t, const char *name, int ndim, const int64_t *shape, cb_weight *w) {
    memset(w, 0, sizeof *w);
    if (check_shape(b, t, name, ndim, shape)) return -1;
    cb_err inner = { "" };
    if (cb_quantized_bind(b->m, t, cb_quantized_find_scale(b->m, name), name, w, &inner)) {
        cb_err_set(b->err, "%s: %s", tensor_file(b->m, t), inner.msg);
        return -1;
    }
    b->m->weight_bytes += cb_weight_bytes(w); /* codes + per-row scales */
    return 0;
}

/* A linear projection [rows, cols]: f32/f16/bf16 as any weight, or already 8-bit. */
static int bind_lin(binder *b, const char *name, int64_t rows, int64_t cols, cb_weight *w) {
    cb_tensor *t = (cb_tensor *)cb_st_find(&b->m->st, name);
    if (!is_8bit(t)) return bind_mat(b, name, rows, cols, false, w);
    const int64_t shape[2] = { rows, cols };
    return bind_8bit(b, t, name, 2, shape, w);
}

static int bind_attn(binder *b, const char *p, cb_attn_weights *a) {
    const cb_config *c = &b->m->cfg;
    int64_t d = c->d_model, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    char n[512];
#define N(suffix) (snprintf(n, sizeof n, "%s.%s", p, suffix), n)
    if (bind_lin(b, N("q_proj.weight"), q, d, &a->q) || bind_lin(b, N("k_proj.weight"), kv, d, &a->k) ||
        bind_lin(b, N("v_proj.weight"), kv, d, &a->v) || bind_lin(b, N("o_proj.weight"), d, q, &a->o))
        return -1;
    if (c->attn_bias &&
        (bind_vec(b, N("q_proj.bias"), q, false, &a->q_b) || bind_vec(b, N("k_proj.bias"), kv, false, &a->k_b) ||
         bind_vec(b, N("v_proj.bias"), kv, false, &a->v_b) || bind_vec(b, N("o_proj.bias"), d, false, &a->o_b)))
        return -1;
    return 0;
}

static int bind_mlp(binder *b, const char *p, cb_mlp_weights *w) {
    const cb_config *c = &b->m->cfg;
    char n[512];
    if (bind_lin(b, N("gate_proj.weight"), c->d_ff, c->d_model, &w->gate) ||
        bind_lin(b, N("up_proj.weight"), c->d_ff, c->d_model, &w->up) ||
        bind_lin(b, N("down_proj.weight"), c->d_model, c->d_ff, &w->down))
        return -1;
    if (c->mlp_bias && (bind_vec(b, N("gate_proj.bias"), c->d_ff, false, &w->gate_b) ||
                        bind_vec(b, N("up_proj.bias"), c->d_ff, false, &w->up_b) ||
                        bind_vec(b, N("down_proj.bias"), c->d_model, false, &w->down_b)))
        return -1;
    return 0;
}

/* granitemoehybrid's shared expert: shared_mlp.input_linear [2 ff, d] holds gate (first ff rows, the
 * half transformers passes through silu) and up; output_linear [d, ff] is down. */
static int bind_shared_mlp(binder *b, const char *p, cb_mlp_weights *w) {
    const cb_config *c = &b->m->cfg;
    char n[512];
    cb_weight in;
    if (bind_lin(b, N("input_linear.weight"), 2 * (int64_t)c->d_ff, c->d_model, &in) ||
        bind_lin(b, N("output_linear.weight"), c->d_model, c->d_ff, &w->down))
        return -1;
    w->gate = cb_weight_rows(&in, 0, c->d_ff);
    w->up = cb_weight_rows(&in, c->d_ff, c->d_ff);
    return 0;
}

/* A 3-D expert tensor [E, rows, cols] bound as the matrix [E * rows, cols] (8-bit: one scale per row). */
static int bind_experts(binder *b, const char *name, int64_t E, int64_t rows, int64_t cols, cb_weight *w) {
    cb_tensor *t = (cb_tensor *)cb_st_find(&b->m->st, name);
    int64_t shape[3] = { E, rows, cols };
    if (is_8bit(t)) return bind_8bit(b, t, name, 3, shape, w);
    if (bind_shape(b, name, 3, shape, false, w)) return -1;
    w->rows = E * rows;
    return 0;
}

static int bind_moe(binder *b, const char *p, cb_moe_weights *w) {
    const cb_config *c = &b->m->cfg;
    const int64_t E = c->n_experts, d = c->d_model, f = c->d_ff_expert;
    char n[512];
    if (bind_mat(b, N("router.layer.weight"), E, d, false, &w->router) ||
        bind_experts(b, N("input_linear.weight"), E, 2 * f, d, &w->experts_in) ||
        bind_experts(b, N("output_linear.weight"), E, d, f, &w->experts_out))
        return -1;
    return 0;
}

static int bind_mamba(binder *b, const char *p, cb_mamba_weights *w) {
    const cb_config *c = &b->m->cfg;
    char n[512];
    /* in_proj: a checkpoint may prepend 2*d_mlp rows (unused by this mixer); skip them. */
    N("in_proj.weight");
    const cb_tensor *t = cb_st_find(&b->m->st, n);
    int64_t rows = c->m_in_proj_rows;
    if (t && t->ndim == 2 && t->shape[1] == c->d_model && t->shape[0] > rows) {
        int64_t extra = t->shape[0] - rows;
        if (extra % 2 != 0) {
            cb_err_set(b->err, "%s: tensor %s: %lld rows, expected %lld (+ an even 2*d_mlp), found odd excess %lld",
                       tensor_file(b->m, t), n, (long long)t->shape[0], (long long)rows, (long long)extra);
            return -1;
        }
        rows = t->shape[0];
    }
    if (bind_lin(b, n, rows, c->d_model, &w->in_proj)) return -1;
    int64_t skip = rows - c->m_in_proj_rows;
    if (skip > 0) {
        w->in_proj.data = (const char *)w->in_proj.data + (size_t)skip * c->d_model * cb_dtype_size(w->in_proj.dtype);
        w->in_proj.rows = c->m_in_proj_rows;
        if (w->in_proj.scale) w->in_proj.scale += skip;
    }
    if (c->m_proj_bias) {
        if (bind_vec(b, N("in_proj.bias"), rows, false, &w->in_proj_b)) return -1;
        if (skip > 0) {
            w->in_proj_b.data = (const char *)w->in_proj_b.data + (size_t)skip * cb_dtype_size(w->in_proj_b.dtype);
            w->in_proj_b.cols = c->m_in_proj_rows;
        }
    }
    int64_t conv_shape[3] = { c->m_conv_dim, 1, c->m_conv };
    if (bind_shape(b, N("conv1d.weight"), 3, conv_shape, false, &w->conv_w)) return -1;
    if (c->m_conv_bias && bind_vec(b, N("conv1d.bias"), c->m_conv_dim, false, &w->conv_b)) return -1;
    if (bind_vec(b, N("dt_bias"), c->m_heads, false, &w->dt_bias) || bind_vec(b, N("A_log"), c->m_heads, false, &w->A_log) ||
        bind_vec(b, N("D"), c->m_heads, false, &w->D) || bind_vec(b, N("norm.weight"), c->m_d_inner, false, &w->norm) ||
        bind_lin(b, N("out_proj.weight"), c->d_model, c->m_d_inner, &w->out_proj))
        return -1;
    if (c->m_proj_bias && bind_vec(b, N("out_proj.bias"), c->d_model, false, &w->out_proj_b)) return -1;
    return 0;
#undef N
}

int cb_model_bind(cb_model *m, cb_err *err) {
    const cb_config *c = &m->cfg;
    binder b = { m, err, m->source[0] ? m->source : m->name };
    for (int i = 0; i < m->st.n_tensors; i++) m->st.tensors[i].used = false;
    m->weight_bytes = 0;
    const cb_family *fam = cb_family_for(c);
    if (!fam) {
        cb_err_set(err, "%s: no model family for model_type '%s'", b.origin, c->model_type_str);
        return -1;
    }
    const cb_tensor_names *nm = &fam->names;
    if (bind_mat(&b, nm->embed, c->vocab, c->d_model, false, &m->embed) ||
        bind_vec(&b, nm->final_norm, c->d_model, false, &m->final_norm))
        return -1;
    if (c->tie_embeddings) {
        m->lm_head = m->embed;
        const cb_tensor *t = cb_st_find(&m->st, nm->lm_head);
        if (t) {
            fprintf(stderr, "warning: %s: tie_word_embeddings is true: tensor %s ignored, using %s\n",
                    tensor_file(m, t), nm->lm_head, nm->embed);
            ((cb_tensor *)t)->used = true;
        }
    } else if (bind_lin(&b, nm->lm_head, c->vocab, c->d_model, &m->lm_head)) {
        return -1;
    }
    for (int i = 0; i < c->n_layers; i++) {
        cb_layer_weights *L = &m->layers[i];
        memset(L, 0, sizeof *L);
        L->kind = c->mixer[i];
        char p[128], n[256];
        snprintf(p, sizeof p, nm->layer, i);
        snprintf(n, sizeof n, "%s.%s", p, nm->mixer_norm);
        if (bind_vec(&b, n, c->d_model, false, &L->in_norm)) return -1;
        if (L->kind == CB_MIXER_ATTENTION) {
            snprintf(n, sizeof n, "%s.%s", p, nm->attention);
            if (bind_attn(&b, n, &L->attn)) return -1;
        } else {
            snprintf(n, sizeof n, "%s.%s", p, nm->mamba);
            if (bind_mamba(&b, n, &L->mamba)) return -1;
        }
        if (fam->ff == CB_FF_SWIGLU) {
            snprintf(n, sizeof n, "%s.%s", p, nm->ff_norm);
            if (bind_vec(&b, n, c->d_model, false, &L->ff_norm)) return -1;
            snprintf(n, sizeof n, "%s.%s", p, nm->ff);
            if (nm->gate_up_stacked ? bind_shared_mlp(&b, n, &L->mlp) : bind_mlp(&b, n, &L->mlp)) return -1;
        }
        if (nm->moe && c->n_experts > 0) {
            snprintf(n, sizeof n, "%s.%s", p, nm->moe);
            if (bind_moe(&b, n, &L->moe)) return -1;
        }
    }
    if (cb_model_note_q8(m, err)) return -1;
    for (int i = 0; i < m->st.n_tensors; i++)
        if (!m->st.tensors[i].used)
            fprintf(stderr, "warning: %s: unexpected tensor %s ignored\n", tensor_file(m, &m->st.tensors[i]),
                    m->st.tensors[i].name);
    return 0;
}

int cb_model_load(const char *dir, cb_model *m, cb_err *err) {
    memset(m, 0, sizeof *m);
    if (cb_config_load(dir, &m->cfg, err)) return -1;
    if (cb_st_open(dir, &m->st, err)) return -1;
    m->from_checkpoint = true;
    snprintf(m->name, sizeof m->name, "%s", dir);
    snprintf(m->source, sizeof m->source, "%s", dir);
    if (cb_model_bind(m, err)) {
        cb_model_free(m);
        return -1;
    }
    return 0;
}

void cb_model_free(cb_model *m) {
    if (!m) return;
    cb_model_quant_release(m); /* 8-bit copies made by cb_model_quantize */
    cb_st_close(&m->st); /* checkpoint maps, or a preset's in-memory tensor table */
    if (m->owned_mapped) munmap(m->owned, m->owned_bytes);
    else cb_free(m->owned);
    memset(m, 0, sizeof *m);
}
