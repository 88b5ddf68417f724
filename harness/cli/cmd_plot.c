/* ctxbench plot: figures from a results database (see harness/outputs/plot.h, docs/figures.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "../outputs/plot.h"

static void usage(FILE *f) {
    fputs("usage: ctxbench plot [--db results/ctxbench.db] [--out plots/out] [--formats pdf,png,svg] [--run ID]\n"
          "                     [--scale S]\n"
          "  Draw the paper figures (prefill, decode, memory, speed-up, throughput, roofline, counters) from a\n"
          "  results database through gnuplot, each as PDF/PNG/SVG, plus OUT/index.html (the gallery).\n"
          "  Figures without data are skipped with a note.\n"
          "  --db FILE        results database (default results/ctxbench.db)\n"
          "  --out DIR        output folder (default plots/out)\n"
          "  --formats LIST   any of pdf,png,svg (default all three)\n"
          "  --run ID         only this run's points (default: every run)\n"
          "  --scale S        model scale suffix, e.g. xs or 9b (default: the one with most timed points)\n",
          f);
}

/* --formats: any of pdf, png, svg. */
static int parse_formats(const char *cmd, const char *flag, const char *v, void *dest) {
    cb_plot_opts *o = dest;
    o->pdf = o->png = o->svg = false;
    char *dup = strdup(v), *save = NULL;
    int rc = dup ? 0 : -1;
    for (char *t = dup ? strtok_r(dup, ",", &save) : NULL; t && !rc; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "pdf")) o->pdf = true;
        else if (!strcmp(t, "png")) o->png = true;
        else if (!strcmp(t, "svg")) o->svg = true;
        else rc = -1, fprintf(stderr, "ctxbench %s: unknown format '%s' in %s (pdf, png, svg)\n", cmd, t, flag);
    }
    free(dup);
    return rc;
}

static int run(int argc, char **argv) {
    cb_plot_opts o = {.db = "results/ctxbench.db", .out = "plots/out", .pdf = true, .png = true, .svg = true};
    const cb_cli_opt opts[] = {
        CB_OPT("db", CB_OPT_TEXT, &o.db),
        CB_OPT("out", CB_OPT_TEXT, &o.out),
        CB_OPT("formats", CB_OPT_CUSTOM, &o, .parse = parse_formats),
        CB_OPT("run", CB_OPT_I64, &o.run_id, .lo = 1, .hi = INT64_MAX),
        CB_OPT("scale", CB_OPT_TEXT, &o.scale),
        CB_OPT_END,
    };
    int first, st = cb_cli_parse("plot", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first < argc) return cb_cli_unexpected_argument("plot", argv[first]);
    cb_err err = {0};
    int n = cb_plot_all(&o, stderr, &err);
    if (n < 0) {
        fprintf(stderr, "ctxbench plot: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "ctxbench plot: %d figure(s) in %s (gallery: %s/index.html)\n", n, o.out, o.out);
    return 0;
}

static const cb_command plot_cmd = {"plot", "draw the paper figures from a results database (gnuplot)", run};
CB_REGISTER_COMMAND(plot_cmd)
