/* ctxbench report: each claim, a verdict, numbers with CIs and the point ids they come from. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/cli/cli.h"
#include "../harness/outputs/report.h"
#include "plot_fixture.h"

static char *report_for(bool schema_only, char **tex_out) {
    char *dir = cb_test_tmpdir();
    char db[256];
    snprintf(db, sizeof db, "%s/r.db", dir);
    cr_assert_eq(cb_test_fixture_db(db, schema_only), 0);
    char *md = NULL, *tex = NULL;
    size_t mn = 0, tn = 0;
    FILE *f = open_memstream(&md, &mn), *t = open_memstream(&tex, &tn);
    cb_err err = {0};
    cr_assert_eq(cb_report_write(db, f, t, &err), 0, "%s", err.msg);
    fclose(f), fclose(t);
    cb_test_rmdir(dir);
    free(dir);
    if (tex_out) *tex_out = tex;
    else free(tex);
    return md;
}

Test(report, every_claim_with_verdict_and_point_ids) {
    char *tex = NULL, *md = report_for(false, &tex);
    for (int i = 1; i <= 4; i++) {
        char h[24];
        snprintf(h, sizeof h, "## C%d", i);
        cr_assert(strstr(md, h), "no section %s", h);
    }
    /* the summary row of every claim carries one of the four verdicts */
    const char *summary = strstr(md, "## Summary");
    cr_assert(summary);
    int verdicts = 0;
    for (const char *p = summary; (p = strstr(p, "| **")); p += 4) {
        cr_assert(!strncmp(p + 4, "reproduced**", 12) || !strncmp(p + 4, "partly**", 8) ||
                      !strncmp(p + 4, "not reproduced**", 16) || !strncmp(p + 4, "not measured**", 14),
                  "bad verdict near %.40s", p);
        verdicts++;
    }
    cr_assert_eq(verdicts, 4);
    /* C2 from the fixture: bamba-xs prefill at 4K is points 11 (bamba) vs 1 (transformer), 2e-4*4096+... */
    cr_assert(strstr(md, "| prefill | 4K | bamba-xs | **1.87×** | [1.75, 2.01] | measured / measured | 11, 1 |"),
              "C2 row missing:\n%s", md);
    /* sampled pairs are used and labelled; refused/analytic never enter a speed-up */
    cr_assert(strstr(md, "sampled / sampled | 32, 31"));
    cr_assert_null(strstr(md, "| 37, "), "refused point 37 used in a speed-up");
    /* C3 lists the refused 1M transformer point and the bamba 1M run */
    cr_assert(strstr(md, "| transformer | prefill | 1M | refused | 36 |"));
    cr_assert(strstr(md, "longest bamba context run: 1M (points 38)"));
    /* C4: the int8 point against the bf16 twin */
    cr_assert(strstr(md, "| 900 | bamba-xs | int8 | 250000000 | 490000000 (11) | 0.510 | 0.5510 | 9.6% | 1 |"), "%s", md);
    cr_assert(strstr(md, "accuracy not measured"));
    /* C4's storage judged at 9b scale from the presets' weight split (bamba-9b int8: 0.5273) */
    cr_assert(strstr(md, "| bamba-9b | int8 | 9253158912 | 7250432 | 1054152960 | 10314562304 | 19560470784 | **0.5273** | 5.4% |"),
              "%s", md);
    cr_assert(strstr(summary, "9b storage ratio 0.5331 (analytic, transformer-9b fp8)"), "%s", summary);
    /* C1: KV bytes of the 9b presets at 1M, analytic (from this build's plan, or the DB's analytic rows when the
     * build has no presets), bamba = 3/32 of the transformer */
    const char *c1 = strstr(summary, "| C1: ");
    cr_assert(c1 && (strstr(c1, "**reproduced**") || strstr(c1, "**partly**")), "C1 verdict:\n%s", c1);
    cr_assert(strstr(md, "(ratio 0.0938)"), "C1 ratio missing:\n%s", md);
    cr_assert(strstr(md, "| 1M | bamba-9b | 12.00 GiB (12884901888 B"), "C1 bamba 1M row:\n%s", md);
    /* LaTeX: a tabular with the four claims, specials escaped */
    cr_assert(strstr(tex, "\\begin{tabular}") && strstr(tex, "\\end{tabular}"));
    cr_assert(strstr(tex, "\\textasciitilde{}2x"), "%s", tex);
    cr_assert_eq(strstr(tex, "C4") != NULL, true);
    free(md), free(tex);
}

Test(report, empty_db_says_not_measured) {
    char *md = report_for(true, NULL);
    const char *summary = strstr(md, "## Summary");
    cr_assert(summary);
    cr_assert(strstr(summary, "| C2: ") && strstr(strstr(summary, "| C2: "), "**not measured**"));
    cr_assert(strstr(strstr(summary, "| C4: "), "**not measured**"));
    cr_assert(strstr(md, "no points with weight_dtype int8 or fp8"));
    free(md);
}

Test(report, not_a_results_db) {
    cb_err err = {0};
    FILE *f = fopen("/dev/null", "w");
    cr_assert_eq(cb_report_write("/nonexistent/x.db", f, NULL, &err), -1);
    fclose(f);
    cr_assert(strstr(err.msg, "/nonexistent/x.db"), "%s", err.msg);
}

Test(report, cli_flags) {
    char *bad[] = {"ctxbench", "report", "--nope", NULL};
    cr_assert_eq(cb_cli_main(3, bad), 2);
    char *help[] = {"ctxbench", "report", "--help", NULL};
    cr_assert_eq(cb_cli_main(3, help), 0);
}

/* C4 filled from the DB: speed-up of the int8 point over its bf16 twin, the ppl comparison rows and the 9b reach;
 * random-weight models cap the verdict at partly. */
#include <sqlite3.h>
Test(report, c4_speed_quality_and_reach) {
    char *dir = cb_test_tmpdir();
    char db[256];
    snprintf(db, sizeof db, "%s/r.db", dir);
    cr_assert_eq(cb_test_fixture_db(db, false), 0);
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    const char *sql =
        "INSERT INTO ppl_runs (id, started_utc, git_commit, model, weight_dtype, compare_dtype, mode, seed, tokens_file, n_tokens,"
        " context, stride, weight_bytes, compare_weight_bytes) VALUES (7, 't', 'c', 'bamba-xs', 'bf16', 'fp8', 'exact', 1, 'x.i32',"
        " 160, 160, 80, 490000000, 250000000);"
        "INSERT INTO ppl_buckets (run_id, ctx_lo, ctx_hi, is_total, n_scored, nll, ppl, nll_q, dnll, kl, top1_agree) VALUES"
        " (7, 1, 160, 1, 159, 8.3, 4023.9, 8.302, 0.002, 0.0013, 0.91), (7, 1, 16, 0, 15, 8.2, 3641.0, 8.21, 0.01, 0.002, 0.9);"
        "INSERT INTO points (id, point_key, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,"
        " fill, label, status, unit, median) VALUES"
        " (950, 'k', 1, 'bamba', 'bamba-9b', 'hybrid', 'decode', 262144, 1, 1, 'exact', 'fp8', 'bf16', 'synthetic', 'measured', 'ok', 'seconds_per_token', 0.9),"
        " (951, 'k', 1, 'bamba', 'bamba-9b', 'hybrid', 'decode', 524288, 1, 1, 'exact', 'fp8', 'bf16', 'synthetic', 'refused', 'plan', 'seconds_per_token', NULL),"
        " (952, 'k', 1, 'transformer', 'transformer-9b', 'transformer', 'decode', 65536, 1, 1, 'exact', 'fp8', 'bf16', 'synthetic', 'refused', 'plan', 'seconds_per_token', NULL);";
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(s, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
    sqlite3_close(s);
    char *md = NULL;
    size_t mn = 0;
    FILE *f = open_memstream(&md, &mn);
    cb_err err = {0};
    cr_assert_eq(cb_report_write(db, f, NULL, &err), 0, "%s", err.msg);
    fclose(f);
    cb_test_rmdir(dir);
    free(dir);
    const char *c4 = strstr(md, "## C4");
    cr_assert(c4);
    /* bf16 twin of point 900: bamba-xs decode@4K, 0.01 + 3e-10 * 2000 * 4096 s = 0.0124576 s, vs 0.007 s */
    cr_assert(strstr(c4, "| decode | fast | bamba-xs | int8 | 4096 | 0.007 | 0.01246 | **1.78×** | 900, "), "%s", c4);
    cr_assert(strstr(c4, "| 7 | bamba-xs | fp8 | exact | 159 | 8.30000 | +0.00200 | 1.300e-03 | 91.0% |"), "%s", c4);
    cr_assert(strstr(c4, "| bamba-9b | fp8 | 256K | 512K | 950, 951 |"), "%s", c4);
    cr_assert(strstr(c4, "| transformer-9b | fp8 | — | 64K | —, 952 |"), "%s", c4);
    const char *row = strstr(strstr(md, "## Summary"), "| C4: ");
    cr_assert(row && strstr(row, "**partly**") && strstr(row, "random-weight"), "%s", row);
    cr_assert(strstr(row, "decode int8 ×1.78") && strstr(row, "ΔNLL within ±0.0020"), "%s", row);
    free(md);
}

/* An 8-bit KV run at 1M (workloads/long1m.yaml): C1 shows the measured bamba-9b KV bytes and checks them
 * against the plan for the point's KV dtype (codes + scales: 3 x 8 x 1M x 264 B), and C3 reads reproduced
 * with the depth reached. */
Test(report, c1_c3_from_an_8bit_kv_run_at_1m) {
    char *dir = cb_test_tmpdir();
    char db[256];
    snprintf(db, sizeof db, "%s/r.db", dir);
    cr_assert_eq(cb_test_fixture_db(db, false), 0);
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    const char *sql =
        "INSERT INTO points (id, point_key, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,"
        " fill, label, status, unit, median) VALUES"
        " (960, 'k', 1, 'bamba', 'bamba-9b', 'hybrid', 'decode', 1048576, 1, 2, 'exact', 'fp8', 'fp8', 'synthetic', 'measured', 'ok', 'seconds_per_token', 0.6);"
        "INSERT INTO memory (point_id, category, bytes, source) VALUES (960, 'kv_cache', 6643777536, 'engine');";
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(s, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
    sqlite3_close(s);
    char *md = NULL;
    size_t mn = 0;
    FILE *f = open_memstream(&md, &mn);
    cb_err err = {0};
    cr_assert_eq(cb_report_write(db, f, NULL, &err), 0, "%s", err.msg);
    fclose(f);
    cb_test_rmdir(dir);
    free(dir);
    cr_assert(strstr(md, "| 1M | bamba-9b | 12.00 GiB (12884901888 B) |"), "%s", md);
    cr_assert(strstr(md, "6.19 GiB (fp8) | 960 |"), "C1 measured 8-bit KV row:\n%s", md);
    const char *sum = strstr(md, "## Summary");
    cr_assert(sum);
    const char *c3 = strstr(sum, "| C3: ");
    cr_assert(c3 && strstr(c3, "**reproduced**") && strstr(c3, "depth 1M"), "C3 row:\n%.600s", c3 ? c3 : sum);
    free(md);
}
