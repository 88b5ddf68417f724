/* Causal self-attention layer with a preallocated KV cache (contract in attention.h).
 *
 * KV cache: one block per (sequence, KV head): K in 16-position transposed tiles then V rows (layout in
 * engines/kernels/attention.h), in o->kv_dtype. Exact mode should use f32 KV (ctxbench verify does):
 * bf16 KV rounds K and V to 8 bits of mantissa, ~1e-3 relative on the layer output. An 8-bit cache (fp8 /
 * int8) stores codes in the same layout (one byte each) and, in a second buffer, one fp32 scale per
 * (sequence, KV head, position) for K and one for V (engines/kernels/kv8.h, docs/quantization.md).
 *
 * Prefill: work items = (KV head, slice of its query heads, block of query tokens), ≤ 64 query rows each,
 * so a KV block is loaded once for the whole GQA group; each item runs the flash kernel over keys
 * [0, last visible] in one fixed block order. Decode: per (sequence, KV head) the context is cut into
 * fixed 1024-key partitions (flash-decoding); partials are merged per query head in partition order, so
 * the result never depends on the thread count. Partitions run in waves so scratch does not grow with
 * context. */
#include "attention_layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../counters.h"
#include "../kernels/attention.h"
#include "../kernels/kernels.h"
#include "../kernels/kv8.h"
#include "linear.h"
#include "scratch.h"

#define DECODE_PART 1024     /* keys per flash-decoding partition (fixed: results depend on it) */
#define DECODE_WAVE_ITEMS 64 /* (sequence, KV head, partition) items computed per wave */

struct cb_attn_layer {
    cb_attn_weights w;
    cb_mode mode;
    int d, H, KV, G, hd, rot; /* rot 0: no positional encoding */
    float scale;              /* score scale: 1/sqrt(hd), or the config's attention multiplier */
    int max_batch, rows;
    int64_t cap;
    cb_dtype kv_dtype, kv_round;
    size_t es;
    double *inv_freq;
    void *kv;
    float *kvs; /* 8-bit caches: [seq][KV head][K | V][cap] scales */
    size_t kv_bytes, scratch_bytes;
};

/* ---- sizes (shared by plan and create so they agree to the byte) ---- */
static int scratch_rows(const cb_engine_opts *o) { return CB_MAX(CB_MAX(o->prefill_chunk, o->max_batch), 1); }
static int wave_items_max(const cb_config *cfg, const cb_engine_opts *o) {
    return CB_MAX(DECODE_WAVE_ITEMS, CB_MAX(o->max_batch, 1) * cfg->n_kv_heads);
}
static size_t scratch_floats(const cb_config *cfg, const cb_engine_opts *o) {
    size_t hd = (size_t)cfg->head_dim, H = (size_t)cfg->n_heads, KV = (size_t)cfg->n_kv_heads, G = H / KV;
    size_t rows = (size_t)scratch_rows(o);
    return rows * (2 * H + 2 * KV) * hd                              /* q, k, v, attention output */
           + (size_t)wave_items_max(cfg, o) * G * (hd + 2)           /* decode partials */
           + (size_t)CB_MAX(o->max_batch, 1) * H * (hd + 2);        /* decode running merge */
}
/* codes (or elements) and, for 8-bit caches, the two fp32 scales of every (sequence, KV head, position) */
static size_t kv_code_bytes(const cb_config *cfg, cb_dtype t, int64_t context, int batch) {
    size_t per_token = 2 * (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim * cb_dtype_size(t);
    return cb_bytes_mul(cb_bytes_mul((size_t)CB_MAX(batch, 0), per_token), (size_t)CB_MAX(context, 0));
}
static size_t kv_scale_bytes(const cb_config *cfg, cb_dtype t, int64_t context, int batch) {
    if (!cb_kv_is_q8(t)) return 0;
    size_t per_token = 2 * (size_t)cfg->n_kv_heads * sizeof(float);
    return cb_bytes_mul(cb_bytes_mul((size_t)CB_MAX(batch, 0), per_token), (size_t)CB_MAX(context, 0));
}
static size_t kv_bytes_for(const cb_config *cfg, cb_dtype t, int64_t context, int batch) {
    return cb_bytes_add(kv_code_bytes(cfg, t, context, batch), kv_scale_bytes(cfg, t, context, batch));
}

void cb_attn_plan(const cb_config *cfg, const cb_engine_opts *o, int64_t context, int batch, size_t *kv_bytes,
                  size_t *scratch_bytes) {
    *kv_bytes = kv_bytes_for(cfg, o->kv_dtype, context, batch);
    *scratch_bytes = scratch_floats(cfg, o) * sizeof(float);
}

int cb_attn_create(const cb_config *cfg, const cb_attn_weights *w, const cb_engine_opts *o, cb_attn_layer **out,
                   cb_err *err) {
    *out = NULL;
    int H = cfg->n_heads, KV = cfg->n_kv_heads, hd = cfg->head_dim;
    if (H <= 0 || KV <= 0 || hd <= 0 || H % KV) {
        cb_err_set(err, "attention: bad head shape (heads %d, kv heads %d, head_dim %d)", H, KV, hd);
        return -1;
    }
    int rot = cfg->rope.type == CB_ROPE_NONE ? 0 : cfg->rope.rot_dim > 0 ? cfg->rope.rot_dim : hd;
    if (rot > hd || rot % 2) {
        cb_err_set(err, "attention: rotary dims %d must be even and <= head_dim %d", rot, hd);
        return -1;
    }
    if (hd > CB_FLASH_MAX_HD || H / KV > CB_FLASH_MAX_ROWS) {
        cb_err_set(err, "attention: head_dim %d (max %d) or GQA group %d (max %d) unsupported", hd, CB_FLASH_MAX_HD,
                   H / KV, CB_FLASH_MAX_ROWS);
        return -1;
    }
    if (o->kv_dtype != CB_F32 && o->kv_dtype != CB_F16 && o->kv_dtype != CB_BF16 && !cb_kv_is_q8(o->kv_dtype)) {
        cb_err_set(err, "attention: KV cache dtype %s unsupported (f32, f16, bf16, fp8, int8)", cb_dtype_name(o->kv_dtype));
        return -1;
    }
    if (o->kv_round != CB_F32 &&
        !((cb_kv_is_q8(o->kv_round) || o->kv_round == CB_BF16 || o->kv_round == CB_F16) && o->kv_dtype == CB_F32)) {
        cb_err_set(err, "attention: kv_round %s needs an f32 cache and bf16, f16, fp8 or int8 (got kv_dtype %s)",
                   cb_dtype_name(o->kv_round), cb_dtype_name(o->kv_dtype));
        return -1;
    }
    const cb_weight *need[4] = { &w->q, &w->k, &w->v, &w->o };
    const int64_t rows[4] = { (int64_t)H * hd, (int64_t)KV * hd, (int64_t)KV * hd, cfg->d_model };
    const int64_t cols[4] = { cfg->d_model, cfg->d_model, cfg->d_model, (int64_t)H * hd };
    for (int i = 0; i < 4; i++)
        if (!need[i]->data || need[i]->rows != rows[i] || need[i]->cols != cols[i]) {
            cb_err_set(err, "attention: %c_proj weight missing or shaped [%lld, %lld], expected [%lld, %lld]", "qkvo"[i],
                       (long long)need[i]->rows, (long long)need[i]->cols, (long long)rows[i], (long long)cols[i]);
            return -1;
        }
    cb_attn_layer *l = calloc(1, sizeof *l);
    if (!l) {
        cb_err_set(err, "attention: out of memory for the layer struct");
        return -1;
    }
    l->w = *w;
    l->mode = o->mode;
    l->d = cfg->d_model;
    l->H = H, l->KV = KV, l->G = H / KV, l->hd = hd, l->rot = rot;
    l->scale = cfg->attn_scale > 0 ? (float)cfg->attn_scale : (float)(1.0 / sqrt((double)hd));
    l->max_batch = o->max_batch;
    l->rows = scratch_rows(o);
    l->cap = o->max_context;
    l->kv_dtype = o->kv_dtype;
    l->kv_round = o->kv_round;
    l->es = cb_dtype_size(o->kv_dtype);
    cb_attn_plan(cfg, o, o->max_context, o->max_batch, &l->kv_bytes, &l->scratch_bytes);
    l->inv_freq = malloc(sizeof(double) * (size_t)(rot / 2 + 1));
    if (!l->inv_freq) {
        cb_err_set(err, "attention: out of memory for RoPE tables");
        goto fail;
    }
    cb_rope rp = cfg->rope;
    rp.rot_dim = rot;
    if (rot > 0) cb_rope_inv_freq(&rp, l->inv_freq);
    /* calloc: untouched pages cost nothing until written, and stale/unused slots are finite zeros. A cache
     * larger than physical memory is refused up front (overcommit would only fail later, mid-run). */
    size_t phys = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    const size_t scale_bytes = kv_scale_bytes(cfg, o->kv_dtype, o->max_context, o->max_batch);
    l->kv = l->kv_bytes <= phys ? cb_calloc_in(CB_ALLOC_KV, l->kv_bytes - scale_bytes, NULL) : NULL;
    if (l->kv && scale_bytes && !(l->kvs = cb_calloc_in(CB_ALLOC_KV, scale_bytes, NULL))) {
        cb_free(l->kv);
        l->kv = NULL;
    }
    if (!l->kv) {
        cb_err_set(err, "attention: cannot allocate the KV cache: %zu bytes (%d sequences x %lld tokens x %d KV heads x "
                   "%d x 2 x %s; physical memory %zu bytes)", l->kv_bytes, o->max_batch, (long long)o->max_context, KV, hd,
                   cb_dtype_name(o->kv_dtype), phys);
        goto fail;
    }
    if (cb_scratch_reserve(l->scratch_bytes, err)) {
        l->scratch_bytes = 0;
        goto fail;
    }
    *out = l;
    return 0;
fail:
    cb_attn_destroy(l);
    return -1;
}

void cb_attn_destroy(cb_attn_layer *l) {
    if (!l) return;
    if (l->scratch_bytes) cb_scratch_release(l->scratch_bytes);
    cb_free(l->kv);
    cb_free(l->kvs);
    free(l->inv_freq);
    free(l);
}

void cb_attn_memory(const cb_attn_layer *l, size_t *kv_bytes, size_t *scratch_bytes) {
    *kv_bytes = l->kv_bytes;
    *scratch_bytes = l->scratch_bytes;
}

/* ---- cache access ---- */
static inline char *k_base(const cb_attn_layer *l, int seq, int h) {
    return (char *)l->kv + ((size_t)seq * l->KV + (size_t)h) * 2 * (size_t)l->cap * l->hd * l->es;
}
static inline char *v_base(const cb_attn_layer *l, int seq, int h) {
    return k_base(l, seq, h) + (size_t)l->cap * l->hd * l->es;
}
static inline float *k_scales(const cb_attn_layer *l, int seq, int h) {
    return l->kvs ? l->kvs + ((size_t)seq * l->KV + (size_t)h) * 2 * (size_t)l->cap : NULL;
}
static inline float *v_scales(const cb_attn_layer *l, int seq, int h) {
    return l->kvs ? k_scales(l, seq, h) + l->cap : NULL;
}
static inline void store_elem(void *p, cb_dtype t, int64_t i, float x) {
    if (t == CB_F32) ((float *)p)[i] = x;
    else if (t == CB_BF16) ((uint16_t *)p)[i] = cb_f32_to_bf16(x);
    else ((uint16_t *)p)[i] = cb_f32_to_f16(x);
}
/* x rounded as a cache of dtype t would store it (bf16/f16 round to nearest even; 8-bit: the row's
 * reconstruction), kept in f32: the rounded twin verify judges reduced caches by. */
static void round_row(float *x, int n, cb_dtype t) {
    if (cb_kv_is_q8(t)) cb_kv8_round_row(x, n, t);
    else if (t == CB_BF16) for (int i = 0; i < n; i++) x[i] = cb_bf16_to_f32(cb_f32_to_bf16(x[i]));
    else if (t == CB_F16) for (int i = 0; i < n; i++) x[i] = cb_f16_to_f32(cb_f32_to_f16(x[i]));
}
/* k, v: [hd] of one (token, KV head), after RoPE: into position pos of the (seq, h) cache. 8-bit caches
 * get codes and scales; kv_round caches the rounded rows in f32. */
static void put_row(cb_attn_layer *l, int seq, int h, int64_t pos, const float *k, const float *v) {
    char *kb = k_base(l, seq, h), *vb = v_base(l, seq, h);
    const int hd = l->hd;
    if (cb_kv_is_q8(l->kv_dtype)) {
        uint8_t kc[CB_FLASH_MAX_HD], vc[CB_FLASH_MAX_HD];
        k_scales(l, seq, h)[pos] = cb_kv8_quantize_row(k, hd, l->kv_dtype, kc);
        v_scales(l, seq, h)[pos] = cb_kv8_quantize_row(v, hd, l->kv_dtype, vc);
        for (int d = 0; d < hd; d++) {
            ((uint8_t *)kb)[cb_kv_k_offset(pos, d, hd, l->cap, l->kv_dtype)] = kc[d];
            ((uint8_t *)vb)[cb_kv_v_offset(pos, d, hd, l->cap, l->kv_dtype)] = vc[d];
        }
        return;
    }
    float kr[CB_FLASH_MAX_HD], vr[CB_FLASH_MAX_HD];
    if (l->kv_round != CB_F32) {
        for (int d = 0; d < hd; d++) kr[d] = k[d], vr[d] = v[d];
        round_row(kr, hd, l->kv_round);
        round_row(vr, hd, l->kv_round);
        k = kr, v = vr;
    }
    for (int d = 0; d < hd; d++) {
        store_elem(kb, l->kv_dtype, cb_kv_k_offset(pos, d, hd, l->cap, l->kv_dtype), k[d]);
        store_elem(vb, l->kv_dtype, pos * hd + d, v[d]);
    }
}
/* k, v: [KV][hd] of one token after RoPE */
static void cache_put(cb_attn_layer *l, int seq, int64_t pos, const float *k, const float *v) {
    for (int h = 0; h < l->KV; h++) put_row(l, seq, h, pos, k + h * l->hd, v + h * l->hd);
}
static cb_kv_view kv_view(const cb_attn_layer *l, int seq, int h) {
    return (cb_kv_view){ .k = k_base(l, seq, h), .v = v_base(l, seq, h), .ks = k_scales(l, seq, h),
                         .vs = v_scales(l, seq, h), .dtype = l->kv_dtype, .hd = l->hd, .cap = l->cap };
}

/* Bytes of cache one position of one KV head occupies (and a decode step reads): K and V, plus their
 * two scales in an 8-bit cache. */
static long long pos_bytes(const cb_attn_layer *l) {
    return 2LL * l->hd * (long long)l->es + (cb_kv_is_q8(l->kv_dtype) ? 2LL * (long long)sizeof(float) : 0);
}

/* q, k, v for M tokens; RoPE at pos[i]; K/V appended to the caches of seqs[i]. */
static void qkv(cb_attn_layer *l, int M, const float *x, const int *seqs, const int64_t *pos, float *q, float *k,
                float *v) {
    const int qd = l->H * l->hd, kd = l->KV * l->hd;
    /* one call for the three projections: at decode one fork/join and one weight stream, not three */
    const cb_weight *W[3] = { &l->w.q, &l->w.k, &l->w.v }, *B[3] = { &l->w.q_b, &l->w.k_b, &l->w.v_b };
    float *const Y[3] = { q, k, v };
    const int64_t ld[3] = { qd, kd, kd };
    long long t = cb_ctr_ns();
    cb_linear_multi(l->mode, M, x, l->d, 3, W, B, Y, ld);
    cb_prof_lap(&t, CB_PROF_QKV);
#pragma omp parallel for schedule(static) if (M > 1)
    for (int i = 0; i < M; i++) {
        if (l->rot > 0) {
            cb_rope_apply_qk(q + (int64_t)i * qd, l->H, k + (int64_t)i * kd, l->KV, l->hd, l->rot, l->inv_freq, pos[i]);
        }
        cache_put(l, seqs[i], pos[i], k + (int64_t)i * kd, v + (int64_t)i * kd);
    }
    cb_prof_lap(&t, CB_PROF_ROPE_KV);
}

static void count_kv_written(const cb_attn_layer *l, int M) {
    cb_ctr.kv_bytes_written += (long long)M * l->KV * pos_bytes(l);
}

void cb_attn_prefill(cb_attn_layer *l, int seq, int64_t len, const float *x, int n, float *out) {
    const int H = l->H, KV = l->KV, G = l->G, hd = l->hd, qd = H * hd;
    float *q = cb_scratch_get(), *k = q + (size_t)l->rows * qd, *v = k + (size_t)l->rows * KV * hd;
    float *att = v + (size_t)l->rows * KV * hd;
    int seqs_buf[n];
    int64_t pos[n];
    for (int i = 0; i < n; i++) seqs_buf[i] = seq, pos[i] = len + i;
    qkv(l, n, x, seqs_buf, pos, q, k, v);

    /* work items: (KV head, query-head slice, token block), ≤ CB_FLASH_MAX_ROWS rows each */
    const int gs = G, bq = CB_MAX(1, CB_FLASH_MAX_ROWS / gs), nqb = (n + bq - 1) / bq;
    const int items = KV * nqb;
    const float scale = l->scale;
    long long t_attn = cb_ctr_ns();
    const long long t_attn0 = t_attn;
#pragma omp parallel for schedule(dynamic, 1)
    for (int it = 0; it < items; it++) {
        const int h = it / nqb, i0 = (it % nqb) * bq, nq = CB_MIN(bq, n - i0), R = gs * nq;
        float Q[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
        float O[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
        float m[CB_FLASH_MAX_ROWS], s[CB_FLASH_MAX_ROWS];
        int64_t qp[CB_FLASH_MAX_ROWS];
        for (int g = 0; g < gs; g++)
            for (int i = 0; i < nq; i++) {
                int r = g * nq + i;
                const float *src = q + (int64_t)(i0 + i) * qd + (int64_t)(h * G + g) * hd;
                for (int d = 0; d < hd; d++) Q[r * hd + d] = src[d] * scale;
                qp[r] = len + i0 + i;
                m[r] = -INFINITY, s[r] = 0.0f;
            }
        memset(O, 0, sizeof(float) * (size_t)R * hd);
        cb_kv_view kv = kv_view(l, seq, h);
        (l->mode == CB_MODE_FAST ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 0, len + i0 + nq, m, s, O);
        for (int g = 0; g < gs; g++)
            for (int i = 0; i < nq; i++) {
                int r = g * nq + i;
                float inv = 1.0f / s[r];
                float *dst = att + (int64_t)(i0 + i) * qd + (int64_t)(h * G + g) * hd;
                for (int d = 0; d < hd; d++) dst[d] = O[r * hd + d] * inv;
            }
    }
    cb_ctr.attention_ns += cb_ctr_ns() - t_attn0;
    cb_prof_lap(&t_attn, CB_PROF_ATTN);
    cb_linear(l->mode, n, att, qd, &l->w.o, &l->w.o_b, out, l->d);
    cb_prof_lap(&t_attn, CB_PROF_O);

    count_kv_written(l, n);
    long long kv_read = 0;
    for (int b = 0; b < nqb; b++) kv_read += len + (long long)b * bq + CB_MIN(bq, n - b * bq);
    cb_ctr.kv_bytes_read += kv_read * KV * pos_bytes(l);
    cb_ctr.flops += 4LL * hd * H * ((long long)n * len + (long long)n * (n + 1) / 2);
}

void cb_attn_decode(cb_attn_layer *l, int batch, const int *seqs, const int64_t *pos, const float *x, float *out) {
    const int H = l->H, KV = l->KV, G = l->G, hd = l->hd, qd = H * hd;
    float *q = cb_scratch_get(), *k = q + (size_t)l->rows * qd, *v = k + (size_t)l->rows * KV * hd;
    float *att = v + (size_t)l->rows * KV * hd;
    float *part = att + (size_t)l->rows * qd; /* [wave item][G][hd + 2]: O, m, l */
    const int wave_cap = CB_MAX(DECODE_WAVE_ITEMS, l->max_batch * KV);
    float *run = part + (size_t)wave_cap * G * (hd + 2); /* [batch][H][hd + 2]: O, M, L */
    qkv(l, batch, x, seqs, pos, q, k, v);
    long long t = cb_ctr_ns();

    const float scale = l->scale;
    int64_t max_parts = 0;
    for (int b = 0; b < batch; b++) max_parts = CB_MAX(max_parts, (pos[b] + 1 + DECODE_PART - 1) / DECODE_PART);
    for (int i = 0; i < batch * H; i++) {
        float *rr = run + (size_t)i * (hd + 2);
        memset(rr, 0, sizeof(float) * (size_t)hd);
        rr[hd] = -INFINITY, rr[hd + 1] = 0.0f;
    }
    /* partitions per (sequence, KV head) per wave; the wave size only groups work, merges stay in order */
    const int W = CB_MAX(1, DECODE_WAVE_ITEMS / (batch * KV));
    const int items = batch * KV * W;
    /* One parallel region for all waves and merges (worksharing loops inside): at batch 1 a layer's
     * attention takes tens of microseconds, and a fork/join per wave and per merge is a visible share. */
#pragma omp parallel
    for (int64_t p0 = 0; p0 < max_parts; p0 += W) {
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < items; it++) {
            const int b = it / (KV * W), h = (it / W) % KV;
            const int64_t p = p0 + it % W, ctx = pos[b] + 1;
            float *pt = part + (size_t)it * G * (hd + 2);
            if (p * DECODE_PART >= ctx) continue;
            float Q[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
            float O[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
            float m[CB_FLASH_MAX_ROWS], s[CB_FLASH_MAX_ROWS];
            int64_t qp[CB_FLASH_MAX_ROWS];
            for (int g = 0; g < G; g++) {
                const float *src = q + (int64_t)b * qd + (int64_t)(h * G + g) * hd;
                for (int d = 0; d < hd; d++) Q[g * hd + d] = src[d] * scale;
                qp[g] = pos[b];
                m[g] = -INFINITY, s[g] = 0.0f;
            }
            memset(O, 0, sizeof(float) * (size_t)G * hd);
            cb_kv_view kv = kv_view(l, seqs[b], h);
            (l->mode == CB_MODE_FAST ? cb_attn_flash_fast : cb_attn_flash)(G, Q, qp, &kv, p * DECODE_PART, CB_MIN(ctx, (p + 1) * DECODE_PART), m, s, O);
            for (int g = 0; g < G; g++) {
                memcpy(pt + (size_t)g * (hd + 2), O + g * hd, sizeof(float) * (size_t)hd);
                pt[(size_t)g * (hd + 2) + hd] = m[g];
                pt[(size_t)g * (hd + 2) + hd + 1] = s[g];
            }
        }
        /* merge this wave's partials into the running state, in partition order */
#pragma omp for schedule(static)
        for (int bh = 0; bh < batch * H; bh++) {
            const int b = bh / H, head = bh % H, h = head / G, g = head % G;
            const int64_t ctx = pos[b] + 1;
            float *rr = run + (size_t)bh * (hd + 2);
            for (int w = 0; w < W; w++) {
                if ((p0 + w) * DECODE_PART >= ctx) break;
                const float *pt = part + ((size_t)((b * KV + h) * W + w) * G + g) * (hd + 2);
                float M = fmaxf(rr[hd], pt[hd]);
                float a = expf(rr[hd] - M), c = expf(pt[hd] - M);
                for (int d = 0; d < hd; d++) rr[d] = rr[d] * a + pt[d] * c;
                rr[hd + 1] = rr[hd + 1] * a + pt[hd + 1] * c;
                rr[hd] = M;
            }
        }
    }
    for (int bh = 0; bh < batch * H; bh++) {
        const float *rr = run + (size_t)bh * (hd + 2);
        float inv = 1.0f / rr[hd + 1];
        float *dst = att + (int64_t)(bh / H) * qd + (int64_t)(bh % H) * hd;
        for (int d = 0; d < hd; d++) dst[d] = rr[d] * inv;
    }
    cb_prof_lap(&t, CB_PROF_ATTN);
    cb_linear(l->mode, batch, att, qd, &l->w.o, &l->w.o_b, out, l->d);
    cb_prof_lap(&t, CB_PROF_O);
    long long ctx_sum = 0;
    for (int b = 0; b < batch; b++) ctx_sum += pos[b] + 1;
    count_kv_written(l, batch);
    cb_ctr.kv_bytes_read += ctx_sum * KV * pos_bytes(l);
    cb_ctr.flops += 4LL * hd * H * ctx_sum;
}

/* Synthetic depth: K and V uniform in [-√3, √3) (unit variance, the scale of RoPE'd keys/values of a
 * normalised model), written straight into the cache. Deterministic for a seed whatever the threads. */
void cb_attn_fill_synthetic(cb_attn_layer *l, int seq, int64_t depth, cb_rng *rng) {
    const uint64_t seed = cb_rng_next(rng);
    const int64_t chunk = 1024, nch = (depth + chunk - 1) / chunk;
    const float a = 1.7320508f;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < (int64_t)l->KV * nch; it++) {
        const int h = (int)(it / nch);
        const int64_t c = it % nch;
        cb_rng r = { seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(it + 1)) };
        char *kb = k_base(l, seq, h), *vb = v_base(l, seq, h);
        const bool rows = cb_kv_is_q8(l->kv_dtype) || l->kv_round != CB_F32;
        for (int64_t p = c * chunk; p < CB_MIN(depth, (c + 1) * chunk); p++) {
            if (rows) { /* the same draws, quantised a row at a time like appended tokens */
                float kr[CB_FLASH_MAX_HD], vr[CB_FLASH_MAX_HD];
                for (int d = 0; d < l->hd; d++) kr[d] = a * cb_rng_uniform(&r), vr[d] = a * cb_rng_uniform(&r);
                put_row(l, seq, h, p, kr, vr);
                continue;
            }
            for (int d = 0; d < l->hd; d++) {
                store_elem(kb, l->kv_dtype, cb_kv_k_offset(p, d, l->hd, l->cap, l->kv_dtype), a * cb_rng_uniform(&r));
                store_elem(vb, l->kv_dtype, p * l->hd + d, a * cb_rng_uniform(&r));
            }
        }
    }
}
