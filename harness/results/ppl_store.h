/* `ctxbench ppl --db`: one ppl_runs row per invocation and one ppl_buckets row per context bucket plus the
 * total, in one transaction (schema in docs/schema.md, migration in store.c). */
#ifndef CB_PPL_STORE_H
#define CB_PPL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../stats/quality.h"

/* What was evaluated, for the ppl_runs row (docs/schema.md). compare_dtype NULL: no comparison model
 * (nll_q, dnll, kl, top1_agree stored as NULL). */
typedef struct {
    const char *git_commit; /* the build that measured it */
    const char *model, *weight_dtype, *compare_dtype, *mode, *tokens_file;
    const char *kv_dtype, *compare_kv_dtype; /* compare_kv_dtype: --compare-kv (compare_dtype is then NULL) */
    int64_t seed, n_tokens, context, stride;
    size_t weight_bytes, compare_weight_bytes;
} cb_ppl_record;

/* Store the record and its buckets (plus a total row, is_total = 1) into the results DB at db_path
 * (created or migrated). Returns the ppl_runs id, -1 on error. */
int64_t cb_ppl_store(const char *db_path, const cb_ppl_record *r, const cb_quality_bucket *b, int nb, cb_err *err);

#endif
