/* Every number derived across points, defined once as an SQL view (views.h). docs/schema.md documents
 * each view's columns; plot, report, the demo's and `make bench`'s summaries read these views. */
#include "views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* The timed work a point's median is the time of, in tokens: tokens_per_s = work / median (derive.c). */
#define TOKENS_PER_MEDIAN "(p.tokens_per_s * p.median)"
/* The same for point alias a (vs_peer). */
#define PEER_WORK(a) "(" a ".tokens_per_s * " a ".median)"

static const cb_view views[] = {
    {"latency_by_context",
     "SELECT p.id AS point_id, p.run_id, p.engine, p.model, p.arch, p.phase, p.context, p.batch, p.threads, p.mode,\n"
     "       p.weight_dtype, p.kv_dtype, p.fill, p.source, p.label, p.median AS seconds, p.ci_lo, p.ci_hi, p.cv, p.noisy,\n"
     "       p.tokens_per_s,\n"
     /* prefill and throughput spell the work out (context, batch) so the bounds are exact divisions */
     "       CASE p.phase WHEN 'prefill' THEN p.context / p.ci_hi WHEN 'throughput' THEN p.batch / p.ci_hi\n"
     "         WHEN 'decode' THEN 1 / p.ci_hi ELSE " TOKENS_PER_MEDIAN " / p.ci_hi END AS tokens_per_s_lo,\n"
     "       CASE p.phase WHEN 'prefill' THEN p.context / p.ci_lo WHEN 'throughput' THEN p.batch / p.ci_lo\n"
     "         WHEN 'decode' THEN 1 / p.ci_lo ELSE " TOKENS_PER_MEDIAN " / p.ci_lo END AS tokens_per_s_hi,\n"
     "       p.refused_bytes, p.refused_seconds\n"
     "FROM points p WHERE p.phase <> 'memory' AND p.label <> 'failed' ORDER BY p.engine, p.model, p.phase, p.context"},
    {"memory_by_context",
     "SELECT p.id AS point_id, p.engine, p.model, p.arch, p.phase, p.context, p.batch, p.label, m.source,\n"
     "       SUM(CASE WHEN m.category='weights' THEN m.bytes END) AS weights,\n"
     "       SUM(CASE WHEN m.category='kv_cache' THEN m.bytes END) AS kv_cache,\n"
     "       SUM(CASE WHEN m.category='ssm_state' THEN m.bytes END) AS ssm_state,\n"
     "       SUM(CASE WHEN m.category='conv_state' THEN m.bytes END) AS conv_state,\n"
     "       SUM(CASE WHEN m.category='scratch' THEN m.bytes END) AS scratch,\n"
     "       SUM(CASE WHEN m.category IN ('total','peak_rss') THEN m.bytes END) AS total\n"
     "FROM points p JOIN memory m ON m.point_id = p.id\n"
     "GROUP BY p.id, m.source ORDER BY p.engine, p.model, p.context"},
    {"rates",
     "SELECT p.id AS point_id, p.engine, p.model, p.arch, p.phase, p.context, p.batch, p.threads, p.fill, p.label,\n"
     "       p.median AS seconds, p.tokens_per_s, p.gflops_per_s,\n"
     "       (c.weight_bytes + COALESCE(c.kv_bytes_read, 0)) / c.tokens AS bytes_per_token,\n"
     "       p.gbytes_per_s, p.arith_intensity, p.pct_peak_flops, p.pct_peak_bw,\n"
     "       c.ssd_ns / (1e9 * p.timed_seconds) AS ssd_share,\n"
     "       c.attention_ns / (1e9 * p.timed_seconds) AS attention_share,\n"
     "       max(COALESCE(p.triad_before_gbps, p.triad_after_gbps), COALESCE(p.triad_after_gbps, p.triad_before_gbps))\n"
     "         AS triad_near_gbps,\n"
     "       100 * p.gbytes_per_s / max(COALESCE(p.triad_before_gbps, p.triad_after_gbps),\n"
     "                                  COALESCE(p.triad_after_gbps, p.triad_before_gbps)) AS pct_triad_near,\n"
     "       abs(p.triad_before_gbps - p.triad_after_gbps) / max(p.triad_before_gbps, p.triad_after_gbps) AS triad_drift,\n"
     "       (c.weight_bytes + COALESCE(c.kv_bytes_read, 0)) / c.tokens * p.tokens_per_s / 1e9 AS read_gbytes_per_s,\n"
     "       100 * (c.weight_bytes + COALESCE(c.kv_bytes_read, 0)) / c.tokens * p.tokens_per_s / 1e9\n"
     "         / max(COALESCE(p.triad_before_gbps, p.triad_after_gbps), COALESCE(p.triad_after_gbps, p.triad_before_gbps))\n"
     "         AS pct_read_triad_near\n"
     "FROM points p JOIN (\n"
     "  SELECT point_id,\n"
     "         SUM(CASE WHEN event = 'sde:::ctxbench::weight_bytes' THEN value END) AS weight_bytes,\n"
     "         SUM(CASE WHEN event = 'sde:::ctxbench::kv_bytes_read' THEN value END) AS kv_bytes_read,\n"
     "         1.0 * NULLIF(SUM(CASE WHEN event = 'sde:::ctxbench::tokens' THEN value END), 0) AS tokens,\n"
     "         SUM(CASE WHEN event = 'sde:::ctxbench::ssd_ns' THEN value END) AS ssd_ns,\n"
     "         SUM(CASE WHEN event = 'sde:::ctxbench::attention_ns' THEN value END) AS attention_ns\n"
     "  FROM counters GROUP BY point_id) c ON c.point_id = p.id\n"
     "WHERE p.label = 'measured' ORDER BY p.engine, p.model, p.phase, p.context"},
    /* How good the sweep's time estimates are (harness/measure/sweep_decide.c): each point that ran with an
     * estimate, its whole wall time over the estimate. */
    {"estimates",
     "SELECT p.id AS point_id, p.run_id, p.engine, p.model, p.phase, p.context, p.batch, p.threads, p.label,\n"
     "       p.estimated_seconds, p.seconds_total, p.seconds_total / p.estimated_seconds AS actual_over_estimate\n"
     "FROM points p WHERE p.estimated_seconds > 0 AND p.seconds_total > 0 AND p.label IN ('measured','sampled')"},
    /* The pairing behind every speed-up: an engine point and the transformer point of the same run that
     * differs only in architecture (same model scale, phase, context, threads, mode, dtypes, fill, and the
     * batch asked for; the batch used too except for throughput, where `max` gives each side its own
     * largest batch). Every label is kept, so a figure can mark where one side was refused. */
    {"arch_pairs",
     "SELECT e.run_id, e.engine, e.model, e.arch, t.model AS baseline_model, e.phase, e.context, e.batch,\n"
     "       t.batch AS baseline_batch, e.threads, e.mode, e.weight_dtype, e.kv_dtype, e.fill, e.source,\n"
     "       e.label, t.label AS baseline_label,\n"
     "       CASE WHEN 'refused' IN (e.label, t.label) THEN 'refused' WHEN 'failed' IN (e.label, t.label) THEN 'failed'\n"
     "            WHEN 'analytic' IN (e.label, t.label) THEN 'analytic' WHEN 'sampled' IN (e.label, t.label) THEN 'sampled'\n"
     "            ELSE 'measured' END AS pair_label,\n"
     "       e.median AS seconds, e.ci_lo, e.ci_hi, e.tokens_per_s,\n"
     "       t.median AS baseline_seconds, t.ci_lo AS baseline_ci_lo, t.ci_hi AS baseline_ci_hi,\n"
     "       t.tokens_per_s AS baseline_tokens_per_s,\n"
     "       COALESCE(e.refused_bytes, t.refused_bytes) AS refused_bytes,\n"
     "       COALESCE(e.refused_seconds, t.refused_seconds) AS refused_seconds,\n"
     "       e.id AS point_id, t.id AS baseline_point_id, e.params_total, e.params_active\n"
     "FROM points e JOIN points t\n"
     "  ON t.run_id = e.run_id AND t.arch = 'transformer' AND e.arch <> 'transformer'\n"
     " AND substr(t.model, instr(t.model, '-')) = substr(e.model, instr(e.model, '-'))\n"
     " AND t.phase = e.phase AND t.context = e.context AND t.threads = e.threads AND t.mode = e.mode\n"
     " AND t.weight_dtype = e.weight_dtype AND t.kv_dtype = e.kv_dtype AND t.fill = e.fill\n"
     " AND (t.batch = e.batch OR e.phase = 'throughput') AND t.batch_asked IS e.batch_asked"},
    /* Speed-up = baseline time / engine time (throughput: engine tokens/s / baseline tokens/s); its interval
     * combines both 95% CIs conservatively: [baseline lo / engine hi, baseline hi / engine lo]. Refused and
     * failed points never enter; pair_label says whether a side was sampled or analytic (an estimate), and
     * claims use measured and sampled pairs only; throughput pairs need both sides measured. */
    {"speedup",
     "SELECT run_id, engine, model, arch, baseline_model, phase, context, batch, threads, mode, weight_dtype, kv_dtype,\n"
     "       source, seconds, baseline_seconds,\n"
     "       CASE WHEN phase = 'throughput' THEN tokens_per_s / baseline_tokens_per_s\n"
     "            ELSE baseline_seconds / seconds END AS speedup,\n"
     "       CASE WHEN phase <> 'throughput' THEN baseline_ci_lo / ci_hi END AS speedup_lo,\n"
     "       CASE WHEN phase <> 'throughput' THEN baseline_ci_hi / ci_lo END AS speedup_hi,\n"
     "       label, baseline_label, pair_label, point_id, baseline_point_id, params_total, params_active\n"
     "FROM arch_pairs\n"
     "WHERE pair_label IN ('measured','sampled','analytic') AND seconds > 0 AND baseline_seconds > 0\n"
     "  AND (phase <> 'throughput' OR pair_label = 'measured')"},
    /* A mixture-of-experts hybrid (params_active < params_total) against a dense hybrid of the same run
     * and the same phase, context, batch, threads, mode, dtypes and fill, when the two have equal active
     * parameters (within 2 %: the same bytes read per token) or equal total parameters (within 20 %: the
     * same weight memory). speedup = dense time / MoE time; the interval as in speedup. Measured and
     * sampled points only. */
    {"moe_pairs",
     "SELECT g.run_id, g.engine, g.model, b.model AS baseline_model,\n"
     "       CASE WHEN abs(g.params_active - b.params_active) <= 0.02 * b.params_active THEN 'active' ELSE 'total'\n"
     "            END AS matched_on,\n"
     "       g.params_total, g.params_active, b.params_total AS baseline_params_total, g.phase, g.context, g.batch,\n"
     "       g.threads, g.mode, g.weight_dtype, g.kv_dtype, g.median AS seconds, b.median AS baseline_seconds,\n"
     "       b.median / g.median AS speedup, b.ci_lo / g.ci_hi AS speedup_lo, b.ci_hi / g.ci_lo AS speedup_hi,\n"
     "       g.label, b.label AS baseline_label, g.id AS point_id, b.id AS baseline_point_id\n"
     "FROM points g JOIN points b\n"
     "  ON b.run_id = g.run_id AND g.arch = 'hybrid' AND b.arch = 'hybrid'\n"
     " AND g.params_active < g.params_total AND b.params_active = b.params_total\n"
     " AND (abs(g.params_active - b.params_active) <= 0.02 * b.params_active\n"
     "      OR abs(g.params_total - b.params_total) <= 0.2 * b.params_total)\n"
     " AND b.phase = g.phase AND b.context = g.context AND b.batch = g.batch AND b.threads = g.threads\n"
     " AND b.mode = g.mode AND b.weight_dtype = g.weight_dtype AND b.kv_dtype = g.kv_dtype AND b.fill = g.fill\n"
     "WHERE g.phase IN ('prefill', 'decode', 'prefill_chunk') AND g.label IN ('measured', 'sampled')\n"
     "  AND b.label IN ('measured', 'sampled') AND g.median > 0 AND b.median > 0"},
    /* 8-bit weights against bf16: each model's latest measured 8-bit point and the latest measured bf16
     * point of the same model, phase, depth, batch, threads, mode and KV dtype (8-bit runs are separate
     * runs, so any run). speedup = bf16 time / 8-bit time (> 1: 8-bit faster). */
    {"weights_8bit_speedup",
     "SELECT q.id AS point_id, q.model, q.weight_dtype, q.phase, q.context, q.mode, q.median AS seconds,\n"
     "       b.id AS baseline_point_id, b.median AS baseline_seconds, b.median / q.median AS speedup\n"
     "FROM points q JOIN points b ON b.id = (SELECT MAX(x.id) FROM points x WHERE x.model = q.model\n"
     "    AND x.phase = q.phase AND x.context = q.context AND x.batch = q.batch AND x.threads = q.threads\n"
     "    AND x.mode = q.mode AND x.kv_dtype = q.kv_dtype AND x.weight_dtype = 'bf16' AND x.label = 'measured')\n"
     "WHERE q.weight_dtype IN ('fp8', 'int8') AND q.label = 'measured' AND q.median > 0 AND b.median > 0\n"
     "  AND q.id = (SELECT MAX(y.id) FROM points y WHERE y.model = q.model AND y.phase = q.phase\n"
     "    AND y.context = q.context AND y.batch = q.batch AND y.threads = q.threads AND y.mode = q.mode\n"
     "    AND y.kv_dtype = q.kv_dtype AND y.weight_dtype = q.weight_dtype AND y.label = 'measured')"},
    /* 8-bit weight storage: the engine-allocated weight bytes of each model and 8-bit format (one row per
     * distinct byte count, from its first point) against those of the model's first bf16 point. */
    {"weights_8bit_bytes",
     "SELECT w.*, w.weight_bytes * 1.0 / w.baseline_weight_bytes AS ratio FROM (\n"
     "  SELECT MIN(p.id) AS point_id, p.model, p.weight_dtype, m.bytes AS weight_bytes,\n"
     "         (SELECT m2.bytes FROM memory m2 JOIN points p2 ON p2.id = m2.point_id WHERE p2.model = p.model\n"
     "            AND p2.weight_dtype = 'bf16' AND m2.category = 'weights' AND m2.source = 'engine' ORDER BY p2.id\n"
     "            LIMIT 1) AS baseline_weight_bytes,\n"
     "         (SELECT p2.id FROM memory m2 JOIN points p2 ON p2.id = m2.point_id WHERE p2.model = p.model\n"
     "            AND p2.weight_dtype = 'bf16' AND m2.category = 'weights' AND m2.source = 'engine' ORDER BY p2.id\n"
     "            LIMIT 1) AS baseline_point_id,\n"
     "         COUNT(*) AS points\n"
     "  FROM points p JOIN memory m ON m.point_id = p.id AND m.category = 'weights' AND m.source = 'engine'\n"
     "  WHERE p.weight_dtype IN ('int8', 'fp8') GROUP BY p.model, p.weight_dtype, m.bytes) w"},
    /* ctxbench against an imported peer (docs/peers.md): each measured or sampled ctxbench point and each
     * peer point of the same model, phase, depth, batch, threads and weight dtype (any run: the peer's is an import).
     * ratio = ctxbench tokens/s / the peer's (> 1: ctxbench faster), per token so that chunks of other
     * sizes compare; its interval combines both 95% CIs conservatively, as the speed-up's does. */
    {"vs_peer",
     "SELECT e.id AS point_id, l.id AS peer_point_id, l.engine AS peer_engine, e.engine, e.model, e.arch, e.phase,\n"
     "       e.context, e.batch, e.threads, e.mode, e.weight_dtype, e.kv_dtype, l.kv_dtype AS peer_kv_dtype, e.label,\n"
     "       e.tokens_per_s, l.tokens_per_s AS peer_tokens_per_s, e.tokens_per_s / l.tokens_per_s AS ratio,\n"
     "       (l.ci_lo / " PEER_WORK("l") ") / (e.ci_hi / " PEER_WORK("e") ") AS ratio_lo,\n"
     "       (l.ci_hi / " PEER_WORK("l") ") / (e.ci_lo / " PEER_WORK("e") ") AS ratio_hi,\n"
     "       re.cpu_model, rl.cpu_model AS peer_cpu_model, e.run_id, l.run_id AS peer_run_id\n"
     "FROM points e JOIN points l ON l.source = 'peer' AND e.source = 'ctxbench' AND l.model = e.model\n"
     " AND l.phase = e.phase AND l.context = e.context AND l.batch = e.batch AND l.threads = e.threads\n"
     " AND l.weight_dtype = e.weight_dtype\n"
     "JOIN runs re ON re.id = e.run_id JOIN runs rl ON rl.id = l.run_id\n"
     "WHERE e.label IN ('measured','sampled') AND l.label = 'measured' AND e.phase IN ('prefill_chunk','decode')\n"
     "  AND e.median > 0 AND l.median > 0"},
    /* C2 beside the peer: ctxbench's speed-up over the transformer and the peer's own (its hybrid or mamba2
     * model over its transformer of the same scale, from the same import), at equal phase, depth, batch
     * and threads. speedup_ratio > 1: ctxbench's architectures gain more over the transformer. */
    {"speedup_vs_peer",
     "SELECT o.model, o.baseline_model, o.arch, o.phase, o.context, o.batch, o.threads, o.speedup, o.speedup_lo,\n"
     "       o.speedup_hi, o.pair_label, p.engine AS peer_engine, p.speedup AS peer_speedup,\n"
     "       p.speedup_lo AS peer_speedup_lo, p.speedup_hi AS peer_speedup_hi, o.speedup / p.speedup AS speedup_ratio,\n"
     "       o.point_id, o.baseline_point_id, p.point_id AS peer_point_id, p.baseline_point_id AS peer_baseline_point_id\n"
     "FROM speedup o JOIN speedup p ON p.source = 'peer' AND o.source = 'ctxbench' AND p.model = o.model\n"
     " AND p.phase = o.phase AND p.context = o.context AND p.batch = o.batch AND p.threads = o.threads\n"
     " AND p.weight_dtype = o.weight_dtype\n"
     "WHERE o.pair_label IN ('measured','sampled') AND p.pair_label = 'measured'\n"
     "  AND o.phase IN ('prefill_chunk','decode')"},
};

const cb_view *cb_views(int *n) {
    *n = (int)(sizeof views / sizeof views[0]);
    return views;
}

/* The CREATE statement as SQLite keeps it in sqlite_master (malloc'd). */
static char *create_sql(const cb_view *v) { return sqlite3_mprintf("CREATE VIEW %s AS\n%s", v->name, v->body); }

static bool up_to_date(sqlite3 *db, const char *schema, const char *name, const char *sql) {
    char *q = sqlite3_mprintf("SELECT sql FROM %s.sqlite_master WHERE type = 'view' AND name = %Q", schema, name);
    sqlite3_stmt *st = NULL;
    bool same = false;
    if (q && sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        same = sqlite3_column_text(st, 0) && !strcmp((const char *)sqlite3_column_text(st, 0), sql);
    sqlite3_finalize(st);
    sqlite3_free(q);
    return same;
}

int cb_views_install(sqlite3 *db, bool temp, cb_err *err) {
    const char *schema = temp ? "temp" : "main";
    int n;
    const cb_view *v = cb_views(&n);
    bool stale = false;
    for (int i = 0; i < n && !stale; i++) {
        char *sql = create_sql(&v[i]);
        stale = !sql || !up_to_date(db, schema, v[i].name, sql);
        sqlite3_free(sql);
    }
    if (!stale) return 0;
    if (!temp && cb_store_exec(db, "BEGIN IMMEDIATE", err)) return -1;
    int rc = 0;
    for (int i = n - 1; i >= 0 && !rc; i--) { /* dependants first (speedup reads arch_pairs) */
        char *drop = sqlite3_mprintf("DROP VIEW IF EXISTS %s.%s", schema, v[i].name);
        rc = drop ? cb_store_exec(db, drop, err) : -1;
        sqlite3_free(drop);
    }
    for (int i = 0; i < n && !rc; i++) {
        char *sql = create_sql(&v[i]);
        if (sql && temp) { /* CREATE TEMP VIEW is stored as CREATE VIEW */
            char *t = sqlite3_mprintf("CREATE TEMP VIEW %s AS\n%s", v[i].name, v[i].body);
            sqlite3_free(sql);
            sql = t;
        }
        rc = sql ? cb_store_exec(db, sql, err) : -1;
        sqlite3_free(sql);
    }
    if (rc && err && !err->msg[0]) cb_err_set(err, "out of memory for the views' SQL");
    if (!temp) {
        if (rc) cb_store_exec(db, "ROLLBACK", NULL);
        else rc = cb_store_exec(db, "COMMIT", err);
    }
    return rc;
}
