/* Mamba2 mixer (in_proj -> conv1d -> SSD -> gated RMSNorm -> out_proj) with per-sequence SSM state
 * [H, P, N] fp32 and conv state [conv_dim, K-1]. Shared by the Mamba2 and Bamba engines. Prefill uses
 * the chunked SSD algorithm; decode the recurrence. Input already normalised; output not yet added. */
#ifndef CB_MAMBA2_MIXER_H
#define CB_MAMBA2_MIXER_H

#include "../engine.h"

typedef struct cb_mamba_layer cb_mamba_layer;

int cb_mamba_create(const cb_config *cfg, const cb_mamba_weights *w, const cb_engine_opts *o, cb_mamba_layer **out,
                    cb_err *err);
/* The stack checks sequences and batches once at its entry (engines/stack/stack.c); these calls assume
 * 0 <= seq < max_batch and distinct seqs in a batch. */
/* n (0..prefill_chunk) new tokens of sequence seq, continuing its state. x, out: [n, d_model]. */
void cb_mamba_prefill(cb_mamba_layer *l, int seq, const float *x, int n, float *out);
void cb_mamba_decode(cb_mamba_layer *l, int batch, const int *seqs, const float *x, float *out);
/* a plausible SSM and conv state for sequence seq (same size and cost at any depth) */
void cb_mamba_fill_synthetic(cb_mamba_layer *l, int seq, int64_t depth, cb_rng *rng);
void cb_mamba_reset(cb_mamba_layer *l, int seq);
void cb_mamba_memory(const cb_mamba_layer *l, size_t *ssm_bytes, size_t *conv_bytes, size_t *scratch_bytes);
void cb_mamba_plan(const cb_config *cfg, const cb_engine_opts *o, int batch, size_t *ssm_bytes, size_t *conv_bytes,
                   size_t *scratch_bytes);
void cb_mamba_destroy(cb_mamba_layer *l);

#endif
