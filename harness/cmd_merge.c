/* `ctxbench merge OUT.db IN.db...`: copy runs (and their points, samples, memory, counters) from
 * several databases (machines, or shards of one workload) into one, renumbering ids. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "store.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench merge OUT.db IN.db...\n\n"
               "Append every run of each IN.db (with its points, samples, memory and counters rows, and its\n"
               "ppl_runs / ppl_buckets) to OUT.db,\n"
               "creating OUT.db if missing. Ids are renumbered; nothing in IN.db changes.\n");
}

static int merge_one(sqlite3 *db, const char *in, cb_err *err) {
    sqlite3 *src;
    if (cb_store_open(in, &src, err)) return -1; /* migrates IN to the current schema too */
    cb_store_close(src);
    char sql[4096];
    char *q = sqlite3_mprintf("ATTACH DATABASE %Q AS src", in);
    int rc = cb_store_exec(db, q, err);
    sqlite3_free(q);
    if (rc) return -1;
    static const char *const steps[] = {
        "CREATE TEMP TABLE run_map AS SELECT id AS old, NULL AS new FROM src.runs",
        "CREATE TEMP TABLE point_map (old INTEGER PRIMARY KEY, new INTEGER)",
        NULL
    };
    if (cb_store_exec(db, "BEGIN IMMEDIATE", err)) goto detach;
    for (int i = 0; steps[i]; i++) if (cb_store_exec(db, steps[i], err)) goto rollback;
    /* columns shared by both schemas (same version after open), copied by name */
    snprintf(sql, sizeof sql,
             "UPDATE run_map SET new = old + (SELECT COALESCE(MAX(id), 0) FROM main.runs);"
             "INSERT INTO main.runs SELECT m.new, r.started_utc, r.finished_utc, r.workload_name, r.workload_text,"
             " r.workload_hash, r.shard, r.git_commit, r.compiler, r.cflags, r.cpu_model, r.cpu_flags, r.cores_online,"
             " r.threads_used, r.pinning, r.mem_total_bytes, r.mem_available_bytes, r.kernel_path, r.papi_version,"
             " r.papi_components, r.os, r.hostname, r.memory_budget_bytes, r.time_budget_point, r.time_budget_run,"
             " r.peak_gflops, r.peak_gbps, r.peak_source, r.roof_threads, r.roof_fma_gflops_1t, r.roof_fma_gflops,"
             " r.roof_triad_gbps_1t, r.roof_triad_gbps, r.roof_label, r.roof_note"
             " FROM src.runs r JOIN run_map m ON m.old = r.id ORDER BY r.id;"
             "INSERT INTO point_map SELECT id, id + (SELECT COALESCE(MAX(id), 0) FROM main.points) FROM src.points;"
             "INSERT INTO main.points SELECT pm.new, rm.new, p.point_key, p.engine, p.model, p.arch, p.phase, p.context,"
             " p.batch, p.threads, p.mode, p.weight_dtype, p.kv_dtype, p.fill, p.label, p.status, p.unit, p.n_samples,"
             " p.median, p.q1, p.q3, p.iqr, p.ci_lo, p.ci_hi, p.cv, p.noisy, p.tokens_per_s, p.samples_k, p.fit_error,"
             " p.validation_rel_error, p.refused_bytes, p.refused_seconds, p.peak_rss_bytes, p.minor_faults,"
             " p.major_faults, p.gflops_per_s, p.gbytes_per_s, p.arith_intensity, p.pct_peak_flops, p.pct_peak_bw,"
             " p.seconds_total, p.timed_seconds, p.triad_before_gbps, p.triad_after_gbps FROM src.points p JOIN point_map pm ON pm.old = p.id JOIN run_map rm ON rm.old = p.run_id;"
             "INSERT INTO main.samples SELECT pm.new, s.rep, s.seconds FROM src.samples s JOIN point_map pm ON pm.old = s.point_id;"
             "INSERT INTO main.memory SELECT pm.new, m.category, m.bytes, m.source FROM src.memory m JOIN point_map pm ON pm.old = m.point_id;"
             "INSERT INTO main.counters SELECT pm.new, c.event, c.value, c.status FROM src.counters c JOIN point_map pm ON pm.old = c.point_id;");
    if (cb_store_exec(db, sql, err)) goto rollback;
    /* `ctxbench ppl --db` results (schema v2), renumbered the same way */
    if (cb_store_exec(db,
                      "CREATE TEMP TABLE ppl_map AS SELECT id AS old, id + (SELECT COALESCE(MAX(id), 0) FROM main.ppl_runs)"
                      " AS new FROM src.ppl_runs;"
                      "INSERT INTO main.ppl_runs SELECT m.new, r.started_utc, r.git_commit, r.model, r.weight_dtype,"
                      " r.compare_dtype, r.mode, r.seed, r.tokens_file, r.n_tokens, r.context, r.stride, r.weight_bytes,"
                      " r.compare_weight_bytes, r.kv_dtype, r.compare_kv_dtype FROM src.ppl_runs r JOIN ppl_map m ON m.old = r.id ORDER BY r.id;"
                      "INSERT INTO main.ppl_buckets SELECT m.new, b.ctx_lo, b.ctx_hi, b.is_total, b.n_scored, b.nll, b.ppl,"
                      " b.nll_q, b.dnll, b.kl, b.top1_agree FROM src.ppl_buckets b JOIN ppl_map m ON m.old = b.run_id;"
                      "DROP TABLE temp.ppl_map", err))
        goto rollback;
    if (cb_store_exec(db, "DROP TABLE temp.run_map; DROP TABLE temp.point_map; COMMIT", err)) goto rollback;
    return cb_store_exec(db, "DETACH DATABASE src", err);
rollback:
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
