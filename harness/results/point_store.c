/* Writing points (point_store.h). The points INSERT and its bindings both come from CB_POINT_COLUMNS. */
#include "point_store.h"

#include <math.h>
#include <stdlib.h>

#include "store.h"
#include "columns.h"

static int bind_text(sqlite3_stmt *s, int i, const char *v) { return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT); }

static void bind_INT(sqlite3_stmt *s, int i, bool has, int64_t v) {
    if (has) sqlite3_bind_int64(s, i, v); else sqlite3_bind_null(s, i);
}
static void bind_REAL(sqlite3_stmt *s, int i, bool has, double v) {
    if (has && !isnan(v)) sqlite3_bind_double(s, i, v); else sqlite3_bind_null(s, i);
}
static void bind_TEXT(sqlite3_stmt *s, int i, bool has, const char *v) {
    if (has && v) bind_text(s, i, v); else sqlite3_bind_null(s, i);
}

static void bind_columns(sqlite3_stmt *s, const cb_point_record *rec) {
    int i = 1;
#define CB_COLUMN_BIND_KEY(has, value)
#define CB_COLUMN_BIND_INT(has, value) bind_INT(s, i++, (has), (int64_t)(value));
#define CB_COLUMN_BIND_REAL(has, value) bind_REAL(s, i++, (has), (double)(value));
#define CB_COLUMN_BIND_TEXT(has, value) bind_TEXT(s, i++, (has), (value));
#define CB_COLUMN_BIND(name, decl, since, kind, has, value, doc) CB_COLUMN_BIND_##kind(has, value)
    CB_POINT_COLUMNS(CB_COLUMN_BIND)
#undef CB_COLUMN_BIND
}

static int insert_row(sqlite3 *db, const cb_point_record *rec) {
    char *sql = cb_points_insert_sql();
    sqlite3_stmt *s = NULL;
    int rc = sql ? sqlite3_prepare_v2(db, sql, -1, &s, NULL) : SQLITE_NOMEM;
    free(sql);
    if (rc == SQLITE_OK) {
        bind_columns(s, rec);
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(s);
    return rc;
}

/* n rows of one of a point's tables through one INSERT whose first parameter is the point id: bind(s, k,
 * ctx) binds row k's other values from parameter 2 on. */
static int insert_rows(sqlite3 *db, const char *sql, int64_t pid, int n, void (*bind)(sqlite3_stmt *, int, const void *),
                       const void *ctx) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) return -1;
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, pid);
        bind(s, k, ctx);
        rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(s);
    return rc;
}

static void bind_sample(sqlite3_stmt *s, int k, const void *ctx) {
    sqlite3_bind_int(s, 2, k);
    sqlite3_bind_double(s, 3, ((const cb_point_result *)ctx)->samples[k]);
}

static void bind_counter(sqlite3_stmt *s, int k, const void *ctx) {
    const cb_counter_value *c = &((const cb_point_result *)ctx)->counters[k];
    bind_text(s, 2, c->name);
    if (c->ok) sqlite3_bind_int64(s, 3, c->value);
    else sqlite3_bind_null(s, 3);
    bind_text(s, 4, c->status);
}

typedef struct { const char *category; int64_t bytes; const char *source; } memory_row;
static void bind_memory(sqlite3_stmt *s, int k, const void *ctx) {
    const memory_row *m = &((const memory_row *)ctx)[k];
    bind_text(s, 2, m->category);
    sqlite3_bind_int64(s, 3, m->bytes);
    bind_text(s, 4, m->source);
}

/* The plan (analytic) and the engine's accounting (engine) by category, with the weights split by storage
 * under them, and the peak RSS (rss) of a point that ran. */
static int insert_memory(sqlite3 *db, int64_t pid, const cb_point_result *r) {
    static const char *const names[] = { "weights", "kv_cache", "ssm_state", "conv_state", "scratch", "total" };
    static const char *const split_names[] = { "weights_q8", "weights_scales", "weights_kept" };
    const struct { bool have; const cb_memory_report *m; const cb_weight_split *w; const char *source; } srcs[2] = {
        { r->have_plan, &r->plan, &r->wplan, "analytic" }, { r->have_engine, &r->engine, &r->wengine, "engine" } };
    memory_row rows[2 * 6 + 1 + 2 * 3];
    int n = 0;
    for (int k = 0; k < 2; k++) {
        if (!srcs[k].have) continue;
        const cb_memory_report *m = srcs[k].m;
        size_t vals[] = { m->weights, m->kv_cache, m->ssm_state, m->conv_state, m->scratch, m->total };
        for (int c = 0; c < 6; c++) rows[n++] = (memory_row){ names[c], (int64_t)vals[c], srcs[k].source };
    }
    if (r->have_engine) rows[n++] = (memory_row){ "peak_rss", r->peak_rss, "rss" };
    for (int k = 0; k < 2; k++) {
        if (!srcs[k].have) continue;
        size_t vals[] = { srcs[k].w->q8, srcs[k].w->scales, srcs[k].w->kept };
        for (int c = 0; c < 3; c++) rows[n++] = (memory_row){ split_names[c], (int64_t)vals[c], srcs[k].source };
    }
    return insert_rows(db, "INSERT INTO memory (point_id, category, bytes, source) VALUES (?,?,?,?)", pid, n, bind_memory, rows);
}

static int insert_samples(sqlite3 *db, int64_t pid, const cb_point_result *r) {
    return insert_rows(db, "INSERT INTO samples (point_id, rep, seconds) VALUES (?,?,?)", pid, r->n_samples, bind_sample, r);
}

static int insert_counters(sqlite3 *db, int64_t pid, const cb_point_result *r) {
    return insert_rows(db, "INSERT INTO counters (point_id, event, value, status) VALUES (?,?,?,?)", pid, r->n_counters,
                       bind_counter, r);
}

#define POINT_OF_RUN "p.run_id IN (SELECT id FROM runs WHERE workload_hash = ?1 AND git_commit = ?2) AND p.point_key = ?3"
#define SETTLED "(p.label IN ('measured','sampled','analytic') OR (p.label = 'refused' AND p.refused_bytes IS NOT NULL))"

/* The earlier failed / time-refused rows of a point tried again on resume, children first. */
static int supersede(sqlite3 *db, const char *hash, const char *commit, const char *key) {
    static const char *const sql[] = {
        "DELETE FROM samples WHERE point_id IN (SELECT p.id FROM points p WHERE " POINT_OF_RUN " AND NOT " SETTLED ")",
        "DELETE FROM memory WHERE point_id IN (SELECT p.id FROM points p WHERE " POINT_OF_RUN " AND NOT " SETTLED ")",
        "DELETE FROM counters WHERE point_id IN (SELECT p.id FROM points p WHERE " POINT_OF_RUN " AND NOT " SETTLED ")",
        "DELETE FROM points AS p WHERE " POINT_OF_RUN " AND NOT " SETTLED,
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db, sql[i], -1, &s, NULL) != SQLITE_OK) return -1;
        bind_text(s, 1, hash); bind_text(s, 2, commit); bind_text(s, 3, key);
        int rc = sqlite3_step(s);
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE) return -1;
    }
    return 0;
}

int cb_store_insert_point(sqlite3 *db, const cb_point_record *rec, cb_err *err) {
    if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) return -1;
    if ((!rec->resume_hash || supersede(db, rec->resume_hash, rec->resume_commit, rec->key) == 0) &&
        insert_row(db, rec) == SQLITE_OK) {
        int64_t pid = sqlite3_last_insert_rowid(db);
        if (!insert_samples(db, pid, rec->r) && !insert_memory(db, pid, rec->r) && !insert_counters(db, pid, rec->r))
            return cb_store_exec(db, "COMMIT", err);
    }
    cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db));
    cb_store_exec(db, "ROLLBACK", NULL);
    return -1;
}

bool cb_store_point_done(sqlite3 *db, const char *hash, const char *commit, const char *key) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM points p WHERE " POINT_OF_RUN " AND " SETTLED " LIMIT 1", -1, &s, NULL) != SQLITE_OK)
        return false;
    bind_text(s, 1, hash); bind_text(s, 2, commit); bind_text(s, 3, key);
    bool done = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return done;
}
