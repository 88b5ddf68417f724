/* Quality maths for `ctxbench ppl` (docs/quantization.md): teacher-forced NLL from logits (log-softmax in double),
 * KL divergence / top-1 agreement between two models' distributions, position buckets. */
#ifndef CB_QUALITY_H
#define CB_QUALITY_H

#include "../../engines/common.h"

/* -log softmax(logits)[target], computed in double (max-shifted log-sum-exp). */
double cb_nll(const float *logits, int vocab, int target);
/* KL(p ‖ q) with p = softmax(lp), q = softmax(lq), in double; *top1_same = argmax agreement
 * (first index on ties). */
double cb_kl(const float *lp, const float *lq, int vocab, bool *top1_same);

/* Per-bucket sums. A scored position j (0-based index, inside its window, of the logit row that
 * predicts the next token: context length j + 1) falls in the bucket with lo <= j + 1 <= hi. */
typedef struct {
    int64_t lo, hi;                  /* context lengths, inclusive */
    int64_t n;                       /* scored positions */
    double nll, nll_q, kl;           /* sums (nll_q, kl only with a comparison model) */
    int64_t top1_agree;
} cb_quality_bucket;

/* Buckets from a comma list of upper bounds ("16,64,256") or, when spec is NULL, powers of 4 from 16
 * up to `context`; the last bucket always ends at `context`. Returns the count, -1 on a bad spec. */
int cb_quality_buckets(const char *spec, int64_t context, cb_quality_bucket *out, int max, cb_err *err);
/* Index of the bucket holding context length len (buckets as made above). */
int cb_quality_bucket_of(const cb_quality_bucket *b, int nb, int64_t len);


/* Scored windows for teacher forcing over T tokens with window N and stride S (HF perplexity recipe):
 * window w covers [begin, end) with begin = min(begin_prev + S, end_prev - 1) (0 first), end = min(begin + N, T); it scores the predictions of
 * tokens t in [max(prev_end, begin + 1), end) (prev_end = end of the previous window, 0 at first), each
 * from the logit row t - 1 - begin. The last window is the first with end == T. Returns the count. */
int64_t cb_quality_windows(int64_t T, int64_t N, int64_t S, int64_t *begin, int64_t *end, int64_t *first_scored,
                           int64_t max);


/* Teacher-forced evaluation through an engine (the engine registered for m's config): windows as
 * cb_quality_windows, each prefilled from empty in chunks with all-position logits. With mq (the same
 * architecture, other weights, e.g. 8-bit) both run on the same tokens and the buckets also get NLL_q,
 * KL(m ‖ mq) and top-1 agreement. Buckets are accumulated into (not cleared). */
#include "../../engines/engine.h"
/* oq: the options of mq's engine (NULL: o), e.g. the same weights with an 8-bit KV cache. */
int cb_ppl_eval(const cb_model *m, const cb_model *mq, const cb_engine_opts *o, const cb_engine_opts *oq,
                const int32_t *ids, int64_t T, int64_t N, int64_t S, cb_quality_bucket *b, int nb, cb_err *err);

#endif
