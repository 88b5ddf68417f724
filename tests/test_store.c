/* The store: schema creation, migration from an empty / version-0 file, refusal of a newer one,
 * and docs/schema.md documents exactly the tables, views and columns the database has. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/results/columns.h"
#include "../harness/results/store.h"

static void tmp_path(char *p, size_t n) {
    snprintf(p, n, "/tmp/ctxbench-store-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(p);
    cr_assert(fd >= 0);
    close(fd);
    unlink(p);
}

static int user_version(sqlite3 *db) {
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    int v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    return v;
}

/* The runs row the view tests stand on: INSERT_RUNS RUN_ROW(1) ... */
#define INSERT_RUNS "INSERT INTO runs (id, started_utc, workload_name, workload_text, workload_hash, shard, git_commit) VALUES"
#define RUN_ROW(id) " (" #id ", 't', 'w', '', 'h', '0/1', 'c')"

/* A new database (its path in p) holding the rows sql inserts. */
static sqlite3 *db_with_rows(char *p, size_t n, const char *sql) {
    tmp_path(p, n);
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(p, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_store_exec(db, sql, &err), 0, "%s", err.msg);
    return db;
}

/* A database at schema version 1 (its path in p) holding the rows sql inserts. */
static void make_v1_db(char *p, size_t n, const char *sql) {
    tmp_path(p, n);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cb_err err = { "" };
    char *v1 = cb_store_schema_v1_sql();
    cr_assert_eq(cb_store_exec(db, v1, &err), 0, "%s", err.msg);
    sqlite3_free(v1);
    cr_assert_eq(cb_store_exec(db, "PRAGMA user_version = 1", &err), 0);
    cr_assert_eq(cb_store_exec(db, sql, &err), 0, "%s", err.msg);
    sqlite3_close(db);
}

/* The one text value sql selects. */
static void assert_text(sqlite3 *db, const char *sql, const char *want, const char *why) {
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    const char *got = (const char *)sqlite3_column_text(s, 0);
    cr_assert_str_eq(got ? got : "(null)", want, "%s", why);
    sqlite3_finalize(s);
}

Test(store, create_migrate_and_refuse_newer) {
    char p[256];
    tmp_path(p, sizeof p);
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(p, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(user_version(db), CB_SCHEMA_VERSION);
    cb_store_close(db);
    /* opening again is a no-op migration */
    cr_assert_eq(cb_store_open(p, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_store_exec(db, "PRAGMA user_version = 99", &err), 0);
    cb_store_close(db);
    cr_assert_eq(cb_store_open(p, &db, &err), -1);
    cr_assert(strstr(err.msg, "newer") != NULL, "%s", err.msg);
    unlink(p);
}

/* docs/schema.md: "### name (table|view)" then rows "| `column` | ..." */
Test(store, schema_doc_matches_database) {
    FILE *f = fopen("docs/schema.md", "r");
    cr_assert(f != NULL, "docs/schema.md not found (run from the repo root)");
    char p[256];
    tmp_path(p, sizeof p);
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(p, &db, &err), 0, "%s", err.msg);
    char line[1024], cur[64] = "", kind[16];
    char doc_cols[4096] = "";
    int n_objects = 0;
    /* for each documented object compare its column list (in order) with pragma table_info */
#define CHECK_OBJECT()                                                                                   \
    if (cur[0]) {                                                                                        \
        char db_cols[4096] = "", q[256];                                                                 \
        snprintf(q, sizeof q, "SELECT name FROM pragma_table_info('%s')", cur);                       \
        sqlite3_stmt *s;                                                                                 \
        cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);                                \
        while (sqlite3_step(s) == SQLITE_ROW) {                                                          \
            strcat(db_cols, (const char *)sqlite3_column_text(s, 0));                                   \
            strcat(db_cols, " ");                                                                        \
        }                                                                                                \
        sqlite3_finalize(s);                                                                             \
        cr_assert_str_eq(doc_cols, db_cols, "docs/schema.md columns of %s differ from the database", cur); \
        n_objects++;                                                                                     \
    }
    while (fgets(line, sizeof line, f)) {
        char name[64];
        if (sscanf(line, "### %63s (%15[a-z])", name, kind) == 2) {
            CHECK_OBJECT();
            snprintf(cur, sizeof cur, "%s", name);
            doc_cols[0] = 0;
            char q[256];
            snprintf(q, sizeof q, "SELECT COUNT(*) FROM sqlite_master WHERE name='%s' AND type='%s'", name, kind);
            sqlite3_stmt *s;
            sqlite3_prepare_v2(db, q, -1, &s, NULL);
            cr_assert(sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1, "documented %s %s is not in the DB", kind, name);
            sqlite3_finalize(s);
        } else if (cur[0] && !strncmp(line, "| `", 3)) {
            char *end = strchr(line + 3, '`');
            cr_assert(end != NULL);
            strncat(doc_cols, line + 3, (size_t)(end - line - 3));
            strcat(doc_cols, " ");
        }
    }
    CHECK_OBJECT();
    fclose(f);
    /* and every table/view in the DB is documented */
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%'", -1, &s, NULL);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(s, 0), n_objects, "the DB has objects docs/schema.md does not document");
    sqlite3_finalize(s);
    cb_store_close(db);
    unlink(p);
}

/* A version-1 database (as ctxbench of that version wrote it) is migrated in place through versions 2
 * (ppl tables), 3 (roofs) and 4 (bandwidth probes): rows kept, the new columns NULL, the new tables and
 * the rates view queryable. */
Test(store, migrates_version_1) {
    char p[256];
    tmp_path(p, sizeof p);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cb_err err = { "" };
    char *v1 = cb_store_schema_v1_sql();
    cr_assert(v1 != NULL);
    cr_assert_eq(cb_store_exec(db, v1, &err), 0, "%s", err.msg);
    sqlite3_free(v1);
    cr_assert_eq(cb_store_exec(db, "PRAGMA user_version = 1;"
                                   "INSERT INTO runs (started_utc, workload_name, workload_text, workload_hash, shard,"
                                   " git_commit, peak_gflops) VALUES ('t', 'old', '', 'h', '0/1', 'c', 123.0);"
                                   "INSERT INTO points (run_id, point_key, engine, model, arch, phase, context, batch,"
                                   " threads, mode, weight_dtype, kv_dtype, fill, label, status) VALUES (1, 'k',"
                                   " 'mamba2', 'm', 'mamba2', 'prefill', 64, 1, 1, 'exact', 'f32', 'f32', 'real',"
                                   " 'measured', 'ok');"
                                   "INSERT INTO counters VALUES (1, 'sde:::ctxbench::tokens', 64, 'ok')",
                                   &err), 0, "%s", err.msg);
    sqlite3_close(db);
    cr_assert_eq(cb_store_open(p, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(user_version(db), CB_SCHEMA_VERSION);
    cr_assert_eq(cb_store_exec(db, "SELECT run_id, ctx_lo, kl FROM ppl_buckets; SELECT compare_dtype FROM ppl_runs", &err), 0,
                 "%s", err.msg);
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT peak_gflops, roof_fma_gflops IS NULL, roof_label IS NULL,"
                                        " decode_prefetch IS NULL AND gemv_order IS NULL FROM runs", -1, &s, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_float_eq(sqlite3_column_double(s, 0), 123.0, 1e-12);
    cr_assert_eq(sqlite3_column_int(s, 1), 1);
    cr_assert_eq(sqlite3_column_int(s, 2), 1);
    cr_assert_eq(sqlite3_column_int(s, 3), 1, "a version-1 run has no recorded decode choices");
    sqlite3_finalize(s);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT engine, ssd_share IS NULL, triad_near_gbps IS NULL, pct_triad_near IS NULL"
                                        " FROM rates", -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "mamba2");
    cr_assert_eq(sqlite3_column_int(s, 1), 1, "no timed_seconds in a version-1 row: no share");
    cr_assert_eq(sqlite3_column_int(s, 2), 1, "no probe in a version-1 row");
    cr_assert_eq(sqlite3_column_int(s, 3), 1);
    sqlite3_finalize(s);
    cb_store_close(db);
    unlink(p);
}

/* docs/schema.md's points section is the column table (harness/results/columns.h), row for row: name,
 * the first word of the SQL declaration, and the meaning verbatim. */
Test(store, points_doc_is_the_column_table) {
    FILE *f = fopen("docs/schema.md", "r");
    cr_assert(f != NULL, "docs/schema.md not found (run from the repo root)");
    char line[2048];
    bool in = false;
    int i = 0;
    while (fgets(line, sizeof line, f)) {
        int v;
        const char *cur = strstr(line, "currently **");
        if (cur && sscanf(cur, "currently **%d**", &v) == 1)
            cr_assert_eq(v, CB_SCHEMA_VERSION, "docs/schema.md says schema version %d, the code has %d", v, CB_SCHEMA_VERSION);
        if (!strncmp(line, "### ", 4)) in = !strncmp(line, "### points (table)", 18);
        if (!in || strncmp(line, "| `", 3)) continue;
        cr_assert(i < cb_point_column_count, "docs/schema.md documents more points columns than columns.h has");
        const cb_column *c = &cb_point_columns[i++];
        char want[2048], type[32];
        sscanf(c->decl, "%31s", type);
        snprintf(want, sizeof want, "| `%s` | %s | %s |\n", c->name, type, c->doc);
        cr_assert_str_eq(line, want, "docs/schema.md row %d of points differs from harness/results/columns.h", i);
    }
    fclose(f);
    cr_assert_eq(i, cb_point_column_count, "docs/schema.md documents %d points columns, columns.h has %d", i,
                 cb_point_column_count);
}

/* The generated INSERT names every column but id, once, and the database's points table is the column
 * table (names in order: version 1's CREATE, then each version's ADD COLUMN). */
Test(store, points_table_is_the_column_table) {
    char p[256];
    tmp_path(p, sizeof p);
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(p, &db, &err), 0, "%s", err.msg);
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT name, type FROM pragma_table_info('points')", -1, &s, NULL), SQLITE_OK);
    int i = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        cr_assert(i < cb_point_column_count);
        cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), cb_point_columns[i].name);
        cr_assert(!strncmp(cb_point_columns[i].decl, (const char *)sqlite3_column_text(s, 1),
                           strlen((const char *)sqlite3_column_text(s, 1))));
        i++;
    }
    sqlite3_finalize(s);
    cr_assert_eq(i, cb_point_column_count);
    char *ins = cb_points_insert_sql();
    cr_assert(ins && strstr(ins, "INSERT INTO points (run_id, point_key,") && !strstr(ins, "(id,"), "%s", ins);
    int q = 0;
    for (const char *c = ins; *c; c++) q += *c == '?';
    cr_assert_eq(q, cb_point_column_count - 1, "%s", ins);
    free(ins);
    cb_store_close(db);
    unlink(p);
}

/* The speedup view: transformer over engine of the same run, same scale and everything else, the
 * interval from both CIs, refused / failed points never in it, another run's transformer never used. */
Test(store, speedup_view_pairs_within_a_run) {
    char p[256];
    sqlite3 *db = db_with_rows(p, sizeof p,
        INSERT_RUNS RUN_ROW(1) "," RUN_ROW(2) ";"
        "INSERT INTO points (id, run_id, point_key, engine, model, arch, phase, context, batch, threads, mode,"
        " weight_dtype, kv_dtype, fill, label, status, median, ci_lo, ci_hi) VALUES"
        " (1, 1, 'k', 'transformer', 'transformer-xs', 'transformer', 'prefill', 4096, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 4.0, 3.0, 5.0),"
        " (2, 1, 'k', 'bamba', 'bamba-xs', 'hybrid', 'prefill', 4096, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 2.0, 1.0, 4.0),"
        " (3, 1, 'k', 'bamba', 'bamba-s', 'hybrid', 'prefill', 4096, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0),"
        " (4, 2, 'k', 'bamba', 'bamba-xs', 'hybrid', 'prefill', 8192, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0),"
        " (5, 1, 'k', 'transformer', 'transformer-xs', 'transformer', 'prefill', 8192, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 9.0, 9.0, 9.0),"
        " (6, 1, 'k', 'transformer', 'transformer-xs', 'transformer', 'decode', 4096, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'refused', 'no', NULL, NULL, NULL),"
        " (7, 1, 'k', 'bamba', 'bamba-xs', 'hybrid', 'decode', 4096, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0)");
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*), MIN(point_id), MIN(baseline_point_id), MIN(speedup), MIN(speedup_lo),"
                                        " MIN(speedup_hi) FROM speedup", -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(s, 0), 1, "one pair: not bamba-s (scale), not run 2, not the refused decode");
    cr_assert_eq(sqlite3_column_int(s, 1), 2);
    cr_assert_eq(sqlite3_column_int(s, 2), 1);
    cr_assert_float_eq(sqlite3_column_double(s, 3), 2.0, 1e-12);
    cr_assert_float_eq(sqlite3_column_double(s, 4), 3.0 / 4.0, 1e-12);
    cr_assert_float_eq(sqlite3_column_double(s, 5), 5.0 / 1.0, 1e-12);
    sqlite3_finalize(s);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT pair_label FROM arch_pairs WHERE point_id = 7", -1, &s, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "refused");
    sqlite3_finalize(s);
    cb_store_close(db);
    unlink(p);
}

/* A reader of an older database gets the current views over a migrated copy; the file is not changed. */
Test(store, open_read_migrates_a_copy) {
    char p[256];
    make_v1_db(p, sizeof p, "");
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open_read(p, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(user_version(db), CB_SCHEMA_VERSION);
    cr_assert_eq(cb_store_exec(db, "SELECT triad_drift FROM rates; SELECT pair_label FROM speedup", &err), 0, "%s", err.msg);
    cb_store_close(db);
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(user_version(db), 1, "the file itself stays at version 1");
    sqlite3_close(db);
    /* a file of schema version 0 is not a results database */
    unlink(p);
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(cb_store_exec(db, "CREATE TABLE other (a)", &err), 0);
    sqlite3_close(db);
    cr_assert_eq(cb_store_open_read(p, &db, &err), -1);
    cr_assert(strstr(err.msg, "not a ctxbench results database") && strstr(err.msg, p), "%s", err.msg);
    unlink(p);
}

/* points.batch_asked (schema version 10): rows stored before it get the batch their point_key asked for,
 * so a throughput point of `max` (key batch 0) keeps 0 while its `batch` is the one used. */
Test(store, batch_asked_is_filled_from_the_key_when_migrated) {
    char p[256];
    make_v1_db(p, sizeof p,
        INSERT_RUNS RUN_ROW(1) ";"
        "INSERT INTO points (id, run_id, point_key, engine, model, arch, phase, context, batch, threads, mode,"
        " weight_dtype, kv_dtype, fill, label, status) VALUES"
        " (1, 1, 'bamba|bamba-xs|throughput|4096|0|2|exact|bf16|bf16|real', 'bamba', 'bamba-xs', 'hybrid', 'throughput',"
        "  4096, 15, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok'),"
        " (2, 1, 'bamba|bamba-xs|throughput|4096|16|2|exact|bf16|bf16|real', 'bamba', 'bamba-xs', 'hybrid', 'throughput',"
        "  4096, 16, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok'),"
        " (3, 1, 'transformer|transformer-xs|decode|1024|1|2|exact|bf16|bf16|real', 'transformer', 'transformer-xs',"
        "  'transformer', 'decode', 1024, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok')");
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(p, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(user_version(db), CB_SCHEMA_VERSION);
    assert_text(db, "SELECT group_concat(batch_asked, ',') FROM (SELECT batch_asked FROM points ORDER BY id)", "0,16,1",
                "the batch each key asked for");
    cb_store_close(db);
    unlink(p);
}

/* arch_pairs matches throughput points on the batch the workload asked for: explicit batches 1 and 4 pair
 * with the transformer's 1 and 4 only, and `max` (asked 0) with its `max`, whatever batch each side used. */
Test(store, arch_pairs_match_throughput_on_the_batch_asked) {
    char p[256];
    sqlite3 *db = db_with_rows(p, sizeof p,
        INSERT_RUNS RUN_ROW(1) ";"
        "INSERT INTO points (id, run_id, point_key, engine, model, arch, phase, context, batch, batch_asked, threads, mode,"
        " weight_dtype, kv_dtype, fill, label, status, median, ci_lo, ci_hi, tokens_per_s) VALUES"
        " (1, 1, 'k', 'transformer', 'transformer-xs', 'transformer', 'throughput', 4096, 1, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0, 1.0),"
        " (2, 1, 'k', 'transformer', 'transformer-xs', 'transformer', 'throughput', 4096, 4, 4, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0, 4.0),"
        " (3, 1, 'k', 'transformer', 'transformer-xs', 'transformer', 'throughput', 4096, 9, 0, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0, 9.0),"
        " (4, 1, 'k', 'bamba', 'bamba-xs', 'hybrid', 'throughput', 4096, 1, 1, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0, 2.0),"
        " (5, 1, 'k', 'bamba', 'bamba-xs', 'hybrid', 'throughput', 4096, 4, 4, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0, 8.0),"
        " (6, 1, 'k', 'bamba', 'bamba-xs', 'hybrid', 'throughput', 4096, 15, 0, 2, 'exact', 'bf16', 'bf16', 'real', 'measured', 'ok', 1.0, 1.0, 1.0, 27.0)");
    assert_text(db, "SELECT group_concat(point_id || '/' || baseline_point_id || '=' || speedup, ' ') FROM"
                    " (SELECT * FROM speedup ORDER BY point_id)", "4/1=2.0 5/2=2.0 6/3=3.0",
                "one pair per asked batch, not every throughput point with every other");
    cb_store_close(db);
    unlink(p);
}
