/* ctxbench plot: figures from a results database (see harness/outputs/plot.h, docs/figures.md). */
#include <errno.h>
#include <getopt.h>
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

static int run(int argc, char **argv) {
    cb_plot_opts o = {.db = "results/ctxbench.db", .out = "plots/out", .pdf = true, .png = true, .svg = true};
    static const struct option lo[] = {{"db", required_argument, 0, 'd'},      {"out", required_argument, 0, 'o'},
                                       {"formats", required_argument, 0, 'f'}, {"run", required_argument, 0, 'r'},
                                       {"scale", required_argument, 0, 's'},   {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': o.db = optarg; break;
        case 'o': o.out = optarg; break;
        case 's': o.scale = optarg; break;
        case 'r': {
            char *end;
            errno = 0;
            o.run_id = strtoll(optarg, &end, 10);
            if (*end || end == optarg || errno || o.run_id <= 0) {
                fprintf(stderr, "ctxbench plot: --run wants a positive run id, got '%s'\n", optarg);
                return 1;
            }
            break;
        }
        case 'f': {
            o.pdf = o.png = o.svg = false;
            char *dup = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (!strcmp(t, "pdf")) o.pdf = true;
                else if (!strcmp(t, "png")) o.png = true;
                else if (!strcmp(t, "svg")) o.svg = true;
                else {
                    fprintf(stderr, "ctxbench plot: unknown format '%s' in --formats (pdf, png, svg)\n", t);
                    free(dup);
                    return 1;
                }
            }
            free(dup);
            break;
        }
        case 'h': usage(stdout); return 0;
        default: return cb_cli_unknown_option("plot", argv[optind - 1], usage);
        }
    }
    if (optind < argc) return cb_cli_unexpected_argument("plot", argv[optind]);
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
