/* `ctxbench merge OUT.db IN.db...`: copy runs (and their points, samples, memory, counters) from
 * several databases (machines, or shards of one workload) into one, renumbering ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "results/columns.h"
#include "store.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench merge OUT.db IN.db...\n\n"
               "Append every run of each IN.db (with its points, samples, memory and counters rows, and its\n"
               "ppl_runs / ppl_buckets) to OUT.db,\n"
               "creating OUT.db if missing. Ids are renumbered; nothing in IN.db changes.\n");
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
            "INSERT INTO point_map SELECT id, id + (SELECT COALESCE(MAX(id), 0) FROM main.points) FROM src.points;"
            "INSERT INTO main.points (id, run_id, %s) SELECT pm.new, rm.new, %s FROM src.points p"
            " JOIN point_map pm ON pm.old = p.id JOIN run_map rm ON rm.old = p.run_id ORDER BY p.id;"
            "INSERT INTO main.samples SELECT pm.new, s.rep, s.seconds FROM src.samples s JOIN point_map pm ON pm.old = s.point_id;"
            "INSERT INTO main.memory SELECT pm.new, m.category, m.bytes, m.source FROM src.memory m JOIN point_map pm ON pm.old = m.point_id;"
            "INSERT INTO main.counters SELECT pm.new, c.event, c.value, c.status FROM src.counters c JOIN point_map pm ON pm.old = c.point_id;"
            "INSERT INTO main.peer_tests (point_id, %s) SELECT pm.new, %s FROM src.peer_tests t JOIN point_map pm ON pm.old = t.point_id;"
            "CREATE TEMP TABLE ppl_map AS SELECT id AS old, id + (SELECT COALESCE(MAX(id), 0) FROM main.ppl_runs) AS new"
            " FROM src.ppl_runs;"
            "INSERT INTO main.ppl_runs (id, %s) SELECT m.new, %s FROM src.ppl_runs r JOIN ppl_map m ON m.old = r.id ORDER BY r.id;"
            "INSERT INTO main.ppl_buckets SELECT m.new, b.ctx_lo, b.ctx_hi, b.is_total, b.n_scored, b.nll, b.ppl,"
            " b.nll_q, b.dnll, b.kl, b.top1_agree FROM src.ppl_buckets b JOIN ppl_map m ON m.old = b.run_id;"
            "DROP TABLE temp.ppl_map",
            runs, runs_src, points, points_src, peer, peer_src, ppl, ppl_src);
    sqlite3_free(runs), sqlite3_free(runs_src), sqlite3_free(ppl), sqlite3_free(ppl_src);
    sqlite3_free(peer), sqlite3_free(peer_src);
    free(points), free(points_src);
    return sql;
}

static int merge_one(sqlite3 *db, const char *in, cb_err *err) {
    sqlite3 *src;
    if (cb_store_open(in, &src, err)) return -1; /* migrates IN to the current schema too */
    cb_store_close(src);
    char *q = sqlite3_mprintf("ATTACH DATABASE %Q AS src", in);
    int rc = cb_store_exec(db, q, err);
    sqlite3_free(q);
    if (rc) return -1;
    char *sql = NULL;
    if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) goto detach;
    if (cb_store_exec(db, "CREATE TEMP TABLE run_map AS SELECT id AS old, NULL AS new FROM src.runs;"
                          "CREATE TEMP TABLE point_map (old INTEGER PRIMARY KEY, new INTEGER)", err))
        goto rollback;
    sql = copy_sql(db);
    if (!sql) { cb_err_set(err, "cannot list the columns to copy: %s", sqlite3_errmsg(db)); goto rollback; }
    if (cb_store_exec(db, sql, err)) goto rollback;
    sqlite3_free(sql), sql = NULL;
    if (cb_store_exec(db, "DROP TABLE temp.run_map; DROP TABLE temp.point_map; COMMIT", err)) goto rollback;
    return cb_store_exec(db, "DETACH DATABASE src", err);
rollback:
    sqlite3_free(sql);
    cb_store_exec(db, "ROLLBACK", NULL);
detach:
    cb_store_exec(db, "DROP TABLE IF EXISTS temp.run_map; DROP TABLE IF EXISTS temp.point_map; DROP TABLE IF EXISTS "
                      "temp.ppl_map; DETACH DATABASE src", NULL);
    return -1;
}

static int run(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (argv[i][0] == '-') { fprintf(stderr, "ctxbench merge: unknown option '%s'\n", argv[i]); usage(stderr); return 2; }
    }
    if (argc < 3) { usage(stderr); return 2; }
    sqlite3 *db;
    cb_err err = { "" };
    if (cb_store_open(argv[1], &db, &err)) { fprintf(stderr, "ctxbench merge: %s\n", err.msg); return 1; }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], argv[1])) { fprintf(stderr, "ctxbench merge: %s is the output\n", argv[i]); cb_store_close(db); return 2; }
        if (merge_one(db, argv[i], &err)) {
            fprintf(stderr, "ctxbench merge: %s: %s\n", argv[i], err.msg);
            cb_store_close(db);
            return 1;
        }
    }
    cb_store_close(db);
    printf("merged %d database(s) into %s\n", argc - 2, argv[1]);
    return 0;
}

static const cb_command cmd_merge = { "merge", "merge result databases (machines, shards) into one", run };
CB_REGISTER_COMMAND(cmd_merge)
