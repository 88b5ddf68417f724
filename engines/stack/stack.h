/* The engine: one layer stack that every built-in model family runs (docs/engines.md).
 *   embedding -> for each layer { x += mixer(norm(x)); x += feed_forward(norm(x)) } -> final norm -> LM head
 * The mixer is the shared attention layer or the shared Mamba2 mixer, per cfg->mixer[i]; the
 * feed-forward is the family's (none, SwiGLU). A family (family.h, engines/families/) says which of
 * these its layers use and how its tensors are named; these functions are its engine table. */
#ifndef CB_STACK_H
#define CB_STACK_H

#include "../engine.h"

void cb_stack_plan(const cb_config *cfg, const cb_engine_opts *o, int64_t context, int batch, cb_memory_report *out);
int cb_stack_create(const cb_model *m, const cb_engine_opts *o, cb_engine **out, cb_err *err);
int cb_stack_prefill(cb_engine *s, int seq, const int32_t *tokens, int n, float *logits, bool all_logits, cb_err *err);
int cb_stack_decode(cb_engine *s, int batch, const int *seqs, const int32_t *tokens, float *logits, cb_err *err);
int cb_stack_fill_synthetic(cb_engine *s, int seq, int64_t depth, uint64_t seed, cb_err *err);
int64_t cb_stack_seq_len(const cb_engine *s, int seq);
void cb_stack_memory(const cb_engine *s, cb_memory_report *out);
void cb_stack_reset(cb_engine *s, int seq);
void cb_stack_destroy(cb_engine *s);
/* During the next prefill, copy the residual stream after the embedding and after each layer into
 * buf [n_layers + 1][n][d_model] (NULL: stop). */
void cb_stack_capture_hidden(cb_engine *s, float *buf);

#define CB_STACK_ENGINE_OPS                                                                                \
    .plan = cb_stack_plan, .create = cb_stack_create, .prefill = cb_stack_prefill, .decode = cb_stack_decode, \
    .fill_synthetic = cb_stack_fill_synthetic, .seq_len = cb_stack_seq_len, .memory = cb_stack_memory,        \
    .reset = cb_stack_reset, .destroy = cb_stack_destroy, .capture_hidden = cb_stack_capture_hidden

#endif
