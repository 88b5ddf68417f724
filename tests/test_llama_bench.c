/* Reading llama-bench output: the real 34-test file from this kind of machine (tests/data), its CSV and
 * JSON forms, and bad input naming the file, the line and the key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/results/llama_bench.h"

#define PEER_FILE "tests/data/llama-bench-2t-2026-11-26.jsonl"

Test(llama_bench, real_jsonl_file) {
    cb_lb_file f;
    cb_err err = { "" };
    cr_assert_eq(cb_lb_parse_file(PEER_FILE, &f, &err), 0, "%s", err.msg);
    cr_assert_str_eq(f.format, "jsonl");
    cr_assert_eq(f.n, 34);
    int pp = 0, tg = 0;
    for (int i = 0; i < f.n; i++) {
        const cb_lb_record *r = &f.rec[i];
        cr_assert_str_eq(r->build_commit, "d32676d77");
        cr_assert_eq(r->n_threads, 2);
        cr_assert_eq(r->flash_attn, 1);
        cr_assert_str_eq(r->type_k, "f16");
        cr_assert_eq(r->n_samples, 3);
        cr_assert_eq(r->line, i + 1);
        pp += r->n_prompt == 512, tg += r->n_gen == 32;
    }
    cr_assert_eq(pp, 17);
    cr_assert_eq(tg, 17);
    /* the first line: bamba-s pp512 at depth 0 */
    const cb_lb_record *r = &f.rec[0];
    cr_assert_str_eq(r->model_filename, "bamba-s.gguf");
    cr_assert_eq(r->model_n_params, 617189344);
    cr_assert_eq(r->n_depth, 0);
    cr_assert_eq(r->samples_ns[0], 4497746959.0);
    cr_assert_eq(r->samples_ns[2], 4686037971.0);
    char stem[64], dt[16];
    cb_lb_model_stem("/m/bamba-s.gguf", stem, sizeof stem);
    cr_assert_str_eq(stem, "bamba-s");
    cb_lb_weight_dtype(r->model_type, dt, sizeof dt);
    cr_assert_str_eq(dt, "bf16");
    cb_lb_free(&f);
}

static char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ctxbench-lb-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

#define HEAD "build_commit,build_number,cpu_info,model_filename,model_type,model_size,model_n_params,n_threads," \
             "type_k,type_v,flash_attn,n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts\n"

Test(llama_bench, csv_has_mean_only) {
    char *p = write_tmp(HEAD "\"d32676d77\",\"9749\",\"Intel(R) Xeon(R), \"\"quoted\"\"\",\"bamba-s.gguf\",\"granitehybrid ?B BF16\","
                             "\"1235304320\",\"617189344\",\"2\",\"f16\",\"f16\",\"1\",\"0\",\"32\",\"4096\",\"2026-11-26T11:16:00Z\","
                             "\"2269503000\",\"100000\",\"14.1\",\"0.6\"\n");
    cb_lb_file f;
    cb_err err = { "" };
    cr_assert_eq(cb_lb_parse_file(p, &f, &err), 0, "%s", err.msg);
    cr_assert_str_eq(f.format, "csv");
    cr_assert_eq(f.n, 1);
    cr_assert_str_eq(f.rec[0].cpu_info, "Intel(R) Xeon(R), \"quoted\"");
    cr_assert_eq(f.rec[0].n_gen, 32);
    cr_assert_eq(f.rec[0].n_depth, 4096);
    cr_assert_null(f.rec[0].samples_ns);
    cr_assert_eq(f.rec[0].avg_ns, 2269503000.0);
    cb_lb_free(&f);
    unlink(p);
}

static void expect_error(const char *text, const char *needle) {
    char *p = write_tmp(text);
    cb_lb_file f;
    cb_err err = { "" };
    cr_assert_eq(cb_lb_parse_file(p, &f, &err), -1, "accepted: %s", text);
    cr_assert(strstr(err.msg, p), "error does not name the file: %s", err.msg);
    cr_assert(strstr(err.msg, needle), "expected '%s' in: %s", needle, err.msg);
    unlink(p);
}

#define REC(extra)                                                                                                  \
    "{\"build_commit\": \"abc\", \"model_filename\": \"m.gguf\", \"model_type\": \"llama 7B BF16\", "              \
    "\"model_n_params\": 100, \"n_threads\": 2, \"type_k\": \"f16\", \"type_v\": \"f16\", \"flash_attn\": 1, "     \
    "\"n_prompt\": 512, \"n_gen\": 0, " extra " \"test_time\": \"t\", \"avg_ns\": 10, \"stddev_ns\": 1, "          \
    "\"samples_ns\": [9, 10, 11]}\n"

Test(llama_bench, bad_input_names_file_line_key) {
    /* a valid first line, then the fault on line 2 */
    expect_error(REC("\"n_depth\": 0,") "{\"build_commit\": \"abc\",\n", ":2: malformed JSON");
    expect_error(REC("\"n_depth\": 0,") REC(""), ":2: missing key 'n_depth'");
    expect_error(REC("\"n_depth\": \"deep\","), ":1: key 'n_depth' is a string ('deep'), expected an integer");
    expect_error(REC("\"n_depth\": 0, \"n_ubatch\": 1.5,"), ":1: key 'n_ubatch' is a real number, expected an integer");
    expect_error("[" REC("\"n_depth\": 0,") ", {}]", ":record 2: missing key 'build_commit'");
    expect_error(HEAD "\"abc\",\"1\"\n", ":2: 2 cells, the header has 19");
    expect_error("build_commit,n_threads\n\"abc\",\"2\"\n", ":2: missing key 'model_filename'");
    expect_error("", "empty file");
    /* pp and tg at once (llama-bench's pg tests) have no phase of ours */
    char both[1024];
    snprintf(both, sizeof both, "%s", REC("\"n_depth\": 0,"));
    char *g = strstr(both, "\"n_gen\": 0");
    cr_assert_not_null(g);
    g[9] = '8';
    expect_error(both, "expected exactly one of them > 0");
}
