/* Quality maths (see quality.h). Everything accumulates in double: an NLL of ~10 nats summed over 1M
 * tokens must keep 1e-4 agreement with a reference. */
#include "quality.h"


#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double logsumexp(const float *x, int n) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = fmax(mx, (double)x[i]);
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

double cb_nll(const float *logits, int vocab, int target) { return logsumexp(logits, vocab) - (double)logits[target]; }

double cb_kl(const float *lp, const float *lq, int vocab, bool *top1_same) {
    double zp = logsumexp(lp, vocab), zq = logsumexp(lq, vocab), kl = 0;
    int ap = 0, aq = 0;
    for (int i = 0; i < vocab; i++) {
        double lpi = lp[i] - zp, lqi = lq[i] - zq;
        kl += exp(lpi) * (lpi - lqi);
        if (lp[i] > lp[ap]) ap = i;
        if (lq[i] > lq[aq]) aq = i;
    }
    if (top1_same) *top1_same = ap == aq;
    return kl > 0 ? kl : 0; /* rounding can leave -1e-17 for identical distributions */
}

int cb_quality_buckets(const char *spec, int64_t context, cb_quality_bucket *out, int max, cb_err *err) {
    int n = 0;
    int64_t lo = 1;
    if (!spec) {
        for (int64_t hi = 16; hi < context && n < max - 1; hi *= 4, n++) {
            out[n] = (cb_quality_bucket){ .lo = lo, .hi = hi };
            lo = hi + 1;
        }
    } else {
        const char *p = spec;
        while (*p) {
            char *end;
            errno = 0;
            long long hi = strtoll(p, &end, 10);
            if (end == p || errno || hi < lo || (*end && *end != ',') || n >= max - 1) {
                cb_err_set(err, "--buckets '%s': expected increasing positive integers separated by commas", spec);
                return -1;
            }
            if (hi >= context) break;
            out[n++] = (cb_quality_bucket){ .lo = lo, .hi = hi };
            lo = hi + 1;
            p = *end ? end + 1 : end;
        }
    }
    out[n++] = (cb_quality_bucket){ .lo = lo, .hi = context };
    return n;
}

int cb_quality_bucket_of(const cb_quality_bucket *b, int nb, int64_t len) {
    for (int i = 0; i < nb; i++)
        if (len <= b[i].hi) return i;
    return nb - 1;
}

int64_t cb_quality_windows(int64_t T, int64_t N, int64_t S, int64_t *begin, int64_t *end, int64_t *first_scored,
                           int64_t max) {
    int64_t w = 0, prev_end = 0;
    /* the next window starts at most at end - 1, so the first token it must score has context */
    for (int64_t b = 0; w < max; b = CB_MIN(b + S, prev_end - 1)) {
        int64_t e = CB_MIN(b + N, T);
        begin[w] = b;
        end[w] = e;
        first_scored[w] = CB_MAX(prev_end, b + 1);
        prev_end = e;
        w++;
        if (e == T) break;
    }
    return w;
}

#define PPL_CHUNK 128 /* rows of logits held at once: 128 × vocab 128256 × 4 B = 66 MB */

int cb_ppl_eval(const cb_model *m, const cb_model *mq, const cb_engine_opts *o, const cb_engine_opts *oq,
                const int32_t *ids, int64_t T, int64_t N, int64_t S, cb_quality_bucket *b, int nb, cb_err *err) {
    const cb_engine_ops *ops = cb_engine_for_config(&m->cfg);
    if (!ops) { cb_err_set(err, "%s: no engine registered for this model_type", m->name); return -1; }
    const int V = m->cfg.vocab;
    cb_engine_opts eo = *o;
    eo.max_context = N;
    eo.max_batch = 1;
    cb_engine_opts eoq = oq ? *oq : *o;
    eoq.max_context = N;
    eoq.max_batch = 1;
    int64_t nw_max = T / (S > 0 ? S : 1) + 2;
    int64_t *wb = malloc(3 * (size_t)nw_max * sizeof(int64_t));
    float *lg = malloc((size_t)PPL_CHUNK * V * sizeof(float));
    float *lq = mq ? malloc((size_t)PPL_CHUNK * V * sizeof(float)) : NULL;
    cb_engine *e = NULL, *eq = NULL;
    int rc = -1;
    if (!wb || !lg || (mq && !lq)) { cb_err_set(err, "ppl: out of memory for %d logit rows", PPL_CHUNK); goto done; }
    if (ops->create(m, &eo, &e, err)) goto done;
    if (mq && ops->create(mq, &eoq, &eq, err)) goto done;
    int64_t nw = cb_quality_windows(T, N, S, wb, wb + nw_max, wb + 2 * nw_max, nw_max);
    for (int64_t w = 0; w < nw; w++) {
        const int64_t begin = wb[w], end = wb[nw_max + w], first = wb[2 * nw_max + w];
        ops->reset(e, 0);
        if (eq) ops->reset(eq, 0);
        for (int64_t c0 = begin; c0 < end; c0 += PPL_CHUNK) {
            int cn = (int)CB_MIN(PPL_CHUNK, end - c0);
            /* row r (token c0 + r) predicts token c0 + r + 1: scored when that is in [first, end) */
            bool any = c0 + cn >= first && c0 + 1 < end;
            if (ops->prefill(e, 0, ids + c0, cn, any ? lg : NULL, true, err)) goto done;
            if (eq && ops->prefill(eq, 0, ids + c0, cn, any ? lq : NULL, true, err)) goto done;
            if (!any) continue;
            for (int r = 0; r < cn; r++) {
                int64_t t = c0 + r + 1;
                if (t < first || t >= end) continue;
                cb_quality_bucket *bk = &b[cb_quality_bucket_of(b, nb, t - begin)];
                bk->n++;
                bk->nll += cb_nll(lg + (size_t)r * V, V, ids[t]);
                if (eq) {
                    bool same;
                    bk->nll_q += cb_nll(lq + (size_t)r * V, V, ids[t]);
                    bk->kl += cb_kl(lg + (size_t)r * V, lq + (size_t)r * V, V, &same);
                    bk->top1_agree += same;
                }
            }
        }
    }
    rc = 0;
done:
    if (e) ops->destroy(e);
    if (eq) ops->destroy(eq);
    free(wb);
    free(lg);
    free(lq);
    return rc;
}
