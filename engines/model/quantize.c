/* Quantising a loaded model's linear weights to 8 bits, binding pre-quantised F8_E4M3 checkpoints,
 * and weight bytes by dtype. The model owns the new buffers through a chain hung on m->quant_owned. */
#include "quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/gemm8.h"

typedef struct quant_block {
    struct quant_block *next;
    size_t bytes;
} quant_block;

static void *own(cb_model *m, size_t bytes, cb_err *err) {
    size_t head = (sizeof(quant_block) + 63) & ~(size_t)63; /* keep the payload 64-byte aligned */
    quant_block *b = cb_alloc_in(CB_ALLOC_WEIGHTS, head + bytes, err);
    if (!b) return NULL;
    b->next = m->quant_owned;
    b->bytes = bytes;
    m->quant_owned = b;
    m->quant_owned_bytes += bytes;
    return (char *)b + head;
}

void cb_model_quant_release(cb_model *m) {
    quant_block *b = m->quant_owned;
    while (b) {
        quant_block *n = b->next;
        cb_free(b);
        b = n;
    }
    m->quant_owned = NULL;
    m->quant_owned_bytes = 0;
}

/* Every linear projection the model holds (lm_head only when untied). */
typedef struct {
    cb_weight *w;
    int layer; /* -1 for lm_head */
    const char *name;
} linear_ref;

#define LINEARS_PER_LAYER 11
#define MAX_LINEARS CB_MAX_LINEARS
_Static_assert(CB_MAX_LINEARS == LINEARS_PER_LAYER * CB_MAX_LAYERS + 1, "quantize.h's bound");

/* The routed experts are linears too (quantised per row over (expert, output row)); the router is not. */
static int list_linears(cb_model *m, linear_ref *out) {
    static const char *names[LINEARS_PER_LAYER] = { "q_proj", "k_proj", "v_proj", "o_proj", "in_proj", "out_proj",
                                                    "gate_proj", "up_proj", "down_proj", "experts input_linear",
                                                    "experts output_linear" };
    int n = 0;
    for (int i = 0; i < m->cfg.n_layers && i < CB_MAX_LAYERS; i++) {
        cb_layer_weights *L = &m->layers[i];
        cb_weight *ws[LINEARS_PER_LAYER] = { &L->attn.q, &L->attn.k, &L->attn.v, &L->attn.o, &L->mamba.in_proj,
                                             &L->mamba.out_proj, &L->mlp.gate, &L->mlp.up, &L->mlp.down,
                                             &L->moe.experts_in, &L->moe.experts_out };
        for (int j = 0; j < LINEARS_PER_LAYER; j++)
            if (ws[j]->data) out[n++] = (linear_ref){ ws[j], i, names[j] };
    }
    if (m->lm_head.data && m->lm_head.data != m->embed.data) out[n++] = (linear_ref){ &m->lm_head, -1, "lm_head" };
    return n;
}

static int quantize_one(cb_model *m, const linear_ref *r, cb_dtype to, cb_err *err) {
    cb_weight *w = r->w;
    char what[64];
    if (r->layer < 0) snprintf(what, sizeof what, "%s", r->name);
    else snprintf(what, sizeof what, "layer %d %s", r->layer, r->name);
    if (w->dtype == to) return 0;
    if (cb_dtype_is_q8(w->dtype)) {
        cb_err_set(err, "quantize %s: %s is already %s, cannot convert to %s", m->name, what,
                   cb_dtype_name(w->dtype), cb_dtype_name(to));
        return -1;
    }
    size_t n = (size_t)w->rows * (size_t)w->cols, codes = (n + 63) & ~(size_t)63;
    size_t old = cb_weight_bytes(w);
    uint8_t *q = own(m, codes + (size_t)w->rows * sizeof(float), err);
    if (!q) return -1;
    float *s = (float *)(q + codes);
    cb_err inner = { "" };
    if (cb_quantize_rows(w->data, w->dtype, w->rows, w->cols, to, q, s, &inner)) {
        cb_err_set(err, "quantize %s: %s: %s", m->name, what, inner.msg);
        return -1;
    }
    *w = (cb_weight){ .data = q, .dtype = to, .rows = w->rows, .cols = w->cols, .scale = s };
    m->weight_bytes = m->weight_bytes - old + cb_weight_bytes(w);
    return 0;
}

int cb_model_quantize(cb_model *m, cb_dtype to, cb_err *err) {
    if (!cb_dtype_is_q8(to)) {
        cb_err_set(err, "quantize %s: target %s is not an 8-bit format (fp8 or int8)", m->name, cb_dtype_name(to));
        return -1;
    }
    linear_ref *refs = malloc(sizeof(linear_ref) * MAX_LINEARS);
    if (!refs) { cb_err_set(err, "quantize: out of memory"); return -1; }
    int n = list_linears(m, refs), rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = quantize_one(m, &refs[i], to, err);
    free(refs);
    if (rc == 0) { m->cfg.q8 = to; m->cfg.q8_keep_lm_head = false; } /* plans now count 8-bit bytes */
    return rc;
}

int cb_model_dequantize(cb_model *m, cb_err *err) {
    linear_ref *refs = malloc(sizeof(linear_ref) * MAX_LINEARS);
    if (!refs) { cb_err_set(err, "%s: out of memory", m->name); return -1; }
    int n = list_linears(m, refs), rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        cb_weight *w = refs[i].w;
        if (!cb_dtype_is_q8(w->dtype)) continue;
        const size_t cnt = (size_t)w->rows * (size_t)w->cols, old = cb_weight_bytes(w);
        float *f = own(m, cnt * sizeof(float), err);
        if (!f) { rc = -1; break; }
        const uint8_t *q = w->data;
        for (int64_t r = 0; r < w->rows; r++)
            for (int64_t k = 0; k < w->cols; k++) {
                size_t j = (size_t)r * (size_t)w->cols + (size_t)k;
                f[j] = w->scale[r] * (w->dtype == CB_F8_E4M3 ? cb_fp8_to_f32(q[j]) : (float)(int8_t)q[j]);
            }
        *w = (cb_weight){ .data = f, .dtype = CB_F32, .rows = w->rows, .cols = w->cols };
        m->weight_bytes = m->weight_bytes - old + cb_weight_bytes(w);
    }
    free(refs);
    if (rc == 0) m->cfg.q8 = CB_F32; /* no 8-bit projection left */
    return rc;
}

int cb_model_note_q8(cb_model *m, cb_err *err) {
    linear_ref *refs = malloc(sizeof(linear_ref) * MAX_LINEARS);
    if (!refs) { cb_err_set(err, "%s: out of memory", m->name); return -1; }
    int n = list_linears(m, refs), rc = 0;
    cb_dtype found = CB_DTYPE_COUNT;
    const linear_ref *first = NULL;
    for (int i = 0; i < n && rc == 0; i++) {
        cb_dtype t = refs[i].w->dtype;
        if (!cb_dtype_is_q8(t)) continue;
        if (found != CB_DTYPE_COUNT && t != found) {
            cb_err_set(err, "%s: layer %d %s is %s but layer %d %s is %s: one 8-bit format per model", m->name,
                       refs[i].layer, refs[i].name, cb_dtype_safetensors_name(t), first->layer, first->name,
                       cb_dtype_safetensors_name(found));
            rc = -1;
        }
        found = t, first = &refs[i];
    }
    if (rc == 0 && found != CB_DTYPE_COUNT) {
        m->cfg.q8 = found;
        m->cfg.q8_keep_lm_head = m->lm_head.data && m->lm_head.data != m->embed.data && !cb_dtype_is_q8(m->lm_head.dtype);
    }
    free(refs);
    return rc;
}

cb_tensor *cb_quantized_find_scale(const cb_model *m, const char *name) {
    char buf[512];
    size_t n = strlen(name);
    if (n > 7 && strcmp(name + n - 7, ".weight") == 0) {
        snprintf(buf, sizeof buf, "%s_scale", name); /* "<x>.weight_scale" */
        const cb_tensor *t = cb_st_find(&m->st, buf);
        if (t) return (cb_tensor *)t;
    }
    snprintf(buf, sizeof buf, "%s_scale", name);
    return (cb_tensor *)cb_st_find(&m->st, buf);
}

int cb_quantized_bind(cb_model *m, cb_tensor *w, cb_tensor *scale, const char *name, cb_weight *out, cb_err *err) {
    if ((w->dtype != CB_F8_E4M3 && w->dtype != CB_I8) || (w->ndim != 2 && w->ndim != 3)) {
        cb_err_set(err, "%s: expected an F8_E4M3 or I8 matrix [out, in] (or experts [E, out, in]), found %s with %d dims",
                   name, cb_dtype_safetensors_name(w->dtype), w->ndim);
        return -1;
    }
    if (!scale) {
        cb_err_set(err, "%s: %s weight without a scale tensor (expected %s_scale: [out, 1], [out] or a "
                   "scalar, F32/BF16/F16)", name, cb_dtype_safetensors_name(w->dtype), name);
        return -1;
    }
    const int64_t rows = w->ndim == 3 ? w->shape[0] * w->shape[1] : w->shape[0]; /* experts: rows over (e, out) */
    int64_t n = 1;
    for (int i = 0; i < scale->ndim; i++) n *= scale->shape[i];
    bool per_row = n == rows && (scale->ndim == 1 || (scale->ndim == 2 && scale->shape[1] == 1) ||
                                 (scale->ndim == 3 && scale->shape[2] == 1));
    bool per_tensor = n == 1;
    if ((!per_row && !per_tensor) ||
        (scale->dtype != CB_F32 && scale->dtype != CB_BF16 && scale->dtype != CB_F16)) {
        cb_err_set(err, "%s: scale %s must be F32/BF16/F16 of shape [%lld, 1], [%lld] or a scalar; found %s with "
                   "%lld elements", name, scale->name, (long long)rows, (long long)rows,
                   cb_dtype_safetensors_name(scale->dtype), (long long)n);
        return -1;
    }
    float *s = own(m, (size_t)rows * sizeof(float), err);
    if (!s) return -1;
    for (int64_t r = 0; r < rows; r++) {
        s[r] = cb_load_f32(scale->data, scale->dtype, per_row ? (size_t)r : 0);
        if (!(s[r] > 0.0f) || !isfinite(s[r])) {
            cb_err_set(err, "%s: scale %s[%lld] = %g is not a positive finite number", name, scale->name,
                       (long long)r, (double)s[r]);
            return -1;
        }
    }
    *out = (cb_weight){ .data = w->data, .dtype = w->dtype, .rows = rows, .cols = w->shape[w->ndim - 1], .scale = s };
    w->used = scale->used = true;
    return 0;
}

void cb_weight_bytes_by_dtype(const cb_model *m, size_t out[CB_DTYPE_COUNT]) {
    memset(out, 0, sizeof(size_t) * CB_DTYPE_COUNT);
#define ADD(w) do { if ((w).data) out[(w).dtype] += cb_weight_bytes(&(w)); } while (0)
    ADD(m->embed);
    ADD(m->final_norm);
    if (m->lm_head.data != m->embed.data) ADD(m->lm_head);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const cb_layer_weights *L = &m->layers[i];
        ADD(L->in_norm); ADD(L->ff_norm);
        ADD(L->attn.q); ADD(L->attn.k); ADD(L->attn.v); ADD(L->attn.o);
        ADD(L->attn.q_b); ADD(L->attn.k_b); ADD(L->attn.v_b); ADD(L->attn.o_b);
        ADD(L->mamba.in_proj); ADD(L->mamba.in_proj_b); ADD(L->mamba.conv_w); ADD(L->mamba.conv_b);
        ADD(L->mamba.dt_bias); ADD(L->mamba.A_log); ADD(L->mamba.D); ADD(L->mamba.norm);
        ADD(L->mamba.out_proj); ADD(L->mamba.out_proj_b);
        ADD(L->mlp.gate); ADD(L->mlp.up); ADD(L->mlp.down);
        ADD(L->mlp.gate_b); ADD(L->mlp.up_b); ADD(L->mlp.down_b);
        ADD(L->moe.router); ADD(L->moe.experts_in); ADD(L->moe.experts_out);
    }
#undef ADD
}

void cb_model_weight_split(const cb_model *m, cb_weight_split *out) {
    size_t by[CB_DTYPE_COUNT];
    cb_weight_bytes_by_dtype(m, by);
    memset(out, 0, sizeof *out);
    linear_ref refs[MAX_LINEARS];
    int n = list_linears((cb_model *)m, refs);
    for (int i = 0; i < n; i++)
        if (cb_dtype_is_q8(refs[i].w->dtype)) out->scales += (size_t)refs[i].w->rows * sizeof(float);
    for (int t = 0; t < CB_DTYPE_COUNT; t++) {
        if (cb_dtype_is_q8((cb_dtype)t)) out->q8 += by[t];
        else out->kept += by[t];
    }
    out->q8 -= out->scales; /* by-dtype counts the scales with their weights */
    out->total = out->q8 + out->scales + out->kept;
}

int cb_model_linears(cb_model *m, cb_weight **out, int max) {
    linear_ref refs[MAX_LINEARS];
    int n = list_linears(m, refs);
    for (int i = 0; i < n && i < max; i++) out[i] = refs[i].w;
    return n < max ? n : max;
}
