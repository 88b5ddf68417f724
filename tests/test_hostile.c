/* Hostile input: each case gets a clear error naming the file / key / option, exit status 1, and never
 * a crash (docs/promises.md lists what ctxbench refuses and how each refusal is tested). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engines/engine.h"
#include "../engines/model/config.h"
#include "../engines/model/presets.h"
#include "../harness/results/store.h"
#include "../harness/measure/sweep.h"
#include "../harness/measure/workload.h"

static const char *bin(void) { return getenv("CTXBENCH_BIN") ? getenv("CTXBENCH_BIN") : "build/ctxbench"; }

/* Runs `args` through the CLI; returns the exit status (-1: killed by a signal), stderr+stdout in out. */
static int cli(const char *args, char *out, size_t n) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = 0;
    int st = pclose(p);
    /* under make asan a sanitizer report also exits 1: it must never be the reason */
    cr_assert(!strstr(out, "Sanitizer") && !strstr(out, "runtime error"), "%s: sanitizer report:\n%s", args, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void tmp_path(char *path, size_t n, const char *suffix) {
    snprintf(path, n, "/tmp/ctxbench-hostile-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    unlink(path);
    strncat(path, suffix, n - strlen(path) - 1);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* 64 entries in every list: 64^5 x 5 points overflowed the int count and wrote past the points array. */
Test(hostile, sweep_with_every_list_at_its_maximum_is_refused_not_overflowed) {
    char text[16384] = "name: huge\nengines: [", *p;
    p = text + strlen(text);
    for (int i = 0; i < 64; i++) p += sprintf(p, "%stransformer", i ? ", " : "");
    p += sprintf(p, "]\nmodels: [");
    for (int i = 0; i < 64; i++) p += sprintf(p, "%stransformer-tiny", i ? ", " : "");
    p += sprintf(p, "]\ncontexts: [");
    for (int i = 0; i < 64; i++) p += sprintf(p, "%s%d", i ? ", " : "", 64 * (i + 1));
    p += sprintf(p, "]\nthreads: [");
    for (int i = 0; i < 64; i++) p += sprintf(p, "%s%d", i ? ", " : "", i + 1);
    p += sprintf(p, "]\nbatch: [");
    for (int i = 0; i < 64; i++) p += sprintf(p, "%s%d", i ? ", " : "", i + 1);
    sprintf(p, "]\nphases: [prefill, decode, prefill_chunk, throughput, memory]\n");
    char wl[256], db[256], cmd[1024], out[8192];
    tmp_path(wl, sizeof wl, ".yaml");
    tmp_path(db, sizeof db, ".db");
    write_file(wl, text);
    snprintf(cmd, sizeof cmd, "run %s --db %s --quiet", wl, db);
    int rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "huge") && strstr(out, "exceed the limit of 1000000 points"), "%s", out);
    cr_assert(access(db, F_OK) != 0, "a refused workload created %s", db);
    unlink(wl);
}

/* --batch above the reference's tokens wrote B logit rows into a buffer of T rows. */
Test(hostile, verify_batch_larger_than_the_reference_is_refused) {
    char out[8192];
    for (int i = 0; i < 2; i++) {
        int rc = cli(i ? "verify tests/fixtures/llama-tiny --batch 161" : "verify tests/fixtures/llama-tiny --batch 200", out,
                     sizeof out);
        cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
        cr_assert(strstr(out, i ? "--batch 161" : "--batch 200") && strstr(out, "160 tokens"), "%s", out);
    }
}

/* Contexts whose KV cache passes 2^63 (or 2^64) bytes: the plan saturates, never wraps to 0 or negative. */
Test(hostile, memory_plan_saturates_instead_of_wrapping) {
    const char *models[] = { "transformer-9b", "transformer-tiny", "bamba-9b", "mamba2-tiny" };
    const int64_t ctxs[] = { 1ll << 46, 1ll << 52, 1ll << 60 };
    for (int mi = 0; mi < 4; mi++) {
        cb_config cfg;
        cb_err err = { "" };
        cr_assert_eq(cb_model_config(models[mi], &cfg, &err), 0, "%s", err.msg);
        const cb_engine_ops *ops = cb_engine_for_config(&cfg);
        cr_assert_not_null(ops);
        size_t prev = 0;
        for (int ci = 0; ci < 3; ci++) {
            cb_engine_opts o;
            cb_engine_opts_default(&o);
            o.max_context = ctxs[ci];
            cb_memory_report m;
            for (int b = 1; b <= 4096; b *= 64) {
                ops->plan(&cfg, &o, ctxs[ci], b, &m);
                cr_assert(m.total >= m.kv_cache && m.total >= m.weights && m.total <= CB_BYTES_MAX, "%s", models[mi]);
                cr_assert(m.total >= prev, "%s at %lld x %d: total %zu below a smaller point's %zu", models[mi],
                          (long long)ctxs[ci], b, m.total, prev);
                if (cfg.n_attn_layers) cr_assert(m.kv_cache > 0 && (int64_t)m.kv_cache > 0, "%s", models[mi]);
                prev = m.total;
            }
            prev = 0;
        }
    }
}

/* ... and the sweep refuses such a point with its bytes instead of trying it. */
Test(hostile, sweep_refuses_an_overflowing_plan_with_its_bytes) {
    char wl[256], db[256], cmd[1024], out[8192];
    tmp_path(wl, sizeof wl, ".yaml");
    tmp_path(db, sizeof db, ".db");
    write_file(wl, "name: far\nmodels: [transformer-tiny, transformer-9b]\ncontexts: [4096T, 64T]\nphases: [prefill]\n"
                   "memory_budget: 1G\nrepetitions: 1\nwarmups: 0\nbandwidth_probe: off\n");
    snprintf(cmd, sizeof cmd, "run %s --db %s --quiet && sqlite3 %s \"SELECT label, refused_bytes > 1073741824, "
             "status FROM points\"", wl, db, db);
    int rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    int refused = 0;
    for (const char *q = out; (q = strstr(q, "refused|1|plan needs")); q++) refused++;
    cr_assert_eq(refused, 4, "%s", out);
    unlink(wl);
    char b[300];
    unlink(db);
    snprintf(b, sizeof b, "%s-wal", db); unlink(b);
    snprintf(b, sizeof b, "%s-shm", db); unlink(b);
}

/* Huge dimensions are rejected by key before any product of them is formed (UBSan: signed overflow). */
Test(hostile, config_with_huge_dimensions_is_rejected_by_key) {
    static const struct { const char *json, *key; } cases[] = {
        { "{\"model_type\": \"llama\", \"hidden_size\": 900000000, \"num_hidden_layers\": 2, \"vocab_size\": 900000000,"
          " \"num_attention_heads\": 1, \"intermediate_size\": 8}", "hidden_size" },
        { "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 900000000,"
          " \"num_attention_heads\": 1, \"intermediate_size\": 8}", "vocab_size" },
        { "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
          " \"num_attention_heads\": 1, \"intermediate_size\": 900000000}", "intermediate_size" },
        { "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
          " \"num_attention_heads\": 100000, \"head_dim\": 100000, \"num_key_value_heads\": 1, \"intermediate_size\": 8}",
          "num_attention_heads" },
        { "{\"model_type\": \"mamba2\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
          " \"num_heads\": 999999999, \"head_dim\": 999999999, \"expand\": 2}", "num_heads" },
        { "{\"model_type\": \"bamba\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
          " \"mamba_n_heads\": 2, \"mamba_d_head\": 64, \"mamba_n_groups\": 999999999, \"mamba_d_state\": 999999999,"
          " \"intermediate_size\": 8}", "groups x state" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cb_config cfg;
        cb_err err = { "" };
        cr_assert_neq(cb_config_parse(cases[i].json, "cfg.json", &cfg, &err), 0, "accepted %s", cases[i].json);
        cr_assert(strstr(err.msg, "cfg.json") && strstr(err.msg, cases[i].key), "case %zu: %s", i, err.msg);
    }
}

static char *slurp(const char *path);

/* Several processes creating the same new database at once: each migration step re-reads the version
 * inside its write transaction, so every opener succeeds and the schema is created once. */
Test(hostile, concurrent_creation_of_one_database_races_nowhere) {
    for (int round = 0; round < 5; round++) {
        char db[256];
        tmp_path(db, sizeof db, ".db");
        int go[2];
        cr_assert_eq(pipe(go), 0);
        pid_t kids[4];
        for (int k = 0; k < 4; k++) {
            kids[k] = fork();
            cr_assert(kids[k] >= 0);
            if (kids[k] == 0) {
                char c;
                close(go[1]);
                while (read(go[0], &c, 1) < 0) { } /* all start when the pipe closes */
                sqlite3 *h;
                cb_err e = { "" };
                if (cb_store_open(db, &h, &e)) {
                    char why[600];
                    snprintf(why, sizeof why, "%s.why%d", db, k);
                    FILE *f = fopen(why, "w");
                    if (f) fprintf(f, "%s", e.msg), fclose(f);
                    _exit(1);
                }
                cb_store_close(h);
                _exit(0);
            }
        }
        close(go[0]);
        close(go[1]);
        for (int k = 0; k < 4; k++) {
            int st = -1;
            pid_t w;
            while ((w = waitpid(kids[k], &st, 0)) < 0 && errno == EINTR) { }
            cr_assert_eq(w, kids[k], "waitpid: %s", strerror(errno));
            char why[600];
            snprintf(why, sizeof why, "%s.why%d", db, k);
            char *msg = slurp(why);
            unlink(why);
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: opener %d: status %d: %s", round, k, st, msg ? msg : "");
        }
        sqlite3 *h;
        cb_err e = { "" };
        cr_assert_eq(cb_store_open_read(db, &h, &e), 0, "%s", e.msg);
        sqlite3_stmt *s;
        cr_assert_eq(sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'runs'", -1, &s, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int(s, 0), 1);
        sqlite3_finalize(s);
        sqlite3_close(h);
        char b[300];
        unlink(db);
        snprintf(b, sizeof b, "%s-wal", db); unlink(b);
        snprintf(b, sizeof b, "%s-shm", db); unlink(b);
    }
}

/* ---- databases: missing, read-only, from the future; outputs never half-written ---- */

static void rm_db(const char *db) {
    char b[4200];
    unlink(db);
    snprintf(b, sizeof b, "%s-wal", db); unlink(b);
    snprintf(b, sizeof b, "%s-shm", db); unlink(b);
}

/* A small results database made by a real (tiny, analytic-only) run. */
static void make_db(const char *db) {
    char wl[256], cmd[1024], out[8192];
    tmp_path(wl, sizeof wl, ".yaml");
    write_file(wl, "name: small\nmodels: [transformer-tiny, bamba-tiny]\ncontexts: [1K, 4K]\nphases: [memory]\n");
    snprintf(cmd, sizeof cmd, "run %s --db %s --quiet", wl, db);
    int rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    unlink(wl);
}

static int64_t scalar(const char *db, const char *sql) {
    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

Test(hostile, report_with_a_missing_database_leaves_the_old_report_whole) {
    char md[256], tex[256], cmd[1024], out[8192];
    tmp_path(md, sizeof md, ".md");
    tmp_path(tex, sizeof tex, ".tex");
    write_file(md, "old report\n");
    write_file(tex, "old table\n");
    snprintf(cmd, sizeof cmd, "report --db /tmp/no-such-ctxbench.db --out %s --tex %s", md, tex);
    int rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "/tmp/no-such-ctxbench.db"), "%s", out);
    cr_assert_str_eq(slurp(md), "old report\n");
    cr_assert_str_eq(slurp(tex), "old table\n");
    cr_assert(access("/tmp/no-such-ctxbench.db", F_OK) != 0, "the missing database was created");
    /* and no temporary file is left beside them */
    snprintf(cmd, sizeof cmd, "ls -a /tmp | grep -c '^\\.ctxbench-hostile-%d.*tmp-' || true", (int)getpid());
    FILE *p = popen(cmd, "r");
    int n = -1;
    cr_assert_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    cr_assert_eq(n, 0);
    unlink(md);
    unlink(tex);
}

Test(hostile, merge_twice_is_a_no_op_and_a_missing_input_is_refused) {
    char a[256], o[256], ghost[256], cmd[1024], out[8192];
    tmp_path(a, sizeof a, ".db");
    tmp_path(o, sizeof o, ".db");
    tmp_path(ghost, sizeof ghost, ".db");
    make_db(a);
    /* a DELETE-journal input stays so: inputs are opened read-only */
    snprintf(cmd, sizeof cmd, "sqlite3 %s 'PRAGMA journal_mode=DELETE' >/dev/null", a);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "merge %s %s %s", o, a, a);
    int rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "already in") && strstr(out, "skipped"), "%s", out);
    cr_assert_eq(scalar(o, "SELECT COUNT(*) FROM runs"), 1);
    cr_assert_eq(scalar(o, "SELECT COUNT(*) FROM points"), scalar(a, "SELECT COUNT(*) FROM points"));
    cr_assert_eq(scalar(o, "SELECT COUNT(*) - COUNT(DISTINCT point_key) FROM points"), 0);
    snprintf(cmd, sizeof cmd, "merge %s %s", o, a);
    cr_assert_eq(cli(cmd, out, sizeof out), 0, "%s", out);
    cr_assert_eq(scalar(o, "SELECT COUNT(*) FROM runs"), 1);
    FILE *p;
    snprintf(cmd, sizeof cmd, "sqlite3 %s 'PRAGMA journal_mode'", a);
    cr_assert_not_null(p = popen(cmd, "r"));
    char mode[32] = "";
    cr_assert_not_null(fgets(mode, sizeof mode, p));
    pclose(p);
    cr_assert_str_eq(mode, "delete\n", "merge changed its input's journal mode");
    /* a missing input: an error naming it, nothing created, the output untouched */
    int64_t runs = scalar(o, "SELECT COUNT(*) FROM runs");
    snprintf(cmd, sizeof cmd, "merge %s %s", o, ghost);
    rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, ghost), "%s", out);
    cr_assert(access(ghost, F_OK) != 0, "merge created its missing input");
    cr_assert_eq(scalar(o, "SELECT COUNT(*) FROM runs"), runs);
    /* ... and into a new output: none appears */
    char o2[256];
    tmp_path(o2, sizeof o2, ".db");
    snprintf(cmd, sizeof cmd, "merge %s %s %s", o2, a, ghost);
    cr_assert_eq(cli(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(access(o2, F_OK) != 0, "a failed merge left %s", o2);
    rm_db(a); rm_db(o);
}

/* Root reads anything: the reader of a read-only database is the unprivileged user then. */
static void as_reader(char *cmd, size_t n, const char *args) {
    if (geteuid() == 0) snprintf(cmd, n, "setpriv --reuid=65534 --regid=65534 --clear-groups %s %s 2>&1", bin(), args);
    else snprintf(cmd, n, "%s %s 2>&1", bin(), args);
}
static int run_shell(const char *cmd, char *out, size_t n) {
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = 0;
    int st = pclose(p);
    cr_assert(!strstr(out, "Sanitizer") && !strstr(out, "runtime error"), "%s: sanitizer report:\n%s", cmd, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(hostile, report_plot_merge_read_a_read_only_database) {
    char dir[] = "/tmp/ctxbench-ro-XXXXXX", db[300], args[2048], cmd[4096], out[16384];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/r.db", dir);
    make_db(db);
    cr_assert_eq(chmod(db, 0444), 0);
    cr_assert_eq(chmod(dir, 0555), 0); /* no -shm can be created beside it */
    snprintf(args, sizeof args, "report --db %s --out - --tex ''", db);
    as_reader(cmd, sizeof cmd, args);
    int rc = run_shell(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s: %s", cmd, out);
    cr_assert(strstr(out, "Bamba claims"), "%s", out);
    snprintf(args, sizeof args, "plot --db %s --out /tmp/ctxbench-ro-plot-%d --formats svg", db, (int)getpid());
    as_reader(cmd, sizeof cmd, args);
    rc = run_shell(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s: %s", cmd, out);
    snprintf(args, sizeof args, "merge /tmp/ctxbench-ro-merge-%d.db %s", (int)getpid(), db);
    as_reader(cmd, sizeof cmd, args);
    rc = run_shell(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s: %s", cmd, out);
    snprintf(cmd, sizeof cmd, "/tmp/ctxbench-ro-merge-%d.db", (int)getpid());
    cr_assert_eq(scalar(cmd, "SELECT COUNT(*) FROM points"), scalar(db, "SELECT COUNT(*) FROM points"));
    rm_db(cmd);
    snprintf(cmd, sizeof cmd, "chmod 755 %s && rm -rf %s /tmp/ctxbench-ro-plot-%d", dir, dir, (int)getpid());
    cr_assert_eq(system(cmd), 0);
}

/* Reading a database (report, merge) leaves no -wal / -shm files beside it. */
Test(hostile, reading_a_database_leaves_no_wal_or_shm_files) {
    char dir[] = "/tmp/ctxbench-rd-XXXXXX", db[300], cmd[1024], out[16384], side[320];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/r.db", dir);
    make_db(db);
    snprintf(cmd, sizeof cmd, "report --db %s --out %s/r.md --tex ''", db, dir);
    cr_assert_eq(cli(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "merge %s/m.db %s", dir, db);
    cr_assert_eq(cli(cmd, out, sizeof out), 0, "%s", out);
    const char *suffix[] = { "-wal", "-shm" };
    for (int i = 0; i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", db, suffix[i]);
        cr_assert_neq(access(side, F_OK), 0, "%s was left beside the database read by report/merge", side);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(hostile, plot_into_an_unwritable_folder_fails_cleanly) {
    char dir[] = "/tmp/ctxbench-unw-XXXXXX", db[300], args[2048], cmd[4096], out[16384];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/r.db", dir);
    make_db(db);
    char fig[320];
    snprintf(fig, sizeof fig, "%s/figs", dir);
    cr_assert_eq(mkdir(fig, 0555), 0);
    cr_assert_eq(chmod(dir, 0755), 0);
    snprintf(args, sizeof args, "plot --db %s --out %s --formats png", db, fig);
    as_reader(cmd, sizeof cmd, args);
    int rc = run_shell(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s: %s", cmd, out);
    cr_assert(strstr(out, fig), "%s", out);
    cr_assert(!strstr(out, "PNG"), "a PNG went to stdout: %.200s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(hostile, plot_selection_that_matches_nothing_is_an_error) {
    char db[256], cmd[1024], out[8192];
    tmp_path(db, sizeof db, ".db");
    make_db(db);
    snprintf(cmd, sizeof cmd, "plot --db %s --out /tmp/ctxbench-sel-%d --run 999", db, (int)getpid());
    cr_assert_eq(cli(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "--run 999"), "%s", out);
    snprintf(cmd, sizeof cmd, "plot --db %s --out /tmp/ctxbench-sel-%d --scale 0", db, (int)getpid());
    cr_assert_eq(cli(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "--scale 0"), "%s", out);
    rm_db(db);
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/ctxbench-sel-%d", (int)getpid());
    cr_assert_eq(system(cmd), 0);
}

Test(hostile, report_and_plot_refuse_a_future_schema) {
    char db[256], cmd[1024], out[8192];
    tmp_path(db, sizeof db, ".db");
    make_db(db);
    snprintf(cmd, sizeof cmd, "sqlite3 %s 'PRAGMA user_version = %d'", db, CB_SCHEMA_VERSION + 1);
    cr_assert_eq(system(cmd), 0);
    const char *fmt[] = { "report --db %s --out - --tex ''", "plot --db %s --out /tmp/ctxbench-fut-%d", "merge /tmp/ctxbench-fut-%d.db %s" };
    for (int i = 0; i < 3; i++) {
        char args[1024];
        if (i == 2) snprintf(args, sizeof args, fmt[i], (int)getpid(), db);
        else snprintf(args, sizeof args, fmt[i], db, (int)getpid());
        int rc = cli(args, out, sizeof out);
        cr_assert_eq(rc, 1, "%s: %s", args, out);
        cr_assert(strstr(out, "newer than this ctxbench"), "%s: %s", args, out);
    }
    snprintf(cmd, sizeof cmd, "/tmp/ctxbench-fut-%d.db", (int)getpid());
    cr_assert(access(cmd, F_OK) != 0);
    rm_db(db);
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/ctxbench-fut-%d", (int)getpid());
    cr_assert_eq(system(cmd), 0);
}

/* ---- numbers: NaN, inf, huge, negative, trailing junk; empty lists ---- */

Test(hostile, numeric_workload_keys_are_range_checked_by_key) {
    static const struct { const char *line, *key; } cases[] = {
        { "memory_budget: nan%", "memory_budget" },       { "memory_budget: inf", "memory_budget" },
        { "memory_budget: 1e30", "memory_budget" },       { "memory_budget: 101%", "memory_budget" },
        { "memory_budget: 9000P", "memory_budget" },      { "time_budget_point: nan", "time_budget_point" },
        { "time_budget_point: inf", "time_budget_point" }, { "time_budget_point: 1e300", "time_budget_point" },
        { "time_budget_run: -5", "time_budget_run" },     { "time_budget_run: infs", "time_budget_run" },
        { "peak_gflops: nan", "peak_gflops" },            { "peak_gflops: inf", "peak_gflops" },
        { "peak_gbps: 1e300", "peak_gbps" },              { "peak_gbps: -3", "peak_gbps" },
        { "seed: -1", "seed" },                           { "seed: 99999999999999999999", "seed" },
        { "seed: +5", "seed" },                           { "threads: [99999999999]", "threads" },
        { "threads: [5000]", "threads" },                 { "batch: [-1]", "batch" },
        { "contexts: [2000P]", "context" },               { "max_measured_prefill: 2000P", "max_measured_prefill" },
        { "repetitions: nan", "repetitions" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        bool ctx = !strncmp(cases[i].line, "contexts", 8);
        snprintf(text, sizeof text, "models: [transformer-tiny]\n%s%s\n", ctx ? "" : "contexts: [1K]\n", cases[i].line);
        cb_workload w;
        cb_err err = { "" };
        cr_assert_neq(cb_workload_parse(text, "w.yaml", &w, &err), 0, "accepted '%s'", cases[i].line);
        cr_assert(strstr(err.msg, "w.yaml:") && strstr(err.msg, cases[i].key), "'%s': %s", cases[i].line, err.msg);
    }
    /* the edges of the ranges are accepted */
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse("models: [m]\ncontexts: [1K]\nseed: 18446744073709551615\nmemory_budget: 100%\n"
                                   "time_budget_point: 0\nthreads: [0, 4096]\npeak_gflops: 1e9\n", "w.yaml", &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w.seed, 18446744073709551615ull);
}

Test(hostile, every_empty_list_is_an_error_naming_its_key) {
    const char *keys[] = { "engines", "models", "contexts", "phases", "batch", "threads", "papi_events" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s%s: []\n", strcmp(keys[i], "models") ? "models: [transformer-tiny]\n" : "",
                 strcmp(keys[i], "contexts") ? "contexts: [1K]\n" : "", keys[i]);
        cb_workload w;
        cb_err err = { "" };
        cr_assert_neq(cb_workload_parse(text, "w.yaml", &w, &err), 0, "accepted %s: []", keys[i]);
        char want[64];
        snprintf(want, sizeof want, "'%s' is an empty list", keys[i]);
        cr_assert(strstr(err.msg, "w.yaml:") && strstr(err.msg, want), "%s", err.msg);
    }
}

Test(hostile, numeric_run_options_are_range_checked_with_exit_1) {
    char wl[256], db[256], cmd[1024], out[8192];
    tmp_path(wl, sizeof wl, ".yaml");
    tmp_path(db, sizeof db, ".db");
    write_file(wl, "models: [transformer-tiny]\ncontexts: [1K]\nphases: [memory]\n");
    static const struct { const char *opt, *name; } cases[] = {
        { "--threads 99999999999", "--threads" }, { "--threads 0", "--threads" },       { "--threads 4x", "--threads" },
        { "--shard 0/1x", "--shard" },            { "--shard 1/1", "--shard" },         { "--shard -1/2", "--shard" },
        { "--shard 0/", "--shard" },              { "--memory-budget nan%", "--memory-budget" },
        { "--memory-budget inf", "--memory-budget" }, { "--memory-budget 1e30", "--memory-budget" },
        { "--time-budget nan", "--time-budget" }, { "--time-budget inf", "--time-budget" },
        { "--time-budget -1", "--time-budget" },  { "--time-budget 0", "--time-budget" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "run %s --db %s --quiet %s", wl, db, cases[i].opt);
        int rc = cli(cmd, out, sizeof out);
        cr_assert_eq(rc, 1, "%s: exit %d: %s", cases[i].opt, rc, out);
        cr_assert(strstr(out, cases[i].name) && strstr(out, "expected"), "%s: %s", cases[i].opt, out);
        cr_assert(access(db, F_OK) != 0, "%s: a refused run created the database", cases[i].opt);
    }
    unlink(wl);
}

/* A reference whose input_ids leave the vocabulary: the engine would read past its embedding table. */
#include "../engines/model/safetensors.h"
Test(hostile, verify_reference_with_ids_outside_the_vocabulary_is_refused) {
    char ref[256], cmd[1024], out[8192];
    tmp_path(ref, sizeof ref, ".safetensors");
    int32_t ids[4] = { 1, 2, 999, 3 };
    static float logits[4 * 384];
    cb_st_write_item items[2] = { { "input_ids", CB_I32, 1, { 4 }, ids }, { "logits", CB_F32, 2, { 4, 384 }, logits } };
    cb_err err = { "" };
    cr_assert_eq(cb_st_write(ref, items, 2, &err), 0, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "verify tests/fixtures/llama-tiny --reference %s", ref);
    int rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, ref) && strstr(out, "input_ids'[2] = 999") && strstr(out, "[0, 384)"), "%s", out);
    unlink(ref);
}

/* A run merged before it finished (more points since): merging it again is refused, not half-duplicated. */
Test(hostile, merge_of_a_run_that_grew_since_is_refused) {
    char a[256], o[256], cmd[2048], out[8192];
    tmp_path(a, sizeof a, ".db");
    tmp_path(o, sizeof o, ".db");
    make_db(a);
    snprintf(cmd, sizeof cmd, "merge %s %s", o, a);
    cr_assert_eq(cli(cmd, out, sizeof out), 0, "%s", out);
    int64_t points = scalar(o, "SELECT COUNT(*) FROM points");
    snprintf(cmd, sizeof cmd, "sqlite3 %s \"CREATE TEMP TABLE t AS SELECT * FROM points WHERE id = 1; UPDATE t SET id = 1000, "
             "point_key = point_key || '|late'; INSERT INTO points SELECT * FROM t\"", a);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "merge %s %s", o, a);
    int rc = cli(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, a) && strstr(out, "changed after that merge"), "%s", out);
    cr_assert_eq(scalar(o, "SELECT COUNT(*) FROM points"), points, "a refused merge changed the output");
    rm_db(a); rm_db(o);
}

/* A malformed fast-mode yardstick beside a checkpoint is an error naming the file and the key, never a
 * silent fall-back to the generic bar; a missing file or reference is "no yardstick". */
#include "../harness/measure/bf16_yardstick.h"
Test(hostile, bf16_yardstick_errors_name_the_file_and_key) {
    char dir[] = "/tmp/ctxbench-yard-XXXXXX", path[300];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/" CB_BF16_YARDSTICK_FILE, dir);
    cb_bf16_yardstick y;
    cb_err e = { "" };
    cr_assert_eq(cb_bf16_yardstick_read(dir, "reference.safetensors", &y, &e), 0, "%s", e.msg);
    cr_assert(!y.found);
    const struct { const char *text, *must; } bad[] = {
        { "{\"references\": {", "line" },
        { "[1, 2]", "\"references\"" },
        { "{\"references\": {\"reference.safetensors\": {\"max_abs\": 0.1, \"argmax_agreement\": 0.9}}}", "measured_with" },
        { "{\"measured_with\": \"x\", \"references\": {\"reference.safetensors\": {\"max_abs\": \"0.1\", \"argmax_agreement\": 0.9}}}", "max_abs" },
        { "{\"measured_with\": \"x\", \"references\": {\"reference.safetensors\": {\"max_abs\": 0.1, \"argmax_agreement\": 1.5}}}", "argmax_agreement" },
        { "{\"measured_with\": \"x\", \"references\": {\"reference.safetensors\": 3}}", "reference.safetensors" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i].text, f);
        fclose(f);
        e.msg[0] = 0;
        cr_assert_eq(cb_bf16_yardstick_read(dir, "reference.safetensors", &y, &e), -1, "accepted: %s", bad[i].text);
        cr_assert(strstr(e.msg, path) && strstr(e.msg, bad[i].must), "case %zu: '%s' lacks '%s'", i, e.msg, bad[i].must);
        cr_assert(!y.found);
    }
    FILE *f = fopen(path, "w");
    fputs("{\"measured_with\": \"x\", \"references\": {\"other.safetensors\": {\"max_abs\": 0.1, \"argmax_agreement\": 0.9}}}", f);
    fclose(f);
    cr_assert_eq(cb_bf16_yardstick_read(dir, "reference.safetensors", &y, &e), 0, "%s", e.msg);
    cr_assert(!y.found, "another reference's yardstick must not apply");
    cr_assert_eq(cb_bf16_yardstick_read(dir, "other.safetensors", &y, &e), 0, "%s", e.msg);
    cr_assert(y.found && y.max_abs == 0.1 && y.argmax_agreement == 0.9 && !strcmp(y.source, "x"));
    unlink(path);
    rmdir(dir);
}
