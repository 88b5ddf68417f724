/* ctxbench plot: every figure renders from the fixture DB in every format as a valid, non-trivial file;
 * missing data skips a figure with a note; missing gnuplot is a clear error. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/cli/cli.h"
#include "../harness/outputs/plot.h"
#include "plot_fixture.h"

static const char *const DRAWN[] = {"prefill", "decode", "memory", "speedup", "throughput", "roofline"};
enum { N_DRAWN = 6 };

/* Minimal XML well-formedness: every tag closed in order, comments/PIs/CDATA skipped, attributes quoted. */
static bool xml_well_formed(const char *s, char *why, size_t n) {
    char stack[64][64];
    int depth = 0, roots = 0;
    for (const char *p = s; *p; p++) {
        if (*p != '<') continue;
        if (!strncmp(p, "<?", 2)) { p = strstr(p, "?>"); if (!p) return snprintf(why, n, "unclosed PI"), false; continue; }
        if (!strncmp(p, "<!--", 4)) { p = strstr(p, "-->"); if (!p) return snprintf(why, n, "unclosed comment"), false; continue; }
        if (!strncmp(p, "<![CDATA[", 9)) { p = strstr(p, "]]>"); if (!p) return snprintf(why, n, "unclosed CDATA"), false; continue; }
        if (!strncmp(p, "<!", 2)) { p = strchr(p, '>'); if (!p) return snprintf(why, n, "unclosed DOCTYPE"), false; continue; }
        bool closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " \t\r\n/>");
        if (!len || len >= 64) return snprintf(why, n, "bad tag name near %.20s", p), false;
        /* find the end of the tag, honouring quoted attribute values */
        const char *q = name + len;
        char quote = 0;
        for (; *q && (quote || *q != '>'); q++) {
            if (quote && *q == quote) quote = 0;
            else if (!quote && (*q == '"' || *q == '\'')) quote = *q;
        }
        if (!*q) return snprintf(why, n, "unterminated tag %.*s", (int)len, name), false;
        bool self = q[-1] == '/';
        if (closing) {
            if (!depth || strncmp(stack[depth - 1], name, len) || stack[depth - 1][len])
                return snprintf(why, n, "mismatched </%.*s>", (int)len, name), false;
            depth--;
        } else if (!self) {
            if (depth == 0) roots++;
            if (depth == 64) return snprintf(why, n, "too deep"), false;
            memcpy(stack[depth], name, len), stack[depth][len] = 0, depth++;
        }
        p = q;
    }
    if (depth) return snprintf(why, n, "unclosed <%s>", stack[depth - 1]), false;
    if (roots != 1) return snprintf(why, n, "%d root elements", roots), false;
    return true;
}

static void check_outputs(const char *out) {
    char path[600], why[128];
    for (int i = 0; i < N_DRAWN; i++) {
        size_t n = 0;
        snprintf(path, sizeof path, "%s/%s.pdf", out, DRAWN[i]);
        char *s = cb_test_slurp(path, &n);
        cr_assert(s, "%s missing", path);
        cr_assert(!memcmp(s, "%PDF-", 5), "%s: no PDF header", path);
        cr_assert(strstr(s + n - 32 > s ? s + n - 32 : s, "%%EOF"), "%s: no %%%%EOF trailer", path);
        cr_assert_gt(n, 5000, "%s: only %zu bytes", path, n);
        free(s);
        snprintf(path, sizeof path, "%s/%s.png", out, DRAWN[i]);
        s = cb_test_slurp(path, &n);
        cr_assert(s, "%s missing", path);
        cr_assert(!memcmp(s, "\x89PNG\r\n\x1a\n", 8), "%s: no PNG signature", path);
        /* IHDR width/height: 300 dpi at 3.5 in or 7 in wide, 2.6 in high */
        unsigned w = (unsigned)(unsigned char)s[16] << 24 | (unsigned)(unsigned char)s[17] << 16 |
                     (unsigned)(unsigned char)s[18] << 8 | (unsigned char)s[19];
        unsigned h = (unsigned)(unsigned char)s[20] << 24 | (unsigned)(unsigned char)s[21] << 16 |
                     (unsigned)(unsigned char)s[22] << 8 | (unsigned char)s[23];
        cr_assert(w == 1050 || w == 2100, "%s: width %u", path, w);
        cr_assert_eq(h, 780, "%s: height %u", path, h);
        cr_assert_gt(n, 20000, "%s: only %zu bytes", path, n);
        free(s);
        snprintf(path, sizeof path, "%s/%s.svg", out, DRAWN[i]);
        s = cb_test_slurp(path, &n);
        cr_assert(s, "%s missing", path);
        cr_assert(strstr(s, "<svg"), "%s: no <svg>", path);
        cr_assert(xml_well_formed(s, why, sizeof why), "%s: not well-formed XML: %s", path, why);
        cr_assert_gt(n, 5000, "%s: only %zu bytes", path, n);
        free(s);
    }
}

Test(plot, xml_checker_rejects_broken_svg) {
    char why[128];
    cr_assert(xml_well_formed("<?xml version='1.0'?><svg a=\"1>2\"><g><path d='x'/></g></svg>", why, sizeof why), "%s", why);
    cr_assert_not(xml_well_formed("<svg><g></svg>", why, sizeof why));
    cr_assert_not(xml_well_formed("<svg><g></g>", why, sizeof why));
    cr_assert_not(xml_well_formed("<svg></svg><svg></svg>", why, sizeof why));
}

Test(plot, every_figure_every_format_from_fixture_db) {
    char *dir = cb_test_tmpdir();
    cr_assert(dir);
    char db[256], out[256];
    snprintf(db, sizeof db, "%s/fixture.db", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(cb_test_fixture_db(db, false), 0);
    cb_plot_opts o = {.db = db, .out = out, .pdf = true, .png = true, .svg = true};
    cb_err err = {0};
    char logbuf[4096] = "";
    FILE *log = fmemopen(logbuf, sizeof logbuf, "w");
    int n = cb_plot_all(&o, log, &err);
    fclose(log);
    cr_assert_eq(n, N_DRAWN, "drew %d figures: %s / %s", n, err.msg, logbuf);
    check_outputs(out);
    /* no PMU rows in the fixture: the counters figure is skipped, with the reason, on the log and in the gallery */
    cr_assert(strstr(logbuf, "skipped counters") && strstr(logbuf, "no PMU"), "log: %s", logbuf);
    char path[4200];
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = cb_test_slurp(path, NULL);
    cr_assert(html);
    for (int i = 0; i < N_DRAWN; i++) {
        char img[64];
        snprintf(img, sizeof img, "src=\"%s.png\"", DRAWN[i]);
        cr_assert(strstr(html, img), "gallery lacks %s", img);
    }
    cr_assert(strstr(html, "Skipped: no hardware (PMU) counter values"), "gallery lacks the skip note");
    cr_assert(strstr(html, "abc1234") && strstr(html, "Fixture CPU"), "gallery lacks commit/machine");
    free(html);
    /* nothing but the figures and the gallery is left behind */
    DIR *d = opendir(out);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') files++;
    closedir(d);
    cr_assert_eq(files, 3 * N_DRAWN + 1, "%d files in %s", files, out);
    cb_test_rmdir(dir);
    free(dir);
}

Test(plot, pmu_counters_drawn_when_present) {
    char *dir = cb_test_tmpdir();
    char db[256], out[256];
    snprintf(db, sizeof db, "%s/fixture.db", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(cb_test_fixture_db(db, false), 0);
    char sql[1024];
    snprintf(sql, sizeof sql, "sqlite3 %s \"INSERT INTO counters SELECT id, 'PAPI_TOT_CYC', 3.0e6 * context, 'ok' FROM "
                              "points WHERE phase = 'prefill' AND label = 'measured'\"", db);
    cr_assert_eq(system(sql), 0);
    cb_plot_opts o = {.db = db, .out = out, .png = true};
    cb_err err = {0};
    FILE *log = fopen("/dev/null", "w");
    int n = cb_plot_all(&o, log, &err);
    fclose(log);
    cr_assert_eq(n, N_DRAWN + 1, "drew %d: %s", n, err.msg);
    snprintf(sql, sizeof sql, "%s/counters.png", out);
    cr_assert_eq(access(sql, R_OK), 0);
    snprintf(sql, sizeof sql, "%s/counters.pdf", out);
    cr_assert_neq(access(sql, R_OK), 0, "pdf written though only png was asked for");
    cb_test_rmdir(dir);
    free(dir);
}

Test(plot, empty_db_skips_every_figure_without_error) {
    char *dir = cb_test_tmpdir();
    char db[256], out[256];
    snprintf(db, sizeof db, "%s/empty.db", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(cb_test_fixture_db(db, true), 0);
    cb_plot_opts o = {.db = db, .out = out, .pdf = true, .png = true, .svg = true};
    cb_err err = {0};
    char logbuf[4096] = "";
    FILE *log = fmemopen(logbuf, sizeof logbuf, "w");
    int n = cb_plot_all(&o, log, &err);
    fclose(log);
    cr_assert_eq(n, 0, "drew %d: %s", n, err.msg);
    cr_assert(strstr(logbuf, "skipped prefill") && strstr(logbuf, "skipped roofline") && strstr(logbuf, "skipped memory"),
              "log: %s", logbuf);
    char path[4200];
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = cb_test_slurp(path, NULL);
    cr_assert(html && strstr(html, "Skipped:"));
    free(html);
    snprintf(path, sizeof path, "%s/prefill.png", out);
    cr_assert_neq(access(path, F_OK), 0, "an empty figure was written");
    cb_test_rmdir(dir);
    free(dir);
}

Test(plot, unreadable_db_is_an_error_naming_it) {
    cb_plot_opts o = {.db = "/nonexistent/ctxbench.db", .out = "/tmp", .png = true};
    cb_err err = {0};
    FILE *log = fopen("/dev/null", "w");
    cr_assert_eq(cb_plot_all(&o, log, &err), -1);
    fclose(log);
    cr_assert(strstr(err.msg, "/nonexistent/ctxbench.db"), "%s", err.msg);
}

/* gnuplot missing: PATH without it, in a child so the test process's PATH is untouched. */
Test(plot, missing_gnuplot_is_a_clear_error) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        setenv("PATH", "/nonexistent-bin", 1);
        cb_plot_opts o = {.db = "tests/data/none.db", .out = "/tmp", .png = true};
        cb_err err = {0};
        int rc = cb_plot_all(&o, stderr, &err);
        dprintf(fds[1], "%s", err.msg);
        /* the CLI says it too and exits 1 */
        char *argv[] = {"ctxbench", "plot", "--db", "tests/data/none.db", "--out", "/tmp/ctxbench-never", NULL};
        int cli = cb_cli_main(6, argv);
        _exit(rc == -1 && cli == 1 ? 0 : 3);
    }
    close(fds[1]);
    char msg[600] = "";
    ssize_t r = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    cr_assert_gt(r, 0);
    cr_assert(strstr(msg, "gnuplot not found") && strstr(msg, "gnuplot-nox"), "message: %s", msg);
}

Test(plot, cli_flags) {
    char *bad[] = {"ctxbench", "plot", "--bogus", NULL};
    cr_assert_eq(cb_cli_main(3, bad), 2);
    char *fmt[] = {"ctxbench", "plot", "--formats", "png,jpeg", NULL}; /* bad values: 1 (usage errors: 2) */
    cr_assert_eq(cb_cli_main(4, fmt), 1);
    char *run[] = {"ctxbench", "plot", "--run", "x", NULL};
    cr_assert_eq(cb_cli_main(4, run), 1);
}

Test(plot, context_labels) {
    char b[16];
    cb_plot_context_label(4096, b, sizeof b);
    cr_assert_str_eq(b, "4K");
    cb_plot_context_label(131072, b, sizeof b);
    cr_assert_str_eq(b, "128K");
    cb_plot_context_label(1048576, b, sizeof b);
    cr_assert_str_eq(b, "1M");
    cb_plot_context_label(1000, b, sizeof b);
    cr_assert_str_eq(b, "1000");
}

/* A run on the amx path stored the tile peak: the roofline draws it as a second, dashed roof, labelled. */
Test(plot, roofline_draws_the_amx_roof_when_measured) {
    char *dir = cb_test_tmpdir();
    cr_assert(dir);
    char db[256], out[256];
    snprintf(db, sizeof db, "%s/fixture.db", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(cb_test_fixture_db(db, false), 0);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "UPDATE runs SET roof_amx_gflops_1t = 900, roof_amx_gflops = 5432", NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(h));
    sqlite3_close(h);
    cb_plot_opts o = {.db = db, .out = out, .svg = true};
    cb_err err = {0};
    char logbuf[4096] = "";
    FILE *log = fmemopen(logbuf, sizeof logbuf, "w");
    int n = cb_plot_all(&o, log, &err);
    fclose(log);
    cr_assert_eq(n, N_DRAWN, "drew %d figures: %s / %s", n, err.msg, logbuf);
    char path[4200];
    snprintf(path, sizeof path, "%s/roofline.svg", out);
    char *svg = cb_test_slurp(path, NULL);
    cr_assert(svg && strstr(svg, "AMX-BF16 peak 5432 GFLOP/s"), "roofline lacks the AMX roof label");
    free(svg);
    cb_test_rmdir(dir);
    free(dir);
}
