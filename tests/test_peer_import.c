/* `ctxbench import llama-bench`: the real 34-test file (tests/data) as points with their samples and the
 * harness's statistics, model matching and its errors, the peer's own speed-ups, vs_peer, merge. */
#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/cli/cli.h"
#include "../harness/results/peer_import.h"
#include "../harness/outputs/plot.h"
#include "../harness/outputs/report.h"
#include "../harness/stats/stats.h"
#include "../harness/results/store.h"
#include "plot_fixture.h"

#define PEER_FILE "tests/data/llama-bench-2t-2026-11-26.jsonl"

static double q1(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    double v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_double(s, 0) : NAN;
    sqlite3_finalize(s);
    return v;
}

static sqlite3 *imported(char *dir_out, size_t n) {
    char *dir = cb_test_tmpdir();
    snprintf(dir_out, n, "%s", dir);
    free(dir);
    char db_path[512];
    snprintf(db_path, sizeof db_path, "%s/peer.db", dir_out);
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cb_peer_match m = { 0 };
    cb_peer_import_result r;
    cr_assert_eq(cb_peer_import_llama_bench(db, PEER_FILE, &m, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.points, 34);
    cr_assert_eq(r.prefill_chunk, 17);
    cr_assert_eq(r.decode, 17);
    return db;
}

Test(peer_import, real_file_points_samples_statistics) {
    char dir[512];
    sqlite3 *db = imported(dir, sizeof dir);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE engine = 'llama.cpp' AND source = 'peer' AND label = 'measured'"
                        " AND batch = 1 AND threads = 2 AND kv_dtype = 'f16' AND weight_dtype = 'bf16' AND fill = 'real'"), 34);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM samples"), 34 * 3);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM peer_tests WHERE build_commit = 'd32676d77' AND flash_attn = 1 AND"
                        " matched_by = 'name and parameters' AND source_line BETWEEN 1 AND 34"), 34);
    /* every model file matched its preset, arch from the preset */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points p JOIN peer_tests t ON t.point_id = p.id WHERE"
                        " t.model_file <> p.model || '.gguf'"), 0);
    cr_assert_eq(q1(db, "SELECT COUNT(DISTINCT arch) FROM points"), 3);
    /* line 1: bamba-s pp512 at depth 0, samples 4497746959, 4705950173, 4686037971 ns: seconds per chunk and the
     * harness's statistics (median, bootstrap CI with the workloads' default seed) */
    const double x[3] = { 4.497746959, 4.705950173, 4.686037971 };
    cb_stats st;
    cb_stats_compute(x, 3, 1, &st);
    cr_assert_float_eq(q1(db, "SELECT median FROM points p JOIN peer_tests t ON t.point_id = p.id WHERE t.source_line = 1"),
                       st.median, 1e-12);
    cr_assert_float_eq(q1(db, "SELECT ci_lo FROM points p JOIN peer_tests t ON t.point_id = p.id WHERE t.source_line = 1"),
                       st.ci_lo, 1e-12);
    cr_assert_float_eq(q1(db, "SELECT tokens_per_s FROM points p JOIN peer_tests t ON t.point_id = p.id WHERE"
                              " t.source_line = 1"), 512 / st.median, 1e-9);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points p JOIN peer_tests t ON t.point_id = p.id WHERE t.source_line = 1"
                        " AND p.phase = 'prefill_chunk' AND p.context = 0 AND p.unit = 'seconds'"), 1);
    /* tg: seconds per token = sample / n_gen; transformer-xs tg32 at depth 16384 reads 21.3 tok/s in the file */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase = 'decode' AND unit = 'seconds_per_token'"), 17);
    double tg = q1(db, "SELECT tokens_per_s FROM points WHERE model = 'transformer-xs' AND phase = 'decode' AND context = 16384");
    cr_assert(fabs(tg - 21.3) < 0.3, "%g", tg);
    /* the peer's own bamba / transformer ratio, from the speedup view: bamba-xs tg at 16K 49.1 / 21.3 tok/s */
    double sp = q1(db, "SELECT speedup FROM speedup WHERE source = 'peer' AND model = 'bamba-xs' AND phase = 'decode'"
                       " AND context = 16384");
    cr_assert(fabs(sp - 49.1 / 21.3) < 0.05, "%g", sp);
    /* the same file again is refused, nothing added */
    cb_peer_match m = { 0 };
    cb_peer_import_result r;
    cb_err err = { "" };
    cr_assert_eq(cb_peer_import_llama_bench(db, PEER_FILE, &m, &r, &err), -1);
    cr_assert(strstr(err.msg, "already imported (run 1"), "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), 34);
    sqlite3_close(db);
    cb_test_rmdir(dir);
}

/* ctxbench points beside the peer's: vs_peer pairs same model, phase, depth, threads; ratio of tokens/s */
Test(peer_import, vs_peer_and_speedup_vs_peer) {
    char dir[512];
    sqlite3 *db = imported(dir, sizeof dir);
    char *msg = NULL;
    const char *sql =
        "INSERT INTO runs (id, started_utc, workload_name, workload_text, workload_hash, shard, git_commit, cpu_model)"
        " VALUES (50, 't', 'w', 'w', 'h', '0/1', 'c', 'Test CPU');"
        "INSERT INTO points (id, run_id, point_key, engine, model, arch, phase, context, batch, threads, mode, weight_dtype,"
        " kv_dtype, fill, label, status, unit, n_samples, median, ci_lo, ci_hi, tokens_per_s) VALUES"
        " (900, 50, 'k', 'bamba', 'bamba-xs', 'hybrid', 'decode', 16384, 1, 2, 'exact', 'bf16', 'bf16', 'synthetic',"
        "  'measured', 'ok', 'seconds_per_token', 3, 0.01, 0.009, 0.011, 100),"
        " (901, 50, 'k', 'transformer', 'transformer-xs', 'transformer', 'decode', 16384, 1, 2, 'exact', 'bf16', 'bf16',"
        "  'synthetic', 'measured', 'ok', 'seconds_per_token', 3, 0.02, 0.019, 0.021, 50),"
        " (902, 50, 'k', 'bamba', 'bamba-xs', 'hybrid', 'decode', 16384, 1, 1, 'exact', 'bf16', 'bf16', 'synthetic',"
        "  'measured', 'ok', 'seconds_per_token', 3, 0.01, 0.009, 0.011, 100);";
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
    /* point 900 against the peer's bamba-xs tg32 @ d16384 (49.1 tok/s); 902 has 1 thread: no peer point */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM vs_peer"), 2);
    double ratio = q1(db, "SELECT ratio FROM vs_peer WHERE point_id = 900");
    cr_assert(fabs(ratio - 100 / 49.1) < 0.05, "%g", ratio);
    cr_assert(q1(db, "SELECT ratio_lo < ratio AND ratio < ratio_hi FROM vs_peer WHERE point_id = 900") == 1);
    cr_assert(q1(db, "SELECT peer_cpu_model = 'Intel(R) Xeon(R) Processor' AND cpu_model = 'Test CPU' FROM vs_peer"
                     " WHERE point_id = 900") == 1);
    /* C2 beside the peer: ours 2.0 (0.02 / 0.01) against the peer's 49.1 / 21.3 */
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM speedup_vs_peer"), 1);
    double r2 = q1(db, "SELECT speedup_ratio FROM speedup_vs_peer");
    cr_assert(fabs(r2 - 2.0 / (49.1 / 21.3)) < 0.05, "%g", r2);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM speedup WHERE source = 'ctxbench'"), 1);
    sqlite3_close(db);

    /* the report: a "vs llama.cpp" row for point 900 that says the machines differ, and C2 beside the peer */
    char db_path[600];
    snprintf(db_path, sizeof db_path, "%s/peer.db", dir);
    char *md = NULL;
    size_t mn = 0;
    FILE *f = open_memstream(&md, &mn);
    cb_err err = { "" };
    cr_assert_eq(cb_report_write(db_path, f, NULL, &err), 0, "%s", err.msg);
    fclose(f);
    const char *vs = strstr(md, "## vs llama.cpp");
    cr_assert(vs, "%s", md);
    cr_assert(strstr(vs, "| bamba-xs | decode | 16K | 2 | 100 | 49."), "%s", vs);
    cr_assert(strstr(vs, "**Different machines**"), "%s", vs);
    const char *c2 = strstr(md, "### beside the peer's own ratio");
    cr_assert(c2 && c2 < vs, "%s", md);
    cr_assert(strstr(c2, "| bamba-xs | decode | 16K | 2 | **2.00×** |"), "%s", c2);
    /* C2's own verdict counts ctxbench's pair only, not the peer's */
    cr_assert(strstr(strstr(md, "## Summary"), "geometric mean 2.00x over 1 pairs"), "%s", strstr(md, "## Summary"));
    free(md);

    /* the figures: the peer figure is drawn, with llama.cpp's dotted series in the legend */
    char out[600];
    snprintf(out, sizeof out, "%s/fig", dir);
    cb_plot_opts o = { .db = db_path, .out = out, .svg = true };
    FILE *log = fopen("/dev/null", "w");
    cr_assert_geq(cb_plot_all(&o, log, &err), 2, "%s", err.msg);
    fclose(log);
    char svg[700];
    snprintf(svg, sizeof svg, "%s/peer.svg", out);
    FILE *s = fopen(svg, "r");
    cr_assert_not_null(s, "no %s", svg);
    char buf[1 << 16];
    size_t got = fread(buf, 1, sizeof buf - 1, s);
    buf[got] = 0;
    fclose(s);
    cr_assert(strstr(buf, "llama.cpp (dotted)"), "legend missing in peer.svg");
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    cr_assert_eq(system(cmd), 0);
    cb_test_rmdir(dir);
}

static char *write_tmp(const char *dir, const char *name, const char *text) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#define TEST_LINE(file, params)                                                                                        \
    "{\"build_commit\": \"abc\", \"model_filename\": \"" file "\", \"model_type\": \"llama 7B BF16\", "              \
    "\"model_n_params\": " params ", \"n_threads\": 2, \"type_k\": \"f16\", \"type_v\": \"f16\", \"flash_attn\": 1, " \
    "\"n_prompt\": 0, \"n_gen\": 16, \"n_depth\": 4096, \"test_time\": \"t\", \"avg_ns\": 10, \"stddev_ns\": 1, "      \
    "\"samples_ns\": [160000000, 170000000, 150000000]}\n"

static int import_text(const char *dir, const char *text, const cb_peer_match *m, cb_err *err) {
    char *path = write_tmp(dir, "in.jsonl", text);
    char db_path[600];
    snprintf(db_path, sizeof db_path, "%s/m.db", dir);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, err), 0, "%s", err->msg);
    cb_peer_import_result r;
    int rc = cb_peer_import_llama_bench(db, path, m, &r, err);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points"), rc ? 0 : r.points, "a failed import left points");
    sqlite3_close(db);
    unlink(db_path);
    return rc;
}

Test(peer_import, model_matching_and_its_errors) {
    char *dir = cb_test_tmpdir();
    cb_err err = { "" };
    cb_peer_match none = { 0 };
    /* by parameters alone (the file's name is no preset): transformer-xs has 141853184 */
    cr_assert_eq(import_text(dir, TEST_LINE("/models/my-llama.gguf", "141853184"), &none, &err), 0, "%s", err.msg);
    /* no preset has that many parameters: the error names the file, the line and says --as */
    cr_assert_eq(import_text(dir, TEST_LINE("x.gguf", "141853184") TEST_LINE("odd.gguf", "12345"), &none, &err), -1);
    cr_assert(strstr(err.msg, "in.jsonl:2: model odd.gguf (12345 parameters): no preset") && strstr(err.msg, "--as odd.gguf=MODEL"),
              "%s", err.msg);
    /* named like a preset, parameters of another: refused */
    cr_assert_eq(import_text(dir, TEST_LINE("bamba-xs.gguf", "141853184"), &none, &err), -1);
    cr_assert(strstr(err.msg, ":1: model bamba-xs.gguf is named like preset bamba-xs (172716144 parameters)"), "%s", err.msg);
    /* --as FILE=MODEL resolves it; --as an unknown model is an error naming it */
    cb_peer_match as = { .as_file = { "odd.gguf" }, .as_model = { "bamba-tiny" }, .n_as = 1 };
    cr_assert_eq(import_text(dir, TEST_LINE("odd.gguf", "12345"), &as, &err), 0, "%s", err.msg);
    cb_peer_match bad = { .as_all = "no-such-model" };
    cr_assert_eq(import_text(dir, TEST_LINE("odd.gguf", "12345"), &bad, &err), -1);
    cr_assert(strstr(err.msg, ":1: --as no-such-model for odd.gguf"), "%s", err.msg);
    /* CSV: no samples; the median column holds the tool's mean, no CI, and the status says so */
    char *csv = write_tmp(dir, "in.csv",
                          "build_commit,model_filename,model_type,model_n_params,n_threads,type_k,type_v,flash_attn,"
                          "n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns\n"
                          "\"abc\",\"bamba-xs.gguf\",\"granitehybrid ?B BF16\",\"172716144\",\"2\",\"f16\",\"q8_0\",\"1\","
                          "\"512\",\"0\",\"4096\",\"t\",\"1500000000\",\"30000000\"\n");
    char db_path[600];
    snprintf(db_path, sizeof db_path, "%s/csv.db", dir);
    sqlite3 *db;
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cb_peer_import_result r;
    cr_assert_eq(cb_peer_import_llama_bench(db, csv, &none, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM points WHERE phase = 'prefill_chunk' AND context = 4096 AND kv_dtype = 'f16/q8_0'"
                        " AND median = 1.5 AND ci_lo IS NULL AND n_samples = 0 AND status LIKE '%CSV: no samples%'"), 1);
    cr_assert_float_eq(q1(db, "SELECT tokens_per_s FROM points"), 512 / 1.5, 1e-9);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM samples"), 0);
    sqlite3_close(db);
    /* the CLI: unknown tool, missing file argument */
    char *a[] = { "ctxbench", "import", "hyperfine", "f.json", NULL };
    cr_assert_eq(cb_cli_main(4, a), 2);
    char *b[] = { "ctxbench", "import", "llama-bench", NULL };
    cr_assert_eq(cb_cli_main(3, b), 2);
    cb_test_rmdir(dir);
    free(dir);
}

/* merge keeps the peer rows with their points */
Test(peer_import, merge_copies_peer_tests) {
    char dir[512];
    sqlite3 *db = imported(dir, sizeof dir);
    sqlite3_close(db);
    char in[600], out[600];
    snprintf(in, sizeof in, "%s/peer.db", dir);
    snprintf(out, sizeof out, "%s/merged.db", dir);
    char *argv[] = { "ctxbench", "merge", out, in, NULL };
    cr_assert_eq(cb_cli_main(4, argv), 0);
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(out, &db, &err), 0, "%s", err.msg);
    cr_assert_eq(q1(db, "SELECT COUNT(*) FROM peer_tests t JOIN points p ON p.id = t.point_id WHERE p.source = 'peer'"), 34);
    sqlite3_close(db);
    cb_test_rmdir(dir);
}
