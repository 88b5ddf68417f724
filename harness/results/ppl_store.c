/* Storing a ppl evaluation (ppl_store.h). */
#include "ppl_store.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

#include "store.h"

static void text_or_null(sqlite3_stmt *s, int i, const char *v) {
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, i);
}

int64_t cb_ppl_store(const char *db_path, const cb_ppl_record *r, const cb_quality_bucket *b, int nb, cb_err *err) {
    sqlite3 *db;
    if (cb_store_open(db_path, &db, err)) return -1;
    sqlite3_stmt *s = NULL;
    int64_t id = -1;
    char now[32] = "";
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) goto done;
    if (sqlite3_prepare_v2(db, "INSERT INTO ppl_runs (started_utc, git_commit, model, weight_dtype, compare_dtype, mode, "
                               "seed, tokens_file, n_tokens, context, stride, weight_bytes, compare_weight_bytes, kv_dtype, "
                               "compare_kv_dtype) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &s, NULL) != SQLITE_OK)
        goto fail;
    int i = 1;
    text_or_null(s, i++, now); text_or_null(s, i++, r->git_commit); text_or_null(s, i++, r->model);
    text_or_null(s, i++, r->weight_dtype); text_or_null(s, i++, r->compare_dtype); text_or_null(s, i++, r->mode);
    sqlite3_bind_int64(s, i++, r->seed); text_or_null(s, i++, r->tokens_file); sqlite3_bind_int64(s, i++, r->n_tokens);
    sqlite3_bind_int64(s, i++, r->context); sqlite3_bind_int64(s, i++, r->stride);
    sqlite3_bind_int64(s, i++, (int64_t)r->weight_bytes);
    if (r->compare_dtype || r->compare_kv_dtype) sqlite3_bind_int64(s, i++, (int64_t)r->compare_weight_bytes);
    else sqlite3_bind_null(s, i++);
    text_or_null(s, i++, r->kv_dtype); text_or_null(s, i++, r->compare_kv_dtype);
    if (sqlite3_step(s) != SQLITE_DONE) goto fail;
    sqlite3_finalize(s);
    s = NULL;
    id = sqlite3_last_insert_rowid(db);
    if (sqlite3_prepare_v2(db, "INSERT INTO ppl_buckets (run_id, ctx_lo, ctx_hi, is_total, n_scored, nll, ppl, nll_q, dnll, "
                               "kl, top1_agree) VALUES (?,?,?,?,?,?,?,?,?,?,?)", -1, &s, NULL) != SQLITE_OK)
        goto fail;
    cb_quality_bucket all = { .lo = 1, .hi = r->context };
    for (int k = 0; k <= nb; k++) {
        const cb_quality_bucket *q = k < nb ? &b[k] : &all;
        if (k < nb) { all.n += q->n; all.nll += q->nll; all.nll_q += q->nll_q; all.kl += q->kl; all.top1_agree += q->top1_agree; }
        if (q->n == 0) continue; /* a bucket the file was too short to reach */
        const double n = (double)q->n, nll = q->nll / n;
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, id); sqlite3_bind_int64(s, 2, q->lo); sqlite3_bind_int64(s, 3, q->hi);
        sqlite3_bind_int(s, 4, k == nb); sqlite3_bind_int64(s, 5, q->n);
        sqlite3_bind_double(s, 6, nll); sqlite3_bind_double(s, 7, exp(nll));
        if (r->compare_dtype || r->compare_kv_dtype) {
            sqlite3_bind_double(s, 8, q->nll_q / n); sqlite3_bind_double(s, 9, q->nll_q / n - nll);
            sqlite3_bind_double(s, 10, q->kl / n); sqlite3_bind_double(s, 11, (double)q->top1_agree / n);
        } else {
            for (int c = 8; c <= 11; c++) sqlite3_bind_null(s, c);
        }
        if (sqlite3_step(s) != SQLITE_DONE) goto fail;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (cb_store_exec(db, "COMMIT", err)) { id = -1; goto done; }
    goto done;
fail:
    cb_err_set(err, "%s: sqlite: %s", db_path, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    cb_store_exec(db, "ROLLBACK", NULL);
    id = -1;
done:
    cb_store_close(db);
    return id;
}
