/* Paper figures from a results database, drawn by gnuplot through a pipe (data inline as datablocks,
 * no temporary files). One style for every figure: see plots/README.md and docs/figures.md.
 * Reads the database only through SQL (tables runs, points, memory, counters; docs/figures.md lists
 * the columns used), so it does not depend on the harness's structs. */
#ifndef CB_PLOT_H
#define CB_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../engines/common.h"

typedef struct {
    const char *db;       /* results database (opened read-only) */
    const char *out;      /* output folder, created if missing */
    bool pdf, png, svg;   /* formats */
    int64_t run_id;       /* 0 = every run in the DB */
    const char *scale;    /* model scale suffix ("xs", "9b"...); NULL = the one with most timed points */
} cb_plot_opts;

/* Where gnuplot is: fills path (size n) and returns 0, or returns -1 with err naming gnuplot and how to
 * install it. Looks through $PATH like the shell would. */
int cb_gnuplot_find(char *path, size_t n, cb_err *err);

/* Draw every figure that has data into o->out as NAME.{pdf,png,svg}, plus o->out/index.html (the
 * gallery). Figures without data are skipped with a note on `log` and in the gallery. Returns the number
 * of figures drawn (>= 0), or -1 with err set (DB unreadable, gnuplot missing or failing). */
int cb_plot_all(const cb_plot_opts *o, FILE *log, cb_err *err);

/* "4K", "128K", "1M" for powers of two (or the plain number). */
void cb_plot_context_label(int64_t c, char *buf, size_t n);

#endif
