/* Causal self-attention layer with its own KV cache (GQA/MQA/MHA, full or partial RoPE).
 * Shared by the transformer and Bamba engines. Input is the already-normalised hidden state; output
 * is o_proj(attention) — the caller adds it to the residual stream. */
#ifndef CB_ATTENTION_LAYER_H
#define CB_ATTENTION_LAYER_H

#include "../engine.h"

typedef struct cb_attn_layer cb_attn_layer;

int cb_attn_create(const cb_config *cfg, const cb_attn_weights *w, const cb_engine_opts *o, cb_attn_layer **out,
                   cb_err *err);
/* The stack checks sequences, batches and lengths once at its entry (engines/stack/stack.c); these calls
 * assume them: 0 <= seq < max_batch, distinct seqs in a batch, every position < max_context. */
/* n (1..prefill_chunk) new tokens of sequence seq at positions len .. len+n-1, len = tokens it holds.
 * x, out: [n, d_model]. */
void cb_attn_prefill(cb_attn_layer *l, int seq, int64_t len, const float *x, int n, float *out);
/* one token per sequence, at position pos[b] of sequence seqs[b]; x, out: [batch, d_model] */
void cb_attn_decode(cb_attn_layer *l, int batch, const int *seqs, const int64_t *pos, const float *x, float *out);
/* positions 0 .. depth-1 of sequence seq filled with plausible K/V (engine.h, fill_synthetic) */
void cb_attn_fill_synthetic(cb_attn_layer *l, int seq, int64_t depth, cb_rng *rng);
/* bytes: KV cache and scratch, as allocated (== cb_attn_plan for the same options) */
void cb_attn_memory(const cb_attn_layer *l, size_t *kv_bytes, size_t *scratch_bytes);
void cb_attn_plan(const cb_config *cfg, const cb_engine_opts *o, int64_t context, int batch, size_t *kv_bytes,
                  size_t *scratch_bytes);
void cb_attn_destroy(cb_attn_layer *l);

#endif
