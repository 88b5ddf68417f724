/* The layer stack every built-in engine runs: embedding -> for each layer { x += mixer(norm(x));
 * if MLP: x += mlp(norm(x)) } -> final norm -> LM head. The mixer is the shared attention layer or
 * the shared Mamba2 mixer, per cfg->mixer[i]. Engines (transformer/, mamba2/, bamba/) are thin: they
 * say which configs they accept and delegate here, so the hybrid is literally the same layers. */
#ifndef CB_STACK_H
#define CB_STACK_H

#include "../engine.h"

typedef struct cb_stack cb_stack;

int cb_stack_create(const cb_model *m, const cb_engine_opts *o, cb_stack **out, cb_err *err);
int cb_stack_prefill(cb_stack *s, int seq, const int32_t *tokens, int n, float *logits, bool all_logits, cb_err *err);
int cb_stack_decode(cb_stack *s, int batch, const int *seqs, const int32_t *tokens, float *logits, cb_err *err);
int cb_stack_fill_synthetic(cb_stack *s, int seq, int64_t depth, uint64_t seed, cb_err *err);
int64_t cb_stack_seq_len(const cb_stack *s, int seq);
void cb_stack_memory(const cb_stack *s, cb_memory_report *out);
void cb_stack_plan(const cb_config *cfg, const cb_engine_opts *o, int64_t context, int batch, cb_memory_report *out);
void cb_stack_reset(cb_stack *s, int seq);
void cb_stack_destroy(cb_stack *s);
/* Residual stream after each layer for the last prefill call, for debugging/verify: [n_layers+1][n, d]
 * (NULL unless enabled). */
void cb_stack_capture_hidden(cb_stack *s, float *buf);

/* Engine-table adapters (see engines/transformer/transformer.c for a complete engine in a few lines). */
int cb_stack_op_create(const cb_model *m, const cb_engine_opts *o, cb_engine **out, cb_err *err);
int cb_stack_op_prefill(cb_engine *e, int seq, const int32_t *t, int n, float *logits, bool all, cb_err *err);
int cb_stack_op_decode(cb_engine *e, int batch, const int *seqs, const int32_t *t, float *logits, cb_err *err);
int cb_stack_op_fill_synthetic(cb_engine *e, int seq, int64_t depth, uint64_t seed, cb_err *err);
int64_t cb_stack_op_seq_len(const cb_engine *e, int seq);
void cb_stack_op_memory(const cb_engine *e, cb_memory_report *out);
void cb_stack_op_reset(cb_engine *e, int seq);
void cb_stack_op_destroy(cb_engine *e);
void cb_stack_op_capture_hidden(cb_engine *e, float *buf);

#define CB_STACK_ENGINE_OPS                                                                                  \
    .plan = cb_stack_plan, .create = cb_stack_op_create, .prefill = cb_stack_op_prefill,                     \
    .decode = cb_stack_op_decode, .fill_synthetic = cb_stack_op_fill_synthetic, .seq_len = cb_stack_op_seq_len, \
    .memory = cb_stack_op_memory, .reset = cb_stack_op_reset, .destroy = cb_stack_op_destroy, .capture_hidden = cb_stack_op_capture_hidden

#endif
