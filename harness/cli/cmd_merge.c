/* `ctxbench merge OUT.db IN.db...`: copy runs (and their points, samples, memory, counters) from
 * several databases (machines, or shards of one workload) into one, renumbering ids.
 * Inputs are only read (a read-only connection, copied to a temporary database in the current schema);
 * a run already in OUT is skipped with a note, so merging twice changes nothing (docs/promises.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../outputs/atomic_file.h"
#include "cli.h"
#include "../results/columns.h"
#include "../results/store.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench merge OUT.db IN.db...\n\n"
               "Append every run of each IN.db (with its points, samples, memory and counters rows, and its\n"
               "ppl_runs / ppl_buckets) to OUT.db, creating OUT.db if missing. Ids are renumbered. IN.db is\n"
               "opened read-only and never changes. A run already in OUT.db (same start time, host, workload,\n"
               "commit, shard and point count) is skipped with a note, so merging the same input twice is a\n"
               "no-op. Each input is merged in one transaction; a new OUT.db appears only once every input is in.\n");
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
static int report_twins(sqlite3 *db, const char *in, const char *out, cb_err *err) {
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
            fprintf(stderr, "ctxbench merge: note: %s run %lld (workload %s, started %s) is already in %s as run %lld: skipped\n",
                    in, rid, name ? name : "?", start ? start : "?", out, mid);
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

/* "r.a, r.b, ..." over the columns of main.`table` but `skip` (the renumbered id), as SQLite lists them:
 * runs and the ppl tables are copied by name. sqlite3_malloc'd; NULL on error. */
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

/* The copy statements: ids renumbered through run_map / point_map / ppl_map, every other column by name
 * (points: the column table, results/columns.h). */
static char *copy_sql(sqlite3 *db) {
    char *runs = table_columns(db, "runs", "", "id"), *runs_src = table_columns(db, "runs", "r.", "id");
    char *ppl = table_columns(db, "ppl_runs", "", "id"), *ppl_src = table_columns(db, "ppl_runs", "r.", "id");
    char *points = cb_points_column_list(""), *points_src = cb_points_column_list("p.");
    char *peer = table_columns(db, "peer_tests", "", "point_id"), *peer_src = table_columns(db, "peer_tests", "t.", "point_id");
    char *sql = NULL;
    if (runs && runs_src && ppl && ppl_src && points && points_src && peer && peer_src)
        sql = sqlite3_mprintf(
            "UPDATE run_map SET new = old + (SELECT COALESCE(MAX(id), 0) FROM main.runs);"
            "INSERT INTO main.runs (id, %s) SELECT m.new, %s FROM src.runs r JOIN run_map m ON m.old = r.id ORDER BY r.id;"
            "INSERT INTO point_map SELECT id, id + (SELECT COALESCE(MAX(id), 0) FROM main.points) FROM src.points"
            " WHERE run_id IN (SELECT old FROM run_map);"
            "INSERT INTO main.points (id, run_id, %s) SELECT pm.new, rm.new, %s FROM src.points p"
            " JOIN point_map pm ON pm.old = p.id JOIN run_map rm ON rm.old = p.run_id ORDER BY p.id;"
            "INSERT INTO main.samples SELECT pm.new, s.rep, s.seconds FROM src.samples s JOIN point_map pm ON pm.old = s.point_id;"
            "INSERT INTO main.memory SELECT pm.new, m.category, m.bytes, m.source FROM src.memory m JOIN point_map pm ON pm.old = m.point_id;"
            "INSERT INTO main.counters SELECT pm.new, c.event, c.value, c.status FROM src.counters c JOIN point_map pm ON pm.old = c.point_id;"
            "INSERT INTO main.peer_tests (point_id, %s) SELECT pm.new, %s FROM src.peer_tests t JOIN point_map pm ON pm.old = t.point_id;"
            "CREATE TEMP TABLE ppl_map AS SELECT id AS old, id + (SELECT COALESCE(MAX(id), 0) FROM main.ppl_runs) AS new"
            " FROM src.ppl_runs r WHERE NOT EXISTS (SELECT 1 FROM main.ppl_runs m WHERE " SAME_PPL_RUN ");"
            "INSERT INTO main.ppl_runs (id, %s) SELECT m.new, %s FROM src.ppl_runs r JOIN ppl_map m ON m.old = r.id ORDER BY r.id;"
            "INSERT INTO main.ppl_buckets SELECT m.new, b.ctx_lo, b.ctx_hi, b.is_total, b.n_scored, b.nll, b.ppl,"
            " b.nll_q, b.dnll, b.kl, b.top1_agree FROM src.ppl_buckets b JOIN ppl_map m ON m.old = b.run_id;"
            "",
            runs, runs_src, points, points_src, peer, peer_src, ppl, ppl_src);
    sqlite3_free(runs), sqlite3_free(runs_src), sqlite3_free(ppl), sqlite3_free(ppl_src);
    sqlite3_free(peer), sqlite3_free(peer_src);
    free(points), free(points_src);
    return sql;
}

static int merge_one(sqlite3 *db, const char *in, const char *out, cb_err *err) {
    char tmp[4200], *sql = NULL;
    if (snapshot(in, tmp, sizeof tmp, err)) return -1;
    char *q = sqlite3_mprintf("ATTACH DATABASE %Q AS src", tmp);
    int rc = cb_store_exec(db, q, err);
    sqlite3_free(q);
    if (rc) { unlink(tmp); return -1; }
    if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) goto detach;
    if (report_twins(db, in, out, err)) goto rollback;
    int64_t before = count(db, "SELECT COUNT(*) FROM main.runs");
    if (cb_store_exec(db, "CREATE TEMP TABLE run_map AS SELECT r.id AS old, NULL AS new FROM src.runs r"
                          " WHERE NOT EXISTS (SELECT 1 FROM main.runs m WHERE " SAME_RUN ");"
                          "CREATE TEMP TABLE point_map (old INTEGER PRIMARY KEY, new INTEGER)", err))
        goto rollback;
    sql = copy_sql(db);
    if (!sql) { cb_err_set(err, "cannot list the columns to copy: %s", sqlite3_errmsg(db)); goto rollback; }
    if (cb_store_exec(db, sql, err)) goto rollback;
    sqlite3_free(sql), sql = NULL;
    int64_t added = count(db, "SELECT COUNT(*) FROM main.runs") - before;
    int64_t ppl_skipped = count(db, "SELECT (SELECT COUNT(*) FROM src.ppl_runs) - (SELECT COUNT(*) FROM temp.ppl_map)");
    if (ppl_skipped > 0)
        fprintf(stderr, "ctxbench merge: note: %lld ppl run(s) of %s already in %s: skipped\n", (long long)ppl_skipped, in, out);
    if (cb_store_exec(db, "DROP TABLE temp.ppl_map; DROP TABLE temp.run_map; DROP TABLE temp.point_map; COMMIT", err))
        goto rollback;
    printf("merged %s: %lld run(s) added\n", in, (long long)added);
    rc = cb_store_exec(db, "DETACH DATABASE src", err);
    unlink(tmp);
    return rc;
rollback:
    sqlite3_free(sql);
    cb_store_exec(db, "ROLLBACK", NULL);
detach:
    cb_store_exec(db, "DROP TABLE IF EXISTS temp.run_map; DROP TABLE IF EXISTS temp.point_map; DROP TABLE IF EXISTS "
                      "temp.ppl_map; DETACH DATABASE src", NULL);
    unlink(tmp);
    return -1;
}

/* The inputs exist, are files, and none is the output (by inode, whatever the spelling). */
static int check_inputs(int argc, char **argv) {
    struct stat out_st;
    bool have_out = stat(argv[1], &out_st) == 0;
    for (int i = 2; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) {
            fprintf(stderr, "ctxbench merge: %s: cannot open the input database: %s (nothing merged)\n", argv[i], strerror(errno));
            return 1;
        }
        if (!S_ISREG(st.st_mode)) {
            fprintf(stderr, "ctxbench merge: %s: not a file (expected a results database; nothing merged)\n", argv[i]);
            return 1;
        }
        if (have_out && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino) {
            fprintf(stderr, "ctxbench merge: %s is the output %s (nothing merged)\n", argv[i], argv[1]);
            return 1;
        }
    }
    return 0;
}

static int run(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (argv[i][0] == '-') { fprintf(stderr, "ctxbench merge: unknown option '%s'\n", argv[i]); usage(stderr); return 2; }
    }
    if (argc < 3) { usage(stderr); return 2; }
    if (check_inputs(argc, argv)) return 1;
    cb_err err = { "" };
    /* a new OUT is built beside its name and renamed into place once every input is in */
    struct stat sb;
    bool fresh = stat(argv[1], &sb) != 0;
    char tmp[4200];
    if (fresh && cb_atomic_temp(argv[1], tmp, sizeof tmp, &err)) { fprintf(stderr, "ctxbench merge: %s\n", err.msg); return 1; }
    const char *target = fresh ? tmp : argv[1];
    sqlite3 *db;
    if (cb_store_open(target, &db, &err)) {
        fprintf(stderr, "ctxbench merge: %s\n", err.msg);
        if (fresh) unlink(tmp);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        if (merge_one(db, argv[i], argv[1], &err)) {
            fprintf(stderr, "ctxbench merge: %s: %s\n", argv[i], err.msg);
            cb_store_close(db);
            if (fresh) unlink(tmp);
            else if (i > 2) fprintf(stderr, "ctxbench merge: the inputs before %s are in %s; merging again skips them\n", argv[i], argv[1]);
            return 1;
        }
    }
    cb_store_close(db); /* the last connection: WAL checkpointed into the main file and removed */
    if (fresh && cb_atomic_rename(tmp, argv[1], &err)) { fprintf(stderr, "ctxbench merge: %s\n", err.msg); return 1; }
    printf("merged %d database(s) into %s\n", argc - 2, argv[1]);
    return 0;
}

static const cb_command cmd_merge = { "merge", "merge result databases (machines, shards) into one", run };
CB_REGISTER_COMMAND(cmd_merge)
