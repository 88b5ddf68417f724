/* `ctxbench export`: the four formats over the imported peer file, the atomic --out, and bad options. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/cli/cli.h"
#include "../harness/results/peer_import.h"
#include "../harness/results/store.h"
#include "plot_fixture.h"

static char dir[512], db_path[600];

static void setup(void) {
    char *d = cb_test_tmpdir();
    snprintf(dir, sizeof dir, "%s", d);
    free(d);
    snprintf(db_path, sizeof db_path, "%s/e.db", dir);
    sqlite3 *db;
    cb_err err = { "" };
    cr_assert_eq(cb_store_open(db_path, &db, &err), 0, "%s", err.msg);
    cb_peer_match m = { 0 };
    cb_peer_import_result r;
    cr_assert_eq(cb_peer_import_llama_bench(db, "tests/data/llama-bench-2t-2026-11-26.jsonl", &m, &r, &err), 0, "%s", err.msg);
    sqlite3_close(db);
}
static void teardown(void) { cb_test_rmdir(dir); }

static char *export_to_file(const char *fmt, const char *query) {
    static char out[700];
    snprintf(out, sizeof out, "%s/out.%s", dir, fmt);
    char *argv[] = { "ctxbench", "export", "--db", db_path, "--format", (char *)fmt, "--query", (char *)query, "--out", out, NULL };
    cr_assert_eq(cb_cli_main(10, argv), 0);
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f, "%s not written", out);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    /* nothing but the output and the database in the folder: no temp file left */
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_assert(!strstr(e->d_name, ".tmp."), "temp file %s left behind", e->d_name);
    closedir(d);
    return buf;
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

Test(export, four_formats, .init = setup, .fini = teardown) {
    /* md: header, separator, one row per point, llama-bench's test names */
    const char *md = export_to_file("md", "points");
    cr_assert_eq(lines(md), 2 + 34);
    cr_assert(!strncmp(md, "| point_id | source | engine | model |", 37), "%.80s", md);
    cr_assert(strstr(md, "| pp512 @ d16384 |") && strstr(md, "| tg @ d4096 |"), "%s", md);
    /* csv: header line, quoted cells with commas (the status) */
    const char *csv = export_to_file("csv", "points");
    cr_assert_eq(lines(csv), 1 + 34);
    cr_assert(strstr(csv, ",\"ok; llama-bench pp512 @ d0 ("), "%.400s", csv);
    /* json: an array of objects, numbers as numbers */
    const char *js = export_to_file("json", "speedup");
    json_error_t je;
    json_t *a = json_loads(js, 0, &je);
    cr_assert(a && json_is_array(a), "%s", je.text);
    cr_assert_gt(json_array_size(a), 0);
    json_t *row = json_array_get(a, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "source")), "peer");
    cr_assert(json_is_real(json_object_get(row, "speedup")));
    json_decref(a);
    /* jsonl: one object per line */
    const char *jl = export_to_file("jsonl", "latency_by_context");
    cr_assert_eq(lines(jl), 34);
    json_t *first = json_loadb(jl, strchr(jl, '\n') - jl, 0, &je);
    cr_assert(first && json_is_object(first), "%s", je.text);
    json_decref(first);
}

Test(export, bad_options_and_paths, .init = setup, .fini = teardown) {
    /* a bad value of a known option is bad input (1), an unknown option a usage error (2): docs/promises.md */
    char *q[] = { "ctxbench", "export", "--db", db_path, "--query", "nope", NULL };
    cr_assert_eq(cb_cli_main(6, q), 1);
    char *f[] = { "ctxbench", "export", "--db", db_path, "--format", "xml", NULL };
    cr_assert_eq(cb_cli_main(6, f), 1);
    char *u[] = { "ctxbench", "export", "--db", db_path, "--bogus", NULL };
    cr_assert_eq(cb_cli_main(5, u), 2);
    char *o[] = { "ctxbench", "export", "--db", db_path, "--out", "/nonexistent-dir/x.md", NULL };
    cr_assert_eq(cb_cli_main(6, o), 1);
    char *d[] = { "ctxbench", "export", "--db", "/nonexistent-dir/x.db", NULL };
    cr_assert_eq(cb_cli_main(4, d), 1);
}
