/* ctxbench report: the Bamba claims C1-C4 checked against a results database (see harness/outputs/report.h). */
#include <stdio.h>
#include <string.h>

#include "../results/atomic_file.h"
#include "cli.h"
#include "cli_options.h"
#include "../outputs/report.h"

static void usage(FILE *f) {
    fputs("usage: ctxbench report [--db results/ctxbench.db] [--out results/claims.md] [--tex results/claims.tex]\n"
          "  For each claim C1-C4 (KV memory, speed-up, context reach, 8-bit weights): what was measured, the number\n"
          "  with its CI, the analytic expectation, a verdict and the point ids it rests on. Markdown plus a LaTeX\n"
          "  table fragment.\n"
          "  --db FILE    results database (default results/ctxbench.db)\n"
          "  --out FILE   Markdown report (default results/claims.md; '-' = stdout)\n"
          "  --tex FILE   LaTeX tabular fragment (default results/claims.tex; '' = none)\n",
          f);
}

static int run(int argc, char **argv) {
    const char *db = "results/ctxbench.db", *out = "results/claims.md", *texp = "results/claims.tex";
    const cb_cli_opt opts[] = { CB_OPT("db", CB_OPT_TEXT, &db), CB_OPT("out", CB_OPT_TEXT, &out), CB_OPT("tex", CB_OPT_TEXT, &texp), CB_OPT_END };
    int first, st = cb_cli_parse("report", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first < argc) return cb_cli_unexpected_argument("report", argv[first]);
    /* both files are written beside their targets and renamed over them only when the report is complete:
     * a missing database or a failed query leaves an existing report as it was */
    cb_err err = {0};
    cb_atomic_file md_file = {0}, tex_file = {0};
    bool to_stdout = !strcmp(out, "-");
    if ((!to_stdout && cb_atomic_open(&md_file, out, &err)) || (*texp && cb_atomic_open(&tex_file, texp, &err))) {
        cb_atomic_abort(&md_file);
        fprintf(stderr, "ctxbench report: cannot write: %s\n", err.msg);
        return 1;
    }
    FILE *md = to_stdout ? stdout : md_file.f, *tex = *texp ? tex_file.f : NULL;
    int rc = cb_report_write(db, md, tex, &err);
    if (rc == 0 && !to_stdout) rc = cb_atomic_commit(&md_file, &err);
    if (rc == 0 && tex) rc = cb_atomic_commit(&tex_file, &err);
    cb_atomic_abort(&md_file);
    cb_atomic_abort(&tex_file);
    if (rc) {
        fprintf(stderr, "ctxbench report: %s\n", err.msg);
        return 1;
    }
    if (md != stdout) fprintf(stderr, "ctxbench report: wrote %s%s%s\n", out, tex ? " and " : "", tex ? texp : "");
    return 0;
}

static const cb_command report_cmd = {"report", "check the Bamba claims C1-C4 against a results database", run};
CB_REGISTER_COMMAND(report_cmd)
