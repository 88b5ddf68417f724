/* Hostile input: each case gets a clear error naming the file / key / option, exit status 1, and never
 * a crash (docs/promises.md lists what ctxbench refuses and how each refusal is tested). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engines/engine.h"
#include "../engines/model/config.h"
#include "../engines/model/presets.h"
#include "../harness/sweep.h"
#include "../harness/workload.h"

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
