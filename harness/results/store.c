/* SQLite store: schema creation, migrations (user_version), WAL, and read-only opening for the outputs.
 * The points table's columns are results/columns.h; the views results/views.c. Writers
 * (results/point_store.c, merge.c) commit each point in its own transaction. */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "columns.h"
#include "views.h"

static const char schema_v1[] =
    "CREATE TABLE runs (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  started_utc TEXT NOT NULL, finished_utc TEXT,\n"
    "  workload_name TEXT NOT NULL, workload_text TEXT NOT NULL, workload_hash TEXT NOT NULL,\n"
    "  shard TEXT NOT NULL,\n"
    "  git_commit TEXT NOT NULL, compiler TEXT, cflags TEXT,\n"
    "  cpu_model TEXT, cpu_flags TEXT, cores_online INTEGER, threads_used INTEGER, pinning TEXT,\n"
    "  mem_total_bytes INTEGER, mem_available_bytes INTEGER, kernel_path TEXT,\n"
    "  papi_version TEXT, papi_components TEXT, os TEXT, hostname TEXT,\n"
    "  memory_budget_bytes INTEGER, time_budget_point REAL, time_budget_run REAL,\n"
    "  peak_gflops REAL, peak_gbps REAL, peak_source TEXT\n"
    ");\n"
    "CREATE TABLE samples (\n"
    "  point_id INTEGER NOT NULL REFERENCES points(id), rep INTEGER NOT NULL, seconds REAL NOT NULL,\n"
    "  PRIMARY KEY (point_id, rep)\n"
    ");\n"
    "CREATE TABLE memory (\n"
    "  point_id INTEGER NOT NULL REFERENCES points(id), category TEXT NOT NULL,\n"
    "  bytes INTEGER NOT NULL, source TEXT NOT NULL CHECK (source IN ('analytic','engine','rss'))\n"
    ");\n"
    "CREATE TABLE counters (\n"
    "  point_id INTEGER NOT NULL REFERENCES points(id), event TEXT NOT NULL,\n"
    "  value INTEGER, status TEXT NOT NULL\n"
    ");\n"
    ;

/* Version 2: `ctxbench ppl --db` results, one row per invocation and one per context bucket. */
static const char schema_v2_ppl[] =
    "CREATE TABLE ppl_runs (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  started_utc TEXT NOT NULL, git_commit TEXT NOT NULL,\n"
    "  model TEXT NOT NULL, weight_dtype TEXT NOT NULL, compare_dtype TEXT,\n"
    "  mode TEXT NOT NULL, seed INTEGER NOT NULL, tokens_file TEXT NOT NULL, n_tokens INTEGER NOT NULL,\n"
    "  context INTEGER NOT NULL, stride INTEGER NOT NULL,\n"
    "  weight_bytes INTEGER NOT NULL, compare_weight_bytes INTEGER\n"
    ");\n"
    "CREATE TABLE ppl_buckets (\n"
    "  run_id INTEGER NOT NULL REFERENCES ppl_runs(id),\n"
    "  ctx_lo INTEGER NOT NULL, ctx_hi INTEGER NOT NULL, is_total INTEGER NOT NULL,\n"
    "  n_scored INTEGER NOT NULL, nll REAL NOT NULL, ppl REAL NOT NULL,\n"
    "  nll_q REAL, dnll REAL, kl REAL, top1_agree REAL\n"
    ");\n";

/* Version 3: the machine's roofs measured by each run (harness/measure/roofs.c); points.timed_seconds (the seconds
 * a point's counters cover) comes from the column table. */
static const char schema_v3_roofs[] =
    "ALTER TABLE runs ADD COLUMN roof_threads INTEGER;\n"
    "ALTER TABLE runs ADD COLUMN roof_fma_gflops_1t REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_fma_gflops REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_triad_gbps_1t REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_triad_gbps REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_label TEXT;\n"
    "ALTER TABLE runs ADD COLUMN roof_note TEXT;\n";

/* Version 4 only added points columns (the bandwidth probes next to each decode / throughput point). */

/* Version 6: `ctxbench ppl` records the KV cache dtype of the evaluated model and, for --compare-kv, of the
 * compared one (the same weights with an 8-bit cache). */
static const char schema_v6_ppl_kv[] =
    "ALTER TABLE ppl_runs ADD COLUMN kv_dtype TEXT;\n"
    "ALTER TABLE ppl_runs ADD COLUMN compare_kv_dtype TEXT;\n";

/* Version 7: measurements imported from other tools (`ctxbench import`, harness/results/peer_import.c): one row
 * per imported test with what the tool recorded about it; its points carry source = 'peer'. */
static const char schema_v7_peers[] =
    "CREATE TABLE peer_tests (\n"
    "  point_id INTEGER NOT NULL REFERENCES points(id),\n"
    "  tool TEXT NOT NULL, build_commit TEXT NOT NULL, build_number INTEGER,\n"
    "  model_file TEXT NOT NULL, model_type TEXT NOT NULL, model_params INTEGER NOT NULL, model_bytes INTEGER,\n"
    "  matched_by TEXT NOT NULL,\n"
    "  n_prompt INTEGER NOT NULL, n_gen INTEGER NOT NULL, n_depth INTEGER NOT NULL, n_batch INTEGER, n_ubatch INTEGER,\n"
    "  n_threads INTEGER NOT NULL, flash_attn INTEGER NOT NULL, type_k TEXT NOT NULL, type_v TEXT NOT NULL,\n"
    "  cpu_info TEXT, backends TEXT, test_time TEXT NOT NULL, avg_ns REAL NOT NULL, stddev_ns REAL,\n"
    "  source_file TEXT NOT NULL, source_line INTEGER NOT NULL\n"
    ");\n";

/* Version 8: the AMX-BF16 tile peak next to the FMA peak (measured on the amx kernel path, NULL elsewhere). */
static const char schema_v8_amx_roof[] =
    "ALTER TABLE runs ADD COLUMN roof_amx_gflops_1t REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_amx_gflops REAL;\n";

/* Version 11: the run-time choices of the decode kernels that change speed but not the numbers (kernels.h:
 * where the flash-decode loops prefetch, the batch-1 GEMV's row order). */
static const char schema_v11_decode_choices[] =
    "ALTER TABLE runs ADD COLUMN decode_prefetch TEXT;\n"
    "ALTER TABLE runs ADD COLUMN gemv_order TEXT;\n";

/* Going to version v runs the other tables' SQL of v (if any), then the points columns of v
 * (results/columns.h). Views are not migrated: results/views.c. */
static const struct { int version; const char *sql; } migrations[] = {
    { 1, schema_v1 }, { 2, schema_v2_ppl }, { 3, schema_v3_roofs }, { 6, schema_v6_ppl_kv }, { 7, schema_v7_peers },
    { 8, schema_v8_amx_roof }, { 11, schema_v11_decode_choices },
};

char *cb_store_schema_v1_sql(void) {
    char *points = cb_points_create_sql();
    char *sql = points ? sqlite3_mprintf("%s%s", schema_v1, points) : NULL;
    free(points);
    return sql;
}

static int migrate_to(sqlite3 *db, int version, cb_err *err) {
    for (size_t i = 0; i < sizeof migrations / sizeof migrations[0]; i++)
        if (migrations[i].version == version && cb_store_exec(db, migrations[i].sql, err)) return -1;
    char *points = version == 1 ? cb_points_create_sql() : cb_points_add_columns_sql(version);
    if (!points) { cb_err_set(err, "out of memory for the schema's SQL"); return -1; }
    int rc = cb_store_exec(db, points, err);
    free(points);
    return rc;
}

int cb_store_exec(sqlite3 *db, const char *sql, cb_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cb_err_set(err, "sqlite: %s (in: %.80s)", msg ? msg : sqlite3_errmsg(db), sql);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int read_version(sqlite3 *db, int *v, cb_err *err) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) { cb_err_set(err, "sqlite: %s (reading user_version)", sqlite3_errmsg(db)); return -1; }
    return 0;
}

/* Each step reads the version inside its write transaction: processes creating the same database at
 * once wait for the lock (busy_timeout) and find the others' steps done (docs/promises.md). */
int cb_store_migrate(sqlite3 *db, cb_err *err) {
    for (;;) {
        if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) return -1;
        int v = 0;
        if (read_version(db, &v, err)) { cb_store_exec(db, "ROLLBACK", NULL); return -1; }
        if (v > CB_SCHEMA_VERSION) {
            cb_store_exec(db, "ROLLBACK", NULL);
            cb_err_set(err, "database schema version %d is newer than this ctxbench (%d)", v, CB_SCHEMA_VERSION);
            return -1;
        }
        if (v == CB_SCHEMA_VERSION) {
            if (cb_store_exec(db, "COMMIT", err)) return -1;
            break;
        }
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (migrate_to(db, v + 1, err) || cb_store_exec(db, pragma, err)) {
            cb_store_exec(db, "ROLLBACK", NULL);
            return -1;
        }
        if (cb_store_exec(db, "COMMIT", err)) return -1;
    }
    return cb_views_install(db, false, err);
}

/* Switching a new database to WAL takes an exclusive lock, and SQLite answers BUSY there without its
 * busy handler while another process creates the same file: retried for up to 10 s. */
static int set_wal(sqlite3 *db, cb_err *err) {
    for (int i = 0;; i++) {
        char *msg = NULL;
        int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg);
        sqlite3_free(msg);
        if (rc == SQLITE_OK) return 0;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || i >= 1000) return cb_store_exec(db, "PRAGMA journal_mode=WAL", err);
        sqlite3_sleep(10);
    }
}

int cb_store_open(const char *path, sqlite3 **out, cb_err *err) {
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        cb_err_set(err, "%s: cannot open database: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    if (set_wal(db, err) || cb_store_exec(db, "PRAGMA synchronous=NORMAL", err) ||
        cb_store_exec(db, "PRAGMA foreign_keys=ON", err) || cb_store_migrate(db, err)) {
        char m[512];
        snprintf(m, sizeof m, "%s", err ? err->msg : "");
        cb_err_set(err, "%s: %s", path, m);
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

static int user_version(sqlite3 *db) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

/* An older database is copied into memory and migrated there: its file stays as it is. */
static int migrated_copy(sqlite3 *src, sqlite3 **out, cb_err *err) {
    sqlite3 *mem = NULL;
    if (sqlite3_open(":memory:", &mem) != SQLITE_OK) {
        cb_err_set(err, "cannot open an in-memory database");
        sqlite3_close(mem);
        return -1;
    }
    sqlite3_backup *b = sqlite3_backup_init(mem, "main", src, "main");
    int rc = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        cb_err_set(err, "copying the database into memory: %s", sqlite3_errmsg(mem));
        sqlite3_close(mem);
        return -1;
    }
    if (cb_store_migrate(mem, err)) { sqlite3_close(mem); return -1; }
    *out = mem;
    return 0;
}

/* "file:" URI of a path: the characters URIs give a meaning are escaped. */
static char *file_uri(const char *path, const char *query) {
    char *u = malloc(3 * strlen(path) + strlen(query) + 16), *o = u;
    if (!u) return NULL;
    o += sprintf(o, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p == '%' || *p == '?' || *p == '#' || *p < 0x20 || *p >= 0x7f) o += sprintf(o, "%%%02X", *p);
        else *o++ = (char)*p;
    sprintf(o, "?%s", query);
    return u;
}

static int open_uri(const char *path, const char *query, sqlite3 **db) {
    char *uri = file_uri(path, query);
    if (!uri) return SQLITE_NOMEM;
    int flags = strcmp(query, "mode=rw") ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    int rc = sqlite3_open_v2(uri, db, flags | SQLITE_OPEN_URI, NULL);
    free(uri);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(*db, 10000);
    return rc;
}

/* Read-only, never created: a missing path is an error. A WAL database whose directory this user cannot
 * write (no -shm can be made) is read as the main file alone, which is the whole database when no -wal
 * file holds newer pages; otherwise the error says so. */
static int open_readonly(const char *path, sqlite3 **out, cb_err *err) {
    struct stat sb;
    if (stat(path, &sb)) { cb_err_set(err, "%s: cannot open the results database: %s", path, strerror(errno)); return -1; }
    if (!S_ISREG(sb.st_mode)) { cb_err_set(err, "%s: not a file (expected a results database)", path); return -1; }
    sqlite3 *db = NULL;
    /* A reader that may write opens read-write with writes refused (query_only, set once the temp views
     * exist): the last connection to close then removes the -wal and -shm files, which a read-only
     * connection would leave beside the user's database. */
    int rc = access(path, W_OK) ? SQLITE_READONLY : open_uri(path, "mode=rw", &db);
    if (rc == SQLITE_OK && user_version(db) < 0) rc = sqlite3_errcode(db);
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        db = NULL;
        rc = open_uri(path, "mode=ro", &db);
    }
    if (rc == SQLITE_OK && user_version(db) < 0) rc = sqlite3_errcode(db);
    if (rc == SQLITE_READONLY || rc == SQLITE_CANTOPEN) {
        char wal[4200];
        snprintf(wal, sizeof wal, "%s-wal", path);
        struct stat ws;
        sqlite3_close(db);
        db = NULL;
        if (stat(wal, &ws) == 0 && ws.st_size > 0) {
            cb_err_set(err, "%s: cannot be read without write access to its directory: %s holds pages not yet in the "
                       "database (open it once as its owner, or copy both files)", path, wal);
            return -1;
        }
        rc = open_uri(path, "mode=ro&immutable=1", &db);
    }
    if (rc != SQLITE_OK) {
        cb_err_set(err, "%s: cannot open the results database: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

int cb_store_open_read(const char *path, sqlite3 **out, cb_err *err) {
    sqlite3 *db = NULL;
    if (open_readonly(path, &db, err)) return -1;
    int v = user_version(db);
    int rc = 0;
    if (v <= 0 || v > CB_SCHEMA_VERSION) {
        if (v < 0) cb_err_set(err, "not a ctxbench results database (cannot read its schema version: %s)", sqlite3_errmsg(db));
        else if (v == 0) cb_err_set(err, "not a ctxbench results database (schema version 0: no tables of ours)");
        else cb_err_set(err, "database schema version %d is newer than this ctxbench (%d)", v, CB_SCHEMA_VERSION);
        rc = -1;
    } else if (v == CB_SCHEMA_VERSION) {
        rc = cb_views_install(db, true, err);
        if (!rc) rc = cb_store_exec(db, "PRAGMA query_only = 1;", err);
        if (!rc) { *out = db; return 0; }
    } else {
        sqlite3 *mem;
        rc = cb_store_exec(db, "PRAGMA query_only = 1;", err) || migrated_copy(db, &mem, err);
        if (!rc) { sqlite3_close(db); *out = mem; return 0; }
    }
    char m[512];
    snprintf(m, sizeof m, "%s", err ? err->msg : "");
    cb_err_set(err, "%s: %s", path, m);
    sqlite3_close(db);
    return -1;
}

void cb_store_close(sqlite3 *db) { if (db) sqlite3_close(db); }

void cb_workload_hash(const char *text, char out[17]) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) { h ^= *p; h *= 1099511628211ull; }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}
