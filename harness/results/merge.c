/* Merging results databases (merge.h). Each input is snapshotted into a temporary database in the
 * current schema, attached as `src`, and copied in one transaction: ids renumbered through temporary
 * maps, every other column by name (points: the column table, columns.h; the other tables as SQLite
 * lists them). */
#include "merge.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "columns.h"
#include "store.h"

static void note(const cb_merge_report *rep, const char *fmt, ...) {
    if (!rep || !rep->note) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rep->note(rep->ctx, msg);
}

/* IN copied through a read-only connection into a temporary database, migrated to the current schema
 * there, so the copy statements see one schema and IN itself is never written. */
static int snapshot(const char *in, char *tmp, size_t n, cb_err *err) {
    sqlite3 *src, *dst = NULL;
    if (cb_store_open_read(in, &src, err)) return -1; /* read-only; an older schema arrives migrated in memory */
    snprintf(tmp, n, "%s/ctxbench-merge-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cb_err_set(err, "cannot create a temporary copy in %s: %s", tmp, strerror(errno));
        sqlite3_close(src);
        return -1;
    }
    close(fd);
    int rc = -1;
    if (sqlite3_open(tmp, &dst) != SQLITE_OK) {
        cb_err_set(err, "%s: %s", tmp, sqlite3_errmsg(dst));
        goto out;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    int step = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
    if (sqlite3_backup_finish(b) != SQLITE_OK || step != SQLITE_DONE) {
        cb_err_set(err, "reading it failed: %s", sqlite3_errmsg(dst));
        goto out;
    }
    rc = cb_store_exec(dst, "PRAGMA journal_mode=DELETE", err);
out:
    sqlite3_close(dst);
    sqlite3_close(src);
    if (rc) unlink(tmp);
    return rc;
}

/* A source run's twin in main: same start, host, workload, commit, shard, finish. */
#define SAME_RUN                                                                                               \
    "m.started_utc = r.started_utc AND m.workload_hash = r.workload_hash AND m.git_commit = r.git_commit"      \
    " AND m.shard = r.shard AND m.hostname IS r.hostname AND m.finished_utc IS r.finished_utc"
#define SAME_PPL_RUN                                                                                           \
    "m.started_utc = r.started_utc AND m.git_commit = r.git_commit AND m.model = r.model"                      \
    " AND m.weight_dtype = r.weight_dtype AND m.compare_dtype IS r.compare_dtype AND m.mode = r.mode"          \
    " AND m.seed = r.seed AND m.tokens_file = r.tokens_file AND m.n_tokens = r.n_tokens"                       \
    " AND m.context = r.context AND m.stride = r.stride"
#define POINTS_OF(db, run) "(SELECT COUNT(*) FROM " db ".points WHERE run_id = " run ")"

static int64_t count(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* Notes for runs already in main, and an error for a twin holding a different number of points (merged
 * before it finished, or resumed since): merging it again would duplicate some points and miss others. */
static int report_twins(sqlite3 *db, const char *in, const char *out, const cb_merge_report *rep, cb_err *err) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT r.id, m.id, r.workload_name, r.started_utc, " POINTS_OF("src", "r.id") ", "
                           POINTS_OF("main", "m.id") " FROM src.runs r JOIN main.runs m ON " SAME_RUN " ORDER BY r.id",
                           -1, &s, NULL) != SQLITE_OK) {
        cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db));
        return -1;
    }
    int rc = 0;
    while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
        long long rid = sqlite3_column_int64(s, 0), mid = sqlite3_column_int64(s, 1);
        long long np_src = sqlite3_column_int64(s, 4), np_main = sqlite3_column_int64(s, 5);
        const char *name = (const char *)sqlite3_column_text(s, 2), *start = (const char *)sqlite3_column_text(s, 3);
        if (np_src == np_main)
            note(rep, "%s run %lld (workload %s, started %s) is already in %s as run %lld: skipped", in, rid,
                 name ? name : "?", start ? start : "?", out, mid);
        else {
            cb_err_set(err, "run %lld (workload %s, started %s) is in %s as run %lld with %lld points, here with %lld: it "
                       "changed after that merge (merged while still running?); merge into a new database instead", rid, name ? name : "?",
                       start ? start : "?", out, mid, np_main, np_src);
            rc = -1;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

/* "t.a, t.b, ..." over the columns of main.`table` but `skip` (the renumbered id), as SQLite lists them.
 * sqlite3_malloc'd; NULL on error. */
static char *table_columns(sqlite3 *db, const char *table, const char *prefix, const char *skip) {
    char *q = sqlite3_mprintf("SELECT group_concat(%Q || name, ', ') FROM pragma_table_info(%Q) WHERE name <> %Q",
                              prefix, table, skip);
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (q && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        out = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_free(q);
    return out;
}

/* Copy the rows of src.`table` whose `key` is in temp.`map` (old -> new), `key` renumbered, in source
 * order. */
static int copy_renumbered(sqlite3 *db, const char *table, const char *key, const char *map, cb_err *err) {
    char *cols = table_columns(db, table, "", key), *src_cols = table_columns(db, table, "t.", key);
    char *sql = cols && src_cols ? sqlite3_mprintf("INSERT INTO main.%s (%s, %s) SELECT m.new, %s FROM src.%s t JOIN temp.%s m"
                                                   " ON m.old = t.%s ORDER BY t.rowid", table, key, cols, src_cols, table, map, key)
                                 : NULL;
    int rc = sql ? cb_store_exec(db, sql, err) : -1;
    if (!sql) cb_err_set(err, "cannot list the columns of %s: %s", table, sqlite3_errmsg(db));
    sqlite3_free(cols), sqlite3_free(src_cols), sqlite3_free(sql);
    return rc;
}

/* points: id through point_map and run_id through run_map; the other columns from the column table. */
static int copy_points(sqlite3 *db, cb_err *err) {
    char *cols = cb_points_column_list(""), *src_cols = cb_points_column_list("p.");
    char *sql = cols && src_cols ? sqlite3_mprintf("INSERT INTO main.points (id, run_id, %s) SELECT pm.new, rm.new, %s FROM src.points p"
                                                   " JOIN temp.point_map pm ON pm.old = p.id JOIN temp.run_map rm ON rm.old = p.run_id"
                                                   " ORDER BY p.id", cols, src_cols)
                                 : NULL;
    int rc = sql ? cb_store_exec(db, sql, err) : -1;
    if (!sql) cb_err_set(err, "out of memory listing the points columns");
    free(cols), free(src_cols), sqlite3_free(sql);
    return rc;
}

/* Every table of one input: runs, then their points and the points' rows, then the ppl runs not yet in
 * main and their buckets. */
static int copy_all(sqlite3 *db, cb_err *err) {
    static const struct { const char *table, *key, *map; } children[] = {
        { "samples", "point_id", "point_map" }, { "memory", "point_id", "point_map" },
        { "counters", "point_id", "point_map" }, { "peer_tests", "point_id", "point_map" },
    };
    if (cb_store_exec(db, "UPDATE temp.run_map SET new = old + (SELECT COALESCE(MAX(id), 0) FROM main.runs)", err) ||
        copy_renumbered(db, "runs", "id", "run_map", err) ||
        cb_store_exec(db, "INSERT INTO temp.point_map SELECT id, id + (SELECT COALESCE(MAX(id), 0) FROM main.points)"
                          " FROM src.points WHERE run_id IN (SELECT old FROM temp.run_map)", err) ||
        copy_points(db, err))
        return -1;
    for (size_t i = 0; i < sizeof children / sizeof children[0]; i++)
        if (copy_renumbered(db, children[i].table, children[i].key, children[i].map, err)) return -1;
    return cb_store_exec(db, "CREATE TEMP TABLE ppl_map AS SELECT id AS old, id + (SELECT COALESCE(MAX(id), 0) FROM main.ppl_runs)"
                             " AS new FROM src.ppl_runs r WHERE NOT EXISTS (SELECT 1 FROM main.ppl_runs m WHERE " SAME_PPL_RUN ")",
                         err) ||
                   copy_renumbered(db, "ppl_runs", "id", "ppl_map", err) ||
                   copy_renumbered(db, "ppl_buckets", "run_id", "ppl_map", err)
               ? -1
               : 0;
}

static int merge_one(sqlite3 *db, const char *in, const char *out, const cb_merge_report *rep, cb_err *err) {
    char tmp[4200];
    if (snapshot(in, tmp, sizeof tmp, err)) return -1;
    char *q = sqlite3_mprintf("ATTACH DATABASE %Q AS src", tmp);
    int rc = cb_store_exec(db, q, err);
    sqlite3_free(q);
    if (rc) { unlink(tmp); return -1; }
    if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) goto detach;
    if (report_twins(db, in, out, rep, err)) goto rollback;
    int64_t before = count(db, "SELECT COUNT(*) FROM main.runs");
    if (cb_store_exec(db, "CREATE TEMP TABLE run_map AS SELECT r.id AS old, NULL AS new FROM src.runs r"
                          " WHERE NOT EXISTS (SELECT 1 FROM main.runs m WHERE " SAME_RUN ");"
                          "CREATE TEMP TABLE point_map (old INTEGER PRIMARY KEY, new INTEGER)", err) ||
        copy_all(db, err))
        goto rollback;
    int64_t added = count(db, "SELECT COUNT(*) FROM main.runs") - before;
    int64_t ppl_skipped = count(db, "SELECT (SELECT COUNT(*) FROM src.ppl_runs) - (SELECT COUNT(*) FROM temp.ppl_map)");
    if (ppl_skipped > 0) note(rep, "%lld ppl run(s) of %s already in %s: skipped", (long long)ppl_skipped, in, out);
    if (cb_store_exec(db, "DROP TABLE temp.ppl_map; DROP TABLE temp.run_map; DROP TABLE temp.point_map; COMMIT", err))
        goto rollback;
    if (rep && rep->merged) rep->merged(rep->ctx, in, added);
    rc = cb_store_exec(db, "DETACH DATABASE src", err);
    unlink(tmp);
    return rc;
rollback:
    cb_store_exec(db, "ROLLBACK", NULL);
detach:
    cb_store_exec(db, "DROP TABLE IF EXISTS temp.run_map; DROP TABLE IF EXISTS temp.point_map; DROP TABLE IF EXISTS "
                      "temp.ppl_map; DETACH DATABASE src", NULL);
    unlink(tmp);
    return -1;
}

/* The inputs exist, are files, and none is the output (by inode, whatever the spelling). */
static int check_inputs(const char *out, char *const *in, int n, cb_err *err) {
    struct stat out_st;
    bool have_out = stat(out, &out_st) == 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(in[i], &st)) cb_err_set(err, "%s: cannot open the input database: %s (nothing merged)", in[i], strerror(errno));
        else if (!S_ISREG(st.st_mode)) cb_err_set(err, "%s: not a file (expected a results database; nothing merged)", in[i]);
        else if (have_out && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino)
            cb_err_set(err, "%s is the output %s (nothing merged)", in[i], out);
        else continue;
        return -1;
    }
    return 0;
}

int cb_merge_databases(const char *out, char *const *in, int n, const cb_merge_report *rep, cb_err *err) {
    if (check_inputs(out, in, n, err)) return -1;
    /* a new OUT is built beside its name and renamed into place once every input is in */
    struct stat sb;
    bool fresh = stat(out, &sb) != 0;
    char tmp[4200];
    if (fresh && cb_atomic_temp(out, tmp, sizeof tmp, err)) return -1;
    sqlite3 *db;
    if (cb_store_open(fresh ? tmp : out, &db, err)) {
        if (fresh) unlink(tmp);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        cb_err e = { "" };
        if (merge_one(db, in[i], out, rep, &e)) {
            cb_store_close(db);
            if (fresh) unlink(tmp);
            if (!fresh && i > 0)
                cb_err_set(err, "%s: %s (the inputs before %s are in %s; merging again skips them)", in[i], e.msg, in[i], out);
            else
                cb_err_set(err, "%s: %s", in[i], e.msg);
            return -1;
        }
    }
    cb_store_close(db); /* the last connection: WAL checkpointed into the main file and removed */
    return fresh ? cb_atomic_rename(tmp, out, err) : 0;
}
