/* The reference file of `ctxbench verify` (a fixture's reference.safetensors, written by transformers):
 * input_ids I32 [T] and logits F32 [T, vocab], optionally hidden_states F32 [L+1, T, d] for --layers.
 * Every shape and every token id is checked here, before an engine reads any of it. */
#ifndef CB_VERIFY_REFERENCE_H
#define CB_VERIFY_REFERENCE_H

#include "../../engines/model/safetensors.h"

#define CB_VERIFY_MAX_TOKENS (1 << 24)

typedef struct {
    cb_safetensors st;
    const int32_t *ids;    /* [T], each in [0, vocab) */
    const float *logits;   /* [T, vocab] */
    const float *hidden;   /* [L+1, T, d], or NULL when absent or of another shape (why: hidden_why) */
    int T;
    char hidden_why[160];
} cb_verify_reference;

/* Open and check `path` against a model of `vocab` tokens, `n_layers` layers of width `d_model`.
 * -1 with err naming the file, the tensor and what was expected. */
int cb_verify_reference_open(const char *path, int vocab, int n_layers, int d_model, cb_verify_reference *r, cb_err *err);
void cb_verify_reference_close(cb_verify_reference *r);

#endif
