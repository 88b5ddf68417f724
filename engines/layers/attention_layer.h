/* Causal self-attention layer with its own KV cache (GQA/MQA/MHA, full or partial RoPE).
 * Shared by the transformer and Bamba engines. Input is the already-normalised hidden state; output
 * is o_proj(attention) — the caller adds it to the residual stream. */
#ifndef CB_ATTENTION_LAYER_H
#define CB_ATTENTION_LAYER_H

#include "../engine.h"

typedef struct cb_attn_layer cb_attn_layer;

int cb_attn_create(const cb_config *cfg, const cb_attn_weights *w, const cb_engine_opts *o, cb_attn_layer **out,
                   cb_err *err);
/* n new tokens of sequence seq, at positions seq_len .. seq_len+n-1. x, out: [n, d_model]. n <= o->prefill_chunk. */
int cb_attn_prefill(cb_attn_layer *l, int seq, const float *x, int n, float *out, cb_err *err);
/* one token per sequence; x, out: [batch, d_model] */
int cb_attn_decode(cb_attn_layer *l, int batch, const int *seqs, const float *x, float *out, cb_err *err);
int cb_attn_fill_synthetic(cb_attn_layer *l, int seq, int64_t depth, cb_rng *rng, cb_err *err);
int64_t cb_attn_seq_len(const cb_attn_layer *l, int seq);
void cb_attn_reset(cb_attn_layer *l, int seq); /* seq < 0: all */
/* bytes: KV cache and scratch, as allocated (== cb_attn_plan for the same options) */
void cb_attn_memory(const cb_attn_layer *l, size_t *kv_bytes, size_t *scratch_bytes);
void cb_attn_plan(const cb_config *cfg, const cb_engine_opts *o, int64_t context, int batch, size_t *kv_bytes,
                  size_t *scratch_bytes);
void cb_attn_destroy(cb_attn_layer *l);

#endif
