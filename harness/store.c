/* SQLite store: schema creation, migrations (user_version), WAL. Writers (sweep.c, cmd_merge.c)
 * prepare their own statements; each point is committed in its own transaction there. */
#include "store.h"

#include <stdio.h>
#include <string.h>

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
    "CREATE TABLE points (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  point_key TEXT NOT NULL,\n"
    "  engine TEXT NOT NULL, model TEXT NOT NULL, arch TEXT NOT NULL,\n"
    "  phase TEXT NOT NULL, context INTEGER NOT NULL, batch INTEGER NOT NULL, threads INTEGER NOT NULL,\n"
    "  mode TEXT NOT NULL, weight_dtype TEXT NOT NULL, kv_dtype TEXT NOT NULL, fill TEXT NOT NULL,\n"
    "  label TEXT NOT NULL CHECK (label IN ('measured','sampled','analytic','refused','failed')),\n"
    "  status TEXT NOT NULL,\n"
    "  unit TEXT,\n"
    "  n_samples INTEGER, median REAL, q1 REAL, q3 REAL, iqr REAL, ci_lo REAL, ci_hi REAL, cv REAL, noisy INTEGER,\n"
    "  tokens_per_s REAL,\n"
    "  samples_k INTEGER, fit_error REAL, validation_rel_error REAL,\n"
    "  refused_bytes INTEGER, refused_seconds REAL,\n"
    "  peak_rss_bytes INTEGER, minor_faults INTEGER, major_faults INTEGER,\n"
    "  gflops_per_s REAL, gbytes_per_s REAL, arith_intensity REAL, pct_peak_flops REAL, pct_peak_bw REAL,\n"
    "  seconds_total REAL\n"
    ");\n"
    "CREATE INDEX points_key ON points(point_key);\n"
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
    "CREATE VIEW latency_by_context AS\n"
    "  SELECT p.id AS point_id, p.engine, p.model, p.arch, p.phase, p.context, p.batch, p.threads, p.fill, p.label,\n"
    "         p.median AS seconds, p.ci_lo, p.ci_hi, p.cv, p.noisy, p.tokens_per_s\n"
    "  FROM points p WHERE p.label IN ('measured','sampled') ORDER BY p.engine, p.model, p.phase, p.context;\n"
    "CREATE VIEW memory_by_context AS\n"
    "  SELECT p.id AS point_id, p.engine, p.model, p.arch, p.phase, p.context, p.batch, p.label, m.source,\n"
    "         SUM(CASE WHEN m.category='weights' THEN m.bytes END) AS weights,\n"
    "         SUM(CASE WHEN m.category='kv_cache' THEN m.bytes END) AS kv_cache,\n"
    "         SUM(CASE WHEN m.category='ssm_state' THEN m.bytes END) AS ssm_state,\n"
    "         SUM(CASE WHEN m.category='conv_state' THEN m.bytes END) AS conv_state,\n"
    "         SUM(CASE WHEN m.category='scratch' THEN m.bytes END) AS scratch,\n"
    "         SUM(CASE WHEN m.category IN ('total','peak_rss') THEN m.bytes END) AS total\n"
    "  FROM points p JOIN memory m ON m.point_id = p.id\n"
    "  GROUP BY p.id, m.source ORDER BY p.engine, p.model, p.context;\n"
    "CREATE VIEW speedup AS\n"
    "  SELECT e.engine, e.model, t.model AS baseline_model, e.phase, e.context, e.batch, e.threads,\n"
    "         e.median AS seconds, t.median AS baseline_seconds, t.median / e.median AS speedup,\n"
    "         t.median / e.ci_hi AS speedup_lo, t.median / e.ci_lo AS speedup_hi,\n"
    "         e.label, t.label AS baseline_label, e.id AS point_id, t.id AS baseline_point_id\n"
    "  FROM points e JOIN points t\n"
    "    ON t.engine = 'transformer' AND e.engine <> 'transformer'\n"
    "   AND substr(t.model, instr(t.model, '-')) = substr(e.model, instr(e.model, '-'))\n"
    "   AND t.phase = e.phase AND t.context = e.context AND t.batch = e.batch AND t.threads = e.threads\n"
    "   AND t.mode = e.mode AND t.weight_dtype = e.weight_dtype AND t.kv_dtype = e.kv_dtype\n"
    "  WHERE e.label IN ('measured','sampled') AND t.label IN ('measured','sampled')\n"
    "    AND e.phase <> 'throughput'\n"
    "  UNION ALL\n"
    "  SELECT e.engine, e.model, t.model, e.phase, e.context, e.batch, e.threads,\n"
    "         e.median, t.median, e.tokens_per_s / t.tokens_per_s, NULL, NULL,\n"
    "         e.label, t.label, e.id, t.id\n"
    "  FROM points e JOIN points t\n"
    "    ON t.engine = 'transformer' AND e.engine <> 'transformer'\n"
    "   AND substr(t.model, instr(t.model, '-')) = substr(e.model, instr(e.model, '-'))\n"
    "   AND t.phase = 'throughput' AND e.phase = 'throughput' AND t.context = e.context AND t.threads = e.threads\n"
    "   AND t.mode = e.mode AND t.weight_dtype = e.weight_dtype AND t.kv_dtype = e.kv_dtype\n"
    "  WHERE e.label = 'measured' AND t.label = 'measured';\n";

/* Version 2 (issue 8): `ctxbench ppl --db` results, one row per invocation and one per context bucket. */
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

/* The rates view (versions 3 and 4 differ only in their last columns): its first columns, and its sources
 * (measured points with their SDE counters pivoted per point). */
#define RATES_COLUMNS                                                                                         \
    "  SELECT p.id AS point_id, p.engine, p.model, p.arch, p.phase, p.context, p.batch, p.threads, p.fill, p.label,\n" \
    "         p.median AS seconds, p.tokens_per_s, p.gflops_per_s,\n"                                          \
    "         (c.weight_bytes + COALESCE(c.kv_bytes_read, 0)) / c.tokens AS bytes_per_token,\n"                \
    "         p.gbytes_per_s, p.arith_intensity, p.pct_peak_flops, p.pct_peak_bw,\n"                          \
    "         c.ssd_ns / (1e9 * p.timed_seconds) AS ssd_share,\n"
#define RATES_FROM                                                                                            \
    "  FROM points p JOIN (\n"                                                                                \
    "    SELECT point_id,\n"                                                                                  \
    "           SUM(CASE WHEN event = 'sde:::ctxbench::weight_bytes' THEN value END) AS weight_bytes,\n"      \
    "           SUM(CASE WHEN event = 'sde:::ctxbench::kv_bytes_read' THEN value END) AS kv_bytes_read,\n"    \
    "           1.0 * NULLIF(SUM(CASE WHEN event = 'sde:::ctxbench::tokens' THEN value END), 0) AS tokens,\n" \
    "           SUM(CASE WHEN event = 'sde:::ctxbench::ssd_ns' THEN value END) AS ssd_ns,\n"                  \
    "           SUM(CASE WHEN event = 'sde:::ctxbench::attention_ns' THEN value END) AS attention_ns\n"       \
    "    FROM counters GROUP BY point_id) c ON c.point_id = p.id\n"                                           \
    "  WHERE p.label = 'measured' ORDER BY p.engine, p.model, p.phase, p.context;\n"

/* Version 3: the machine's roofs measured by each run (harness/roofs.c), the seconds the counters of a
 * point cover, and the per-point rates view (GFLOP/s, bytes per token, GB/s, % of the roofs, time shares
 * of the SSD and attention kernels from the sde timers). */
static const char schema_v3_roofs[] =
    "ALTER TABLE runs ADD COLUMN roof_threads INTEGER;\n"
    "ALTER TABLE runs ADD COLUMN roof_fma_gflops_1t REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_fma_gflops REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_triad_gbps_1t REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_triad_gbps REAL;\n"
    "ALTER TABLE runs ADD COLUMN roof_label TEXT;\n"
    "ALTER TABLE runs ADD COLUMN roof_note TEXT;\n"
    "ALTER TABLE points ADD COLUMN timed_seconds REAL;\n"
    "CREATE VIEW rates AS\n"
    RATES_COLUMNS
    "         c.attention_ns / (1e9 * p.timed_seconds) AS attention_share\n"
    RATES_FROM;

const char *cb_store_schema_sql(void) { return schema_v1; }

int cb_store_exec(sqlite3 *db, const char *sql, cb_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cb_err_set(err, "sqlite: %s (in: %.80s)", msg ? msg : sqlite3_errmsg(db), sql);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* migrations[v] takes a database at user_version v to v+1. */
/* Version 4: a bandwidth probe (the triad at the point's thread count) right before and right after the
 * timed repetitions of each decode / throughput point, and the rates view's % of that nearby bandwidth:
 * on a shared VM the bandwidth moves by tens of percent between the run's start and a point. */
static const char schema_v4_probe[] =
    "ALTER TABLE points ADD COLUMN triad_before_gbps REAL;\n"
    "ALTER TABLE points ADD COLUMN triad_after_gbps REAL;\n"
    "DROP VIEW rates;\n"
    "CREATE VIEW rates AS\n"
    RATES_COLUMNS
    "         c.attention_ns / (1e9 * p.timed_seconds) AS attention_share,\n"
    "         max(COALESCE(p.triad_before_gbps, p.triad_after_gbps), COALESCE(p.triad_after_gbps, p.triad_before_gbps))\n"
    "           AS triad_near_gbps,\n"
    "         100 * p.gbytes_per_s / max(COALESCE(p.triad_before_gbps, p.triad_after_gbps),\n"
    "                                    COALESCE(p.triad_after_gbps, p.triad_before_gbps)) AS pct_triad_near,\n"
    "         abs(p.triad_before_gbps - p.triad_after_gbps) / max(p.triad_before_gbps, p.triad_after_gbps) AS triad_drift\n"
    RATES_FROM;

/* Version 5: `ctxbench ppl` records the KV cache dtype of the evaluated model and, for --compare-kv, of the
 * compared one (same weights, 8-bit cache). */
static const char schema_v5_ppl_kv[] =
    "ALTER TABLE ppl_runs ADD COLUMN kv_dtype TEXT;\n"
    "ALTER TABLE ppl_runs ADD COLUMN compare_kv_dtype TEXT;\n";

static const char *const migrations[] = { schema_v1, schema_v2_ppl, schema_v3_roofs, schema_v4_probe, schema_v5_ppl_kv };

int cb_store_migrate(sqlite3 *db, cb_err *err) {
    sqlite3_stmt *st;
    int v = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (v > CB_SCHEMA_VERSION) {
        cb_err_set(err, "database schema version %d is newer than this ctxbench (%d)", v, CB_SCHEMA_VERSION);
        return -1;
    }
    for (; v < CB_SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) return -1;
        if (cb_store_exec(db, migrations[v], err) || cb_store_exec(db, pragma, err)) {
            cb_store_exec(db, "ROLLBACK", NULL);
            return -1;
        }
        if (cb_store_exec(db, "COMMIT", err)) return -1;
    }
    return 0;
}

int cb_store_open(const char *path, sqlite3 **out, cb_err *err) {
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        cb_err_set(err, "%s: cannot open database: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    if (cb_store_exec(db, "PRAGMA journal_mode=WAL", err) || cb_store_exec(db, "PRAGMA synchronous=NORMAL", err) ||
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

void cb_store_close(sqlite3 *db) { if (db) sqlite3_close(db); }
