/* End-to-end sweeps with a mock engine (registered only in this test binary): it spins for a time
 * proportional to the work (tokens x depth), so the harness sees real, context-dependent timings. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engines/counters.h"
#include "../engines/engine.h"
#include "../harness/results/store.h"
#include "../harness/measure/sweep.h"

#define MOCK_D 7 /* the mock model's d_model marks it */

typedef struct cb_engine { int64_t len[4096]; cb_memory_report mem; } mock_engine;

static bool mock_supports(const cb_config *c) { return c->d_model == MOCK_D; }
static void mock_plan(const cb_config *c, const cb_engine_opts *o, int64_t ctx, int b, cb_memory_report *m) {
    (void)c; (void)o;
    memset(m, 0, sizeof *m);
    m->weights = 4096;
    m->kv_cache = (size_t)ctx * (size_t)b * 16;
    m->scratch = 1024;
    m->total = m->weights + m->kv_cache + m->scratch;
}
static void spin(double s) { double t = cb_now_seconds() + s; while (cb_now_seconds() < t) { } }
static bool mock_fail_create; /* a cause that a later resume finds fixed */
static int mock_create(const cb_model *md, const cb_engine_opts *o, cb_engine **out, cb_err *err) {
    if (mock_fail_create) { cb_err_set(err, "mock: create failed on purpose"); return -1; }
    mock_engine *e = calloc(1, sizeof *e);
    mock_plan(&md->cfg, o, o->max_context, o->max_batch, &e->mem);
    *out = e;
    return 0;
}
/* prefill reports half of its spin as SSD time and 1000 weight bytes per call, as an engine would */
static int mock_prefill(cb_engine *e, int seq, const int32_t *t, int n, float *lg, bool all, cb_err *err) {
    (void)t; (void)lg; (void)all; (void)err;
    long long t0 = cb_ctr_ns();
    spin(n * 2e-7 * (1 + (double)e->len[seq] / 4096));
    cb_ctr.ssd_ns += (cb_ctr_ns() - t0) / 2;
    cb_ctr.weight_bytes += 1000;
    cb_ctr.tokens += n;
    e->len[seq] += n;
    return 0;
}
static int mock_decode(cb_engine *e, int b, const int *s, const int32_t *t, float *lg, cb_err *err) {
    (void)t; (void)lg; (void)err;
    for (int i = 0; i < b; i++) { spin(5e-6 * (1 + 2 * (double)e->len[s[i]] / 4096)); e->len[s[i]]++; }
    return 0;
}
static int mock_fill(cb_engine *e, int seq, int64_t d, uint64_t seed, cb_err *err) { (void)seed; (void)err; e->len[seq] = d; return 0; }
static int64_t mock_len(const cb_engine *e, int s) { return e->len[s]; }
static void mock_memory(const cb_engine *e, cb_memory_report *m) { *m = e->mem; }
static void mock_reset(cb_engine *e, int s) { if (s < 0) memset(e->len, 0, sizeof e->len); else e->len[s] = 0; }
static void mock_destroy(cb_engine *e) { free(e); }
static const cb_engine_ops mock_ops = {
    .name = "mock", .description = "test engine: spins in proportion to tokens x depth", .supports = mock_supports,
    .plan = mock_plan, .create = mock_create, .prefill = mock_prefill, .decode = mock_decode,
    .fill_synthetic = mock_fill, .seq_len = mock_len, .memory = mock_memory, .reset = mock_reset, .destroy = mock_destroy };
CB_REGISTER_ENGINE(mock_ops)

static int mock_config(const char *name, cb_config *c, cb_err *err) {
    if (strncmp(name, "mock-", 5)) { cb_err_set(err, "no mock model %s", name); return -1; }
    memset(c, 0, sizeof *c);
    c->d_model = MOCK_D; c->vocab = 32; c->n_layers = 1;
    snprintf(c->model_type_str, sizeof c->model_type_str, "mock");
    return 0;
}
static int mock_open(const char *name, uint64_t seed, cb_dtype dt, cb_model *m, cb_err *err) {
    (void)seed; (void)dt;
    memset(m, 0, sizeof *m);
    return mock_config(name, &m->cfg, err);
}
static void mock_close(cb_model *m) { (void)m; }
static const cb_model_source mock_source = { mock_config, mock_open, mock_close };

static const char *wl_text =
    "name: mocktest\nengines: [mock]\nmodels: [mock-s, mock-xs]\ncontexts: 1K..4K\n"
    "phases: [prefill, decode, prefill_chunk, throughput, memory]\nbatch: [2, max]\n"
    "repetitions: 3\nwarmups: 1\ndecode_tokens: 4\nprefill_chunk: 256\nsample_depths: 3\n"
    "max_measured_prefill: 2K\nmemory_budget: 1M\n";

static int64_t q1(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    return v;
}

static void tmp_db(char *path, size_t n) {
    snprintf(path, n, "/tmp/ctxbench-test-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    unlink(path);
}

static void cleanup(const char *p) {
    char b[512];
    unlink(p);
    snprintf(b, sizeof b, "%s-wal", p); unlink(b);
    snprintf(b, sizeof b, "%s-shm", p); unlink(b);
}

static void opts_init(cb_sweep_opts *o, const char *db) {
    memset(o, 0, sizeof *o);
    o->db_path = db; o->workload_text = wl_text; o->quiet = true; o->shard_n = 1;
    o->source = &mock_source; o->commit_override = "test-commit";
    o->roofs_seconds = -1; /* not measured (tests/test_roofs.c covers it) except where a test asks */
}

Test(sweep, end_to_end_rows_labels_stats) {
    char db_path[256];
    tmp_db(db_path, sizeof db_path);
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(wl_text, "mock", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o;
    opts_init(&o, db_path); /* roofs: sweep/roofs_respect_the_memory_budget (this budget is below their arrays) */
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    /* 2 models x 3 contexts x (prefill, decode, chunk, 2 throughput, memory) = 36 points */
    cr_assert_eq(r.total, 36);
    cr_assert_eq(r.failed, 0);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 36);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label='analytic' AND phase='memory'"), 6);
    /* prefill above max_measured_prefill (2K) is sampled, with k and a fit error */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label='sampled' AND context=4096 AND samples_k=3 AND fit_error IS NOT NULL"), 2);
    /* validation of the sampled method against the measured prefill at 2K */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label='sampled' AND validation_rel_error IS NOT NULL"), 2);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label='sampled' AND ABS(validation_rel_error) < 0.5"), 2);
    /* 1M budget: throughput at batch 2 of 4K+ tokens (16 B/token) fits; 'max' batch found from the plan */
    cr_assert_eq(q1(db, "SELECT MIN(batch) FROM points WHERE phase='throughput' AND label='measured' AND batch > 2"), 15);
    /* batch_asked keeps what the workload asked for: 2, or 0 for max (whose batch is the one used) */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase='throughput' AND batch_asked = 2 AND batch = 2"), 6);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase='throughput' AND batch_asked = 0"), 6);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase<>'throughput' AND batch_asked IS NOT batch"), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label='measured' AND (median IS NULL OR ci_lo > median OR ci_hi < median OR n_samples <> 3)"), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM samples s JOIN points p ON p.id=s.point_id WHERE p.label='measured' AND p.phase='decode'"), 18);
    cr_assert(q1(db, "SELECT COUNT(*) FROM memory WHERE source='analytic'") >= 36 * 6 - 0);
    cr_assert(q1(db, "SELECT COUNT(*) FROM memory WHERE source='engine'") > 0);
    cr_assert(q1(db, "SELECT COUNT(*) FROM memory WHERE source='rss' AND bytes > 0") > 0);
    /* decode at depth 4K costs more per token than at 1K (the mock spins 2.5x longer); the fastest
     * repetition is compared, as preemption by other processes on a shared machine only adds time */
    cr_assert(q1(db, "SELECT (SELECT MIN(s.seconds) FROM samples s JOIN points p ON p.id=s.point_id WHERE p.model='mock-s' AND p.phase='decode' AND p.context=4096) >"
                     " (SELECT MIN(s.seconds) FROM samples s JOIN points p ON p.id=s.point_id WHERE p.model='mock-s' AND p.phase='decode' AND p.context=1024)") == 1);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM runs WHERE finished_utc IS NOT NULL AND git_commit='test-commit'"), 1);
    /* rates: the mock's SSD half of the prefill spin is a share near 0.5; bytes per token 1000 per call */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM rates WHERE phase='prefill' AND (ssd_share < 0.3 OR ssd_share > 0.55)"), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM rates WHERE phase='prefill' AND ssd_share IS NOT NULL"), 4);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM rates WHERE phase='prefill_chunk' AND ABS(bytes_per_token - 1000.0/256) < 1e-9"), 6);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label='measured' AND timed_seconds IS NULL"), 0);
    cb_store_close(db);

    /* a tiny budget refuses before starting, with the bytes it would need */
    cleanup(db_path);
    cb_workload w2 = w;
    w2.memory_budget_bytes = 8000;
    cr_assert_eq(cb_sweep_run(&w2, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0);
    cr_assert(q1(db, "SELECT COUNT(*) FROM points WHERE label='refused' AND refused_bytes > 8000 AND median IS NULL") >= 12);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 36);
    cb_store_close(db);
    cleanup(db_path);
}

Test(sweep, kill9_then_resume_loses_nothing_duplicates_nothing) {
    char db_path[256];
    tmp_db(db_path, sizeof db_path);
    static const char *slow =
        "name: slow\nengines: [mock]\nmodels: [mock-a]\ncontexts: [1K, 2K, 4K, 8K, 16K, 32K]\n"
        "phases: [prefill, decode]\nrepetitions: 3\nwarmups: 0\ndecode_tokens: 200\nmemory_budget: 1G\n";
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(slow, "slow", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o;
    opts_init(&o, db_path);
    o.workload_text = slow;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        cb_sweep_result r;
        _exit(cb_sweep_run(&w, &o, &r, &err) == 0 ? 0 : 1);
    }
    /* wait for at least two finished points, then kill -9 */
    int64_t n = 0;
    for (int i = 0; i < 2000 && n < 2; i++) {
        usleep(5000);
        sqlite3 *db;
        if (access(db_path, F_OK) == 0 && sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
            sqlite3_busy_timeout(db, 1000);
            sqlite3_stmt *s;
            if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM points", -1, &s, NULL) == SQLITE_OK) {
                if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
                sqlite3_finalize(s);
            }
            sqlite3_close(db);
        }
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st), "the sweep finished before it could be killed");
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    int64_t before = q1(db, "SELECT COUNT(*) FROM points");
    cr_assert(before >= 2 && before < 12, "%lld points before resume", (long long)before);
    cb_store_close(db);
    o.resume = true;
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.skipped_resume, before);
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 12);
    cr_assert_eq(q1(db, "SELECT COUNT(DISTINCT point_key) FROM points"), 12);
    cb_store_close(db);
    /* another commit does not count as done */
    o.commit_override = "other-commit";
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.skipped_resume, 0);
    cleanup(db_path);
}

Test(sweep, shards_partition_the_points) {
    char a[256], b[256];
    tmp_db(a, sizeof a);
    tmp_db(b, sizeof b);
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(wl_text, "mock", &w, &err), 0);
    w.repetitions = 1; w.warmups = 0;
    cb_sweep_opts o;
    cb_sweep_result r0, r1;
    opts_init(&o, a); o.shard_i = 0; o.shard_n = 2;
    cr_assert_eq(cb_sweep_run(&w, &o, &r0, &err), 0, "%s", err.msg);
    opts_init(&o, b); o.shard_i = 1; o.shard_n = 2;
    cr_assert_eq(cb_sweep_run(&w, &o, &r1, &err), 0, "%s", err.msg);
    cr_assert_eq(r0.total + r1.total, 36);
    cr_assert_eq(r0.total, 18);
    /* ctxbench merge OUT a b: both runs and all their rows, renumbered, nothing lost */
    char out[256], cmd[1024];
    tmp_db(out, sizeof out);
    const char *bin = getenv("CTXBENCH_BIN") ? getenv("CTXBENCH_BIN") : "build/ctxbench";
    snprintf(cmd, sizeof cmd, "%s merge %s %s %s >/dev/null", bin, out, a, b);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(out, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM runs"), 2);
    cr_assert_eq(q1(db, "SELECT COUNT(DISTINCT point_key) FROM points"), 36);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points p JOIN runs r ON r.id = p.run_id"), 36);
    cr_assert_eq(q1(db, "SELECT COUNT(DISTINCT shard) FROM runs"), 2);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM samples s LEFT JOIN points p ON p.id = s.point_id WHERE p.id IS NULL"), 0);
    cb_store_close(db);
    /* merging a again changes nothing: its run is already there (skipped with a note) */
    snprintf(cmd, sizeof cmd, "%s merge %s %s >/dev/null 2>&1", bin, out, a);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(cb_store_open(out, &db, &err), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM runs"), 2);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 36);
    cb_store_close(db);
    cleanup(a); cleanup(b); cleanup(out);
}

Test(sweep, sampled_estimate_integrates_a_linear_cost_exactly) {
    /* t(d) = 1e-6 + 1e-9 d per token: total over N = 1e-6 N + 1e-9 N^2 / 2 */
    double d[4] = { 0, 1000, 2000, 3000 }, t[4];
    for (int i = 0; i < 4; i++) t[i] = 1e-6 + 1e-9 * d[i];
    double fe;
    double est = cb_sampled_prefill_estimate(d, t, 4, 4096, &fe);
    cr_assert_float_eq(est, 1e-6 * 4096 + 1e-9 * 4096.0 * 4096 / 2, 1e-12);
    cr_assert(fe < 1e-9);
}

Test(sweep, spent_run_budget_refuses_the_rest_with_reason) {
    char p[256];
    tmp_db(p, sizeof p);
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(wl_text, "mock", &w, &err), 0);
    w.time_budget_run = 1e-9;
    cb_sweep_opts o;
    opts_init(&o, p);
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(p, &db, &err), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 36);
    cr_assert(q1(db, "SELECT COUNT(*) FROM points WHERE label='refused' AND status LIKE 'run time budget%'") >= 30);
    cb_store_close(db);
    cleanup(p);
}

/* Decode and throughput points carry a triad probe taken right before and right after their timed
 * repetitions (the rates view's % of nearby bandwidth), which stays out of their peak RSS and faults; other phases and bandwidth_probe: off carry none;
 * a memory budget with no room for the probe's arrays skips it and says so in the status. */
Test(sweep, bandwidth_probe_next_to_bandwidth_bound_points) {
    char db_path[256];
    tmp_db(db_path, sizeof db_path);
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse("name: probe\nengines: [mock]\nmodels: [mock-s]\ncontexts: [1K]\n"
                                   "phases: [decode, throughput, prefill_chunk]\nbatch: [2]\nrepetitions: 2\nwarmups: 0\n"
                                   "decode_tokens: 2\nprefill_chunk: 64\nmemory_budget: 1G\n", "probe", &w, &err), 0, "%s", err.msg);
    cr_assert(w.bandwidth_probe, "on by default");
    cb_sweep_opts o;
    opts_init(&o, db_path);
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase IN ('decode', 'throughput') AND label='measured' AND"
                        " triad_before_gbps > 0 AND triad_after_gbps > 0 AND status NOT LIKE '%probe%'"), 2);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase='prefill_chunk' AND triad_before_gbps IS NULL"), 1);
    /* the probe's 3 x 128 MiB are not the point's memory: not in its peak RSS, not in its page faults */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase IN ('decode', 'throughput') AND peak_rss_bytes < 300 * 1048576"
                        " AND minor_faults < 40000"), 2);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM rates WHERE phase IN ('decode', 'throughput') AND triad_near_gbps > 0 AND"
                        " triad_near_gbps >= triad_drift"), 2);
    cb_store_close(db);
    cleanup(db_path);

    w.bandwidth_probe = false;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE triad_before_gbps IS NOT NULL OR triad_after_gbps IS NOT NULL"), 0);
    cb_store_close(db);
    cleanup(db_path);

    w.bandwidth_probe = true;
    w.memory_budget_bytes = 1 << 20, w.memory_budget_fraction = 0;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase='decode' AND label='measured' AND triad_before_gbps IS NULL"
                        " AND status LIKE 'ok; %no bandwidth probe: plan % > memory budget 1048576%'"), 1);
    cb_store_close(db);
    cleanup(db_path);
}

/* --resume tries failed points again, and points refused for time; each retried point replaces its
 * earlier row (one row per key), while memory refusals and finished points stay as they are. */
Test(sweep, resume_retries_failed_and_time_refused_points) {
    char db_path[256];
    tmp_db(db_path, sizeof db_path);
    static const char *wl =
        "name: retry\nengines: [mock]\nmodels: [mock-a]\ncontexts: [1K, 2K, 64M]\nphases: [prefill, decode]\n"
        "repetitions: 1\nwarmups: 0\ndecode_tokens: 2\nmemory_budget: 64M\nmax_measured_prefill: 1G\n";
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(wl, "retry", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o;
    opts_init(&o, db_path);
    o.workload_text = wl;
    cb_sweep_result r;
    mock_fail_create = true;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    mock_fail_create = false;
    cr_assert_eq(r.failed, 4);
    cr_assert_eq(r.refused, 2); /* 64M x 16 bytes > 64M: refused for memory */
    o.resume = true;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.skipped_resume, 2, "memory refusals are settled");
    cr_assert_eq(r.measured, 4);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 6);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label = 'failed'"), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM samples s LEFT JOIN points p ON p.id = s.point_id WHERE p.id IS NULL"), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM memory m LEFT JOIN points p ON p.id = m.point_id WHERE p.id IS NULL"), 0);
    cb_store_close(db);
    /* refused for time (a tiny point budget after a first estimate), then resumed with room: tried again */
    w.time_budget_point = 1e-9;
    o.resume = false;
    cleanup(db_path);
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    int time_refused = r.refused - 2;
    cr_assert(time_refused >= 1, "%d refused", r.refused);
    w.time_budget_point = 600;
    o.resume = true;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.run, time_refused, "%d retried, %d refused for time", r.run, time_refused);
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 6);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label = 'refused' AND refused_bytes IS NULL"), 0);
    cb_store_close(db);
    cleanup(db_path);
}

/* The run-start roofs allocate 3 x 128 MiB: under a smaller memory budget they are not measured (the run
 * row says why) instead of allocating past the budget. */
Test(sweep, roofs_respect_the_memory_budget) {
    char db_path[256];
    tmp_db(db_path, sizeof db_path);
    static const char *wl = "name: small\nengines: [mock]\nmodels: [mock-a]\ncontexts: [1K]\nphases: [memory]\nmemory_budget: 64M\n";
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(wl, "small", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o;
    opts_init(&o, db_path);
    o.workload_text = wl;
    o.roofs_seconds = 0.05;
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM runs WHERE roof_fma_gflops IS NULL AND roof_note LIKE '%exceed the memory budget 67108864%'"), 1);
    cb_store_close(db);
    cleanup(db_path);
    /* with room for them: measured once for the run, and the peaks taken from them (the workload gives none) */
    w.memory_budget_bytes = 1ll << 30;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM runs WHERE roof_label='measured' AND roof_fma_gflops > 0 AND"
                        " roof_fma_gflops_1t > 0 AND roof_triad_gbps > 0 AND roof_triad_gbps_1t > 0 AND"
                        " peak_gflops = roof_fma_gflops AND peak_gbps = roof_triad_gbps"), 1);
    cb_store_close(db);
    cleanup(db_path);
}

/* The same workload gives the same points: every point's identity, label, batch, fill and unit, in
 * order, as the sweep stored them before it was split into plan / decide / measure / store (a 48K memory
 * budget refuses the deepest points; there is no time budget, so nothing here depends on timings). */
Test(sweep, same_workload_same_points) {
    static const char *const expected[] = {
#include "data/sweep_points.inc"
    };
    char db_path[256], text[1024];
    tmp_db(db_path, sizeof db_path);
    snprintf(text, sizeof text, "%.*smemory_budget: 48K\n", (int)(strstr(wl_text, "memory_budget") - wl_text), wl_text);
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(text, "mocktest.yaml", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o;
    opts_init(&o, db_path);
    o.workload_text = text;
    o.threads_override = 2; /* the workload's default is the machine's core count, part of each point */
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT point_key || ' ' || arch || ' ' || label || ' ' || batch || ' ' || fill || ' ' ||"
                                        " COALESCE(unit, '-') || ' ' || COALESCE(n_samples, '-') FROM points ORDER BY id",
                                    -1, &s, NULL), SQLITE_OK);
    size_t n = 0, n_expected = sizeof expected / sizeof expected[0];
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *got = (const char *)sqlite3_column_text(s, 0);
        if (getenv("CB_PRINT_POINTS")) printf("        \"%s\",\n", got);
        else {
            cr_assert(n < n_expected, "more points than expected: %s", got);
            cr_assert_str_eq(got, expected[n], "point %zu: got %s, expected %s", n + 1, got, expected[n]);
        }
        n++;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    if (!getenv("CB_PRINT_POINTS")) cr_assert_eq(n, n_expected);
    cleanup(db_path);
}

/* memory_check: allocate creates the engine over a preset's shapes (no weights generated): the KV cache and
 * state it allocates equal the plan; a point whose non-weight bytes exceed the budget keeps the plan only. */
Test(sweep, memory_check_allocates_over_preset_shapes) {
    char db_path[256];
    tmp_db(db_path, sizeof db_path);
    static const char *text = "name: memcheck\nengines: auto\nmodels: [transformer-tiny, bamba-tiny]\ncontexts: [1K, 64K]\n"
                              "phases: [memory]\nmemory_budget: 48M\nmemory_check: allocate\n";
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(text, "memcheck", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o;
    memset(&o, 0, sizeof o);
    o.db_path = db_path; o.workload_text = text; o.quiet = true; o.shard_n = 1;
    o.commit_override = "test-commit"; o.roofs_seconds = -1;
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.analytic, 4);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0);
    /* 1K fits 48M for both; transformer-tiny at 64K (KV 128 MiB) does not, bamba-tiny (2 attention layers: 32 MiB) does */
    cr_assert_eq(q1(db, "SELECT COUNT(DISTINCT point_id) FROM memory WHERE source = 'engine'"), 3);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points p JOIN memory a ON a.point_id = p.id AND a.source = 'analytic' JOIN memory e"
                        " ON e.point_id = p.id AND e.source = 'engine' AND e.category = a.category WHERE a.category IN"
                        " ('kv_cache', 'ssm_state', 'conv_state') AND a.bytes = e.bytes"), 9);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE model = 'transformer-tiny' AND context = 65536 AND status LIKE"
                        " '%no allocation check: KV + state + scratch % bytes > memory budget 50331648%'"), 1);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE status LIKE '%allocated equal the plan'"), 3);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label <> 'analytic'"), 0);
    cb_store_close(db);
    cleanup(db_path);
}

/* Every row of points and samples as one text line each, in id order (what "identical" compares). */
static char *dump_rows(sqlite3 *db) {
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    const char *sql[] = { "SELECT * FROM points ORDER BY id", "SELECT * FROM samples ORDER BY point_id, rep" };
    for (int q = 0; q < 2; q++) {
        sqlite3_stmt *s;
        cr_assert_eq(sqlite3_prepare_v2(db, sql[q], -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
        while (sqlite3_step(s) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(s); c++) {
                const unsigned char *t = sqlite3_column_text(s, c);
                fprintf(f, "%s%s", c ? "|" : "", t ? (const char *)t : "NULL");
            }
            fputc('\n', f);
        }
        sqlite3_finalize(s);
    }
    fclose(f);
    return out;
}

/* Whether every line of `old` is a line of `now` (rows are never changed or removed, only added). */
static bool rows_kept(const char *old, const char *now) {
    size_t n = strlen(now);
    char *hay = malloc(n + 2);
    hay[0] = '\n';
    memcpy(hay + 1, now, n + 1);
    bool ok = true;
    for (const char *l = old; ok && *l;) {
        const char *e = strchr(l, '\n');
        size_t len = (size_t)(e - l) + 1;
        char *needle = malloc(len + 2);
        needle[0] = '\n';
        memcpy(needle + 1, l, len);
        needle[len + 1] = 0;
        ok = strstr(hay, needle) != NULL;
        free(needle);
        l = e + 1;
    }
    free(hay);
    return ok;
}

/* Crash consistency: the same sweep killed with SIGKILL at random moments, five times, each time resumed
 * (docs/promises.md): after every kill the database passes integrity_check, holds no point twice and no
 * orphaned sample, and every row stored before a kill is still there, byte for byte; the last resume
 * completes every point. */
Test(sweep, sigkill_at_random_moments_then_resume, .timeout = 60) {
    char db_path[256];
    tmp_db(db_path, sizeof db_path);
    static const char *wl =
        "name: crash\nengines: [mock]\nmodels: [mock-a, mock-b]\ncontexts: [1K, 4K, 16K]\nphases: [prefill, decode, memory]\n"
        "repetitions: 2\nwarmups: 0\ndecode_tokens: 100\nmemory_budget: 1G\nbandwidth_probe: off\n";
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(wl, "crash", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o;
    opts_init(&o, db_path);
    o.workload_text = wl;
    o.resume = true;
    srand((unsigned)getpid());
    char *before = strdup("");
    int kills = 0;
    for (int round = 0; round < 5; round++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            cb_sweep_result r;
            _exit(cb_sweep_run(&w, &o, &r, &err) == 0 ? 0 : 1);
        }
        usleep((useconds_t)(5000 + rand() % 60000)); /* 5 .. 65 ms into the run */
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        kills += WIFSIGNALED(st);
        sqlite3 *db;
        cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "round %d: %s", round, err.msg);
        sqlite3_stmt *s;
        cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
        cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok", "round %d", round);
        sqlite3_finalize(s);
        cr_assert_eq(q1(db, "SELECT COUNT(*) - COUNT(DISTINCT point_key) FROM points"), 0, "round %d: a point twice", round);
        cr_assert_eq(q1(db, "SELECT COUNT(*) FROM samples s LEFT JOIN points p ON p.id = s.point_id WHERE p.id IS NULL"), 0);
        char *now = dump_rows(db);
        /* every row stored before is still there as it was: nothing stored is changed or lost */
        cr_assert(rows_kept(before, now), "round %d: a stored row changed or vanished", round);
        free(before);
        before = now;
        cb_store_close(db);
    }
    cr_assert(kills >= 3, "only %d of 5 runs were killed before finishing", kills);
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 18);
    cr_assert_eq(q1(db, "SELECT COUNT(DISTINCT point_key) FROM points"), 18);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE label NOT IN ('measured', 'analytic')"), 0);
    char *now = dump_rows(db);
    cr_assert(rows_kept(before, now), "the final resume changed a stored row");
    free(now);
    free(before);
    cb_store_close(db);
    cleanup(db_path);
}
