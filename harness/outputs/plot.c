/* ctxbench's figures: SQL queries -> gnuplot datablocks -> one gnuplot process per figure, which renders
 * the same script once per format. The style (palette, markers, sizes, axes) lives in style_header()
 * and the constants below, so every figure looks the same. */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../results/atomic_file.h"
#include "../results/store.h"

/* Engine architectures in fixed order: colour-blind-safe (Okabe-Ito) colours and markers. */
enum { N_ARCH = 3 };
static const char *const ARCH[N_ARCH] = {"transformer", "mamba2", "hybrid"};
static const char *const ARCH_TITLE[N_ARCH] = {"transformer", "mamba2", "bamba (hybrid)"};
static const char *const ARCH_COLOUR[N_ARCH] = {"#0072B2", "#D55E00", "#009E73"};
static const int PT_FILLED[N_ARCH] = {7, 5, 9};
static const int PT_HOLLOW[N_ARCH] = {6, 4, 8};

/* L_PEER: a measured point of an imported tool (points.source = 'peer'): its own dotted series with open
 * diamonds in the architecture's colour (docs/figures.md). */
enum { L_MEASURED, L_SAMPLED, L_ANALYTIC, L_REFUSED, L_PEER, N_LABEL };
static const char *const LABEL[N_LABEL] = {"measured", "sampled", "analytic", "refused", "peer"};
#define PEER_LEGEND "llama.cpp (dotted)"

static int arch_index(const char *a) {
    if (!a) return -1;
    for (int i = 0; i < N_ARCH; i++)
        if (!strcmp(a, ARCH[i])) return i;
    if (!strcmp(a, "bamba")) return 2;
    return -1;
}
static int label_index(const char *l) {
    for (int i = 0; l && i < N_LABEL; i++)
        if (!strcmp(l, LABEL[i])) return i;
    return -1;
}

void cb_plot_context_label(int64_t c, char *buf, size_t n) {
    if (c >= (1 << 20) && c % (1 << 20) == 0) snprintf(buf, n, "%lldM", (long long)(c >> 20));
    else if (c >= 1024 && c % 1024 == 0) snprintf(buf, n, "%lldK", (long long)(c >> 10));
    else snprintf(buf, n, "%lld", (long long)c);
}

static void human_bytes(double b, char *buf, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int i = 0;
    while (b >= 1024 && i < 5) b /= 1024, i++;
    snprintf(buf, n, b < 10 ? "%.1f %s" : "%.0f %s", b, u[i]);
}
static void human_seconds(double s, char *buf, size_t n) {
    if (s < 120) snprintf(buf, n, "%.0f s", s);
    else if (s < 7200) snprintf(buf, n, "%.0f min", s / 60);
    else if (s < 172800) snprintf(buf, n, "%.1f h", s / 3600);
    else snprintf(buf, n, "%.0f d", s / 86400);
}

int cb_gnuplot_find(char *path, size_t n, cb_err *err) {
    const char *p = getenv("PATH");
    if (p && *p) {
        char *dup = strdup(p), *save = NULL;
        for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(path, n, "%s/gnuplot", *d ? d : ".");
            if (access(path, X_OK) == 0) { free(dup); return 0; }
        }
        free(dup);
    }
    cb_err_set(err, "gnuplot not found on PATH: `ctxbench plot` draws figures with gnuplot; install it "
                    "with scripts/install-deps.sh (Debian package gnuplot-nox)");
    return -1;
}

/* ---- one figure being built: datablocks + a body that is replayed once per output format ---- */

typedef struct {
    char *data, *body;
    size_t data_n, body_n;
    FILE *d, *b;      /* memstreams */
    int blocks;       /* datablock counter (names) */
    int labels;       /* set label counter */
    double width_in, height_in;
} figure;

static void fig_open(figure *f, double width_in, double height_in) {
    memset(f, 0, sizeof *f);
    f->d = open_memstream(&f->data, &f->data_n);
    f->b = open_memstream(&f->body, &f->body_n);
    f->width_in = width_in, f->height_in = height_in;
}
static void fig_free(figure *f) {
    if (f->d) fclose(f->d);
    if (f->b) fclose(f->b);
    free(f->data), free(f->body);
    memset(f, 0, sizeof *f);
}

/* Terminal lines for one format; PNG is 300 dpi at the figure's size, SVG 150 px/in. */
static void terminal(FILE *g, const figure *f, const char *fmt, const char *path) {
    double w = f->width_in, h = f->height_in;
    if (!strcmp(fmt, "pdf"))
        fprintf(g, "set terminal pdfcairo size %.2fin,%.2fin font 'Sans,7' linewidth 1 noenhanced\n", w, h);
    else if (!strcmp(fmt, "png"))
        fprintf(g, "set terminal pngcairo size %d,%d font 'Sans,7' fontscale %.3f linewidth %.3f pointscale %.3f "
                   "noenhanced\n",
                (int)lround(w * 300), (int)lround(h * 300), 300.0 / 72.0, 300.0 / 72.0, 300.0 / 72.0);
    else
        fprintf(g, "set terminal svg size %d,%d font 'Sans,7' fontscale %.3f linewidth %.3f noenhanced\nPS = %.3f\n",
                (int)lround(w * 150), (int)lround(h * 150), 150.0 / 72.0, 150.0 / 72.0, 150.0 / 72.0);
    if (strcmp(fmt, "svg")) fputs("PS = 1\n", g); /* svg has no pointscale: points are scaled by hand */
    fprintf(g, "set output '%s'\n", path);
}

/* Style shared by every panel. */
static void style_header(FILE *b) {
    fputs("reset\nset encoding utf8\nset border 3 lw 0.8\nset tics nomirror out scale 0.6\n"
          "set grid xtics ytics lw 0.3 lc rgb '#d0d0d0'\nset errorbars small\nset bars 0.6\nset pointsize 0.8*PS\nset datafile missing 'NaN'\n"
          "set style textbox opaque noborder\n",
          b);
}

/* Log-2 context axis with K/M labels (every other tic labelled when crowded). */
static void context_axis(FILE *b, char axis, int64_t lo, int64_t hi, const char *title) {
    int64_t lo2 = 1;
    while (lo2 * 2 <= lo) lo2 *= 2;
    int64_t hi2 = lo2;
    while (hi2 < hi) hi2 *= 2;
    int ntics = 0;
    for (int64_t c = lo2; c <= hi2; c *= 2) ntics++;
    fprintf(b, "set logscale %c 2\nset %crange [%g:%g]\nset %ctics (", axis, axis, lo2 / 1.3, hi2 * 1.3, axis);
    int i = 0;
    for (int64_t c = lo2; c <= hi2; c *= 2, i++) {
        char l[24]; /* any int64 label: -O3 checks the worst case */
        cb_plot_context_label(c, l, sizeof l);
        bool shown = ntics <= 6 || i % 2 == 0 || c == hi2;
        if (ntics > 6 && c != hi2 && i == ntics - 2 && (ntics - 1) % 2 == 1) shown = false; /* keep last clear */
        fprintf(b, "%s'%s' %lld %d", i ? ", " : "", shown ? l : "", (long long)c, shown ? 0 : 1);
    }
    fprintf(b, ")\nset %clabel '%s'\n", axis, title);
}

/* ---- series from SQL ---- */

typedef struct {
    double x, y, lo, hi;
} pt;
typedef struct {
    pt *v;
    int n, cap;
} series;

static void series_add(series *s, pt p) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n++] = p;
}

static int cmp_pt(const void *a, const void *b) {
    double d = ((const pt *)a)->x - ((const pt *)b)->x;
    return (d > 0) - (d < 0);
}

static double nz(double v) { return isfinite(v) ? v : NAN; }

typedef struct {
    series s[N_ARCH][N_LABEL];
    double xmin, xmax, ymin, ymax;
    int points, refused, refused_arch[N_ARCH];
} panel_data;

static void panel_reset(panel_data *p) {
    for (int a = 0; a < N_ARCH; a++)
        for (int l = 0; l < N_LABEL; l++) free(p->s[a][l].v);
    memset(p, 0, sizeof *p);
    p->xmin = p->ymin = INFINITY, p->xmax = p->ymax = -INFINITY;
}

typedef struct {
    sqlite3 *db;
    int64_t run;
    char pattern[64]; /* LIKE pattern on model names */
} ctx_t;

static sqlite3_stmt *prepare(ctx_t *c, const char *sql, cb_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        cb_err_set(err, "results database: query failed (%s) — is it a ctxbench DB of the documented schema "
                        "(docs/figures.md)?", sqlite3_errmsg(c->db));
        return NULL;
    }
    int np = sqlite3_bind_parameter_count(st);
    if (np >= 1) sqlite3_bind_int64(st, 1, c->run);
    if (np >= 2) sqlite3_bind_text(st, 2, c->pattern, -1, SQLITE_TRANSIENT);
    return st;
}

static double col(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* Rows: arch, label, x, y, ylo, yhi, refused_bytes, refused_seconds. Refused rows become labels at the top. */
static int panel_query(ctx_t *c, const char *sql, panel_data *p, FILE *b, int *labels, cb_err *err) {
    sqlite3_stmt *st = prepare(c, sql, err);
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int a = arch_index((const char *)sqlite3_column_text(st, 0));
        int l = label_index((const char *)sqlite3_column_text(st, 1));
        double x = col(st, 2), y = col(st, 3);
        if (a < 0 || l < 0 || !isfinite(x) || x <= 0) continue;
        if (x < p->xmin) p->xmin = x;
        if (x > p->xmax) p->xmax = x;
        if (l == L_REFUSED) {
            char need[48] = "", v[32];
            double nb = col(st, 6), ns = col(st, 7);
            if (isfinite(nb)) human_bytes(nb, v, sizeof v), snprintf(need, sizeof need, "%s", v);
            else if (isfinite(ns)) human_seconds(ns, v, sizeof v), snprintf(need, sizeof need, "%s", v);
            /* marker on the top edge (one row per engine), what it needed underneath, staggered so
             * neighbouring refused points do not overlap */
            double gy = 0.965 - 0.1 * a;
            int k = p->refused_arch[a]++;
            fprintf(b, "set label %d '' at first %g, graph %.3f point pt 11 ps 0.9*PS lc rgb '%s' front\n", ++*labels, x,
                    gy, ARCH_COLOUR[a]);
            if (*need)
                fprintf(b, "set label %d '%s' at first %g, graph %.3f center offset 0,%s tc rgb '%s' font ',5.5' front\n",
                        ++*labels, need, x, gy, k % 2 ? "-1.9" : "-0.9", ARCH_COLOUR[a]);
            p->refused++;
            continue;
        }
        if (!isfinite(y) || y <= 0) continue;
        pt q = {x, y, nz(col(st, 4)), nz(col(st, 5))};
        if (!isfinite(q.lo) || q.lo <= 0) q.lo = y;
        if (!isfinite(q.hi) || q.hi <= 0) q.hi = y;
        series_add(&p->s[a][l], q);
        if (q.lo < p->ymin) p->ymin = q.lo;
        if (q.hi > p->ymax) p->ymax = q.hi;
        p->points++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cb_err_set(err, "results database: %s", sqlite3_errmsg(c->db));
        return -1;
    }
    return 0;
}

/* A series as the datablock `$name` (x y per line) and its plot clause: markers `pt` in `colour`, after
 * ", " unless it is the plot's first clause. */
static void points_clause(figure *f, const char *name, const series *s, int pt, const char *colour, bool first) {
    fprintf(f->d, "$%s << EOD\n", name);
    for (int i = 0; i < s->n; i++) fprintf(f->d, "%.9g %.9g\n", s->v[i].x, s->v[i].y);
    fputs("EOD\n", f->d);
    fprintf(f->b, "%s$%s using 1:2 with points pt %d ps 0.9*PS lc rgb '%s' notitle", first ? "" : ", ", name, pt, colour);
}

/* Emit datablocks and the plot command for a panel. Measured: solid line + filled markers + error bars;
 * sampled: hollow markers with error bars; analytic: dashed line. */
/* Which series kinds a whole figure shows: the legend (drawn once, across the top) lists exactly these. */
typedef struct {
    bool arch[N_ARCH], label[N_LABEL];
} legend_set;

static void legend_add(legend_set *l, const panel_data *p) {
    for (int a = 0; a < N_ARCH; a++)
        for (int k = 0; k < N_LABEL; k++)
            if (p->s[a][k].n || (k == L_REFUSED && p->refused)) {
                if (k != L_REFUSED || p->s[a][k].n) l->arch[a] = true;
                l->label[k] = true;
            }
    for (int a = 0; a < N_ARCH; a++) /* an architecture seen only in refused markers still needs its colour named */
        if (p->refused_arch[a]) l->arch[a] = true;
    if (p->refused) l->label[L_REFUSED] = true;
}

/* The legend: one row or two across the top of the figure, drawn as screen-positioned labels, points and
 * line samples (gnuplot's own key cannot be laid out horizontally across a multiplot). */
typedef struct {
    char text[48];
    const char *colour;
    int pt;         /* 0 = none */
    int dash;       /* 0 = no line, 1 = solid, 2 = dashed, 3 = dotted */
} legend_item;

/* Layout: equal columns in one row when every entry fits its column, else in two rows, else entries flowed
 * left to right by their own widths (about 16 characters of legend text per inch at this font, with room). */
static void legend_draw(FILE *b, const legend_item *it, int n, double width_in) {
    const double cw = 1.0 / (16.5 * width_in), sw = 0.035; /* screen units per character; line sample */
    double wi[16], widest = 0;
    n = n > 16 ? 16 : n;
    for (int i = 0; i < n; i++) wi[i] = sw + (double)(strlen(it[i].text) + 4) * cw, widest = fmax(widest, wi[i]);
    int cols = n;
    if (widest > 0.99 / cols) cols = (n + 1) / 2;
    bool flow = widest > 0.99 / (cols ? cols : 1);
    double x = 0.01;
    int r = 0;
    for (int i = 0; i < n; i++) {
        if (flow) {
            if (i && x + wi[i] > 1.0) r++, x = 0.01;
        } else {
            r = i / cols, x = 0.01 + (i % cols) * (0.99 / cols);
        }
        double y = !flow && cols == n ? 0.955 : 0.965 - r * 0.075;
        if (it[i].dash)
            fprintf(b, "set arrow from screen %.4f,%.4f to screen %.4f,%.4f nohead lw 1.2 lc rgb '%s' dt %s front\n", x,
                    y, x + sw, y, it[i].colour, it[i].dash == 1 ? "1" : it[i].dash == 2 ? "(4,3)" : "(1,2)");
        if (it[i].pt)
            fprintf(b, "set label '' at screen %.4f,%.4f point pt %d ps 0.9*PS lc rgb '%s' front\n", x + sw / 2, y,
                    it[i].pt, it[i].colour);
        fprintf(b, "set label '%s' at screen %.4f,%.4f left offset char 0.4,0 font ',6.2' front\n", it[i].text, x + sw, y);
        if (flow) x += wi[i];
    }
}

static int legend_items(const legend_set *l, legend_item *it) {
    int n = 0;
    for (int a = 0; a < N_ARCH; a++)
        if (l->arch[a]) {
            it[n] = (legend_item){"", ARCH_COLOUR[a], PT_FILLED[a], 1};
            snprintf(it[n++].text, sizeof it[0].text, "%s", ARCH_TITLE[a]);
        }
    if (l->label[L_SAMPLED]) it[n++] = (legend_item){"sampled (hollow)", "black", 6, 0};
    if (l->label[L_ANALYTIC]) it[n++] = (legend_item){"analytic (dashed)", "black", 0, 2};
    if (l->label[L_REFUSED]) it[n++] = (legend_item){"refused (top edge)", "black", 11, 0};
    if (l->label[L_PEER]) it[n++] = (legend_item){PEER_LEGEND, "black", 12, 3};
    return n;
}

/* Panel i of np side by side, margins in screen units so panels align; the key sits across the top. */
static void layout(FILE *b, double width_in, int np, int i, bool titled, bool key) {
    double w = 1.0 / np, lm = 0.8 / width_in; /* room for tic labels and the y label */
    fprintf(b, "set lmargin at screen %.4f\nset rmargin at screen %.4f\nset bmargin at screen 0.2\n"
               "set xlabel offset 0,0.5\nset ylabel offset 0.3,0\n"
               "set tmargin at screen %.3f\n",
            i * w + lm, (i + 1) * w - 0.02, titled ? 0.76 : 0.80);
    (void)key;
    fputs("unset key\n", b);
}

/* Emit datablocks and the plot command for a panel. Measured: solid line + filled markers + error bars;
 * sampled: hollow markers with error bars; analytic: dashed line with small crosses (a single analytic
 * point still shows). */
static void panel_plot(figure *f, panel_data *p, const char *extra_plot, const legend_set *legend,
                       const legend_item *extra_items, int n_extra) {
    if (legend) {
        legend_item it[12];
        int n = legend_items(legend, it);
        for (int i = 0; i < n_extra && n < 12; i++) it[n++] = extra_items[i];
        legend_draw(f->b, it, n, f->width_in);
    }
    for (int a = 0; a < N_ARCH; a++)
        for (int l = 0; l < N_LABEL; l++) {
            series *s = &p->s[a][l];
            if (!s->n) continue;
            qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_pt);
            fprintf(f->d, "$b%d_%d_%d << EOD\n", f->blocks, a, l);
            for (int i = 0; i < s->n; i++) fprintf(f->d, "%.9g %.9g %.9g %.9g\n", s->v[i].x, s->v[i].y, s->v[i].lo, s->v[i].hi);
            fputs("EOD\n", f->d);
        }
    fputs("plot ", f->b);
    bool first = true;
    for (int a = 0; a < N_ARCH; a++) {
        const char *col = ARCH_COLOUR[a];
        if (p->s[a][L_MEASURED].n) {
            fprintf(f->b, "%s$b%d_%d_%d using 1:2 with lines lw 1.2 lc rgb '%s' notitle, "
                          "'' using 1:2:3:4 with yerrorbars pt %d lc rgb '%s' notitle",
                    first ? "" : ", ", f->blocks, a, L_MEASURED, col, PT_FILLED[a], col);
            first = false;
        }
        if (p->s[a][L_SAMPLED].n) {
            fprintf(f->b, "%s$b%d_%d_%d using 1:2:3:4 with yerrorbars pt %d lc rgb '%s' notitle", first ? "" : ", ",
                    f->blocks, a, L_SAMPLED, PT_HOLLOW[a], col);
            first = false;
        }
        if (p->s[a][L_ANALYTIC].n) {
            fprintf(f->b, "%s$b%d_%d_%d using 1:2 with linespoints dt (4,3) lw 1 pt 1 ps 0.6*PS lc rgb '%s' notitle",
                    first ? "" : ", ", f->blocks, a, L_ANALYTIC, col);
            first = false;
        }
        if (p->s[a][L_PEER].n) {
            fprintf(f->b, "%s$b%d_%d_%d using 1:2 with lines dt (1,2) lw 1.2 lc rgb '%s' notitle, "
                          "'' using 1:2:3:4 with yerrorbars pt 12 lc rgb '%s' notitle",
                    first ? "" : ", ", f->blocks, a, L_PEER, col, col);
            first = false;
        }
    }
    if (extra_plot) fprintf(f->b, "%s%s", first ? "" : ", ", extra_plot);
    if (first) fputs("NaN notitle", f->b);
    fputs("\n", f->b);
    f->blocks++;
}

/* y axis: log scale, range with headroom at the top for the key and refused labels. */
static void log_y(FILE *b, const panel_data *p, const char *title, const char *format) {
    double lo = p->ymin, hi = p->ymax;
    if (!(lo > 0)) lo = 1, hi = 10;
    double decades = fmax(0.6, log10(hi / lo));
    /* refused markers sit in the top ~25% of the graph; otherwise a little air above the data */
    double head = pow(10, decades * (p->refused ? 0.45 : 0.06));
    double ylo = lo / 1.5, yhi = hi * head;
    fprintf(b, "set logscale y 10\nset yrange [%g:%g]\nset format y '%s'\nset ylabel '%s'\n", ylo, yhi, format, title);
    fputs("set ytics autofreq\n", b);
    if (log10(yhi / ylo) < 2.2) { /* too few decades for readable tics: label 1-2-5 steps */
        fputs("set ytics (", b);
        int n = 0;
        for (double d = pow(10, floor(log10(ylo))); d <= yhi; d *= 10)
            for (int m = 0; m < 3; m++) {
                double t = d * (m == 0 ? 1 : m == 1 ? 2 : 5);
                if (t >= ylo && t <= yhi) fprintf(b, "%s%.10g", n++ ? ", " : "", t);
            }
        fputs(")\n", b);
    }
}

/* ---- running gnuplot ---- */

static int render(const cb_plot_opts *o, const char *gnuplot, figure *f, const char *name, cb_err *err) {
    fflush(f->d), fflush(f->b);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s'", gnuplot);
    FILE *g = popen(cmd, "w");
    if (!g) {
        cb_err_set(err, "could not start gnuplot (%s): %s", gnuplot, strerror(errno));
        return -1;
    }
    fwrite(f->data, 1, f->data_n, g);
    const char *fmts[3] = {"pdf", "png", "svg"};
    bool on[3] = {o->pdf, o->png, o->svg};
    /* gnuplot draws into temporary files beside the figures, renamed over them once it has succeeded: an
     * earlier figure stays whole when drawing fails, and nothing is drawn when the folder is unwritable */
    char path[3][4200], tmp[3][4200];
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        tmp[i][0] = 0;
        if (!on[i] || rc) continue;
        snprintf(path[i], sizeof path[i], "%s/%s.%s", o->out, name, fmts[i]);
        if (cb_atomic_temp(path[i], tmp[i], sizeof tmp[i], err)) { tmp[i][0] = 0; rc = -1; continue; }
        terminal(g, f, fmts[i], tmp[i]);
        fwrite(f->body, 1, f->body_n, g);
        fputs("unset multiplot\nset output\n", g);
    }
    int st = pclose(g);
    if (rc == 0 && st != 0) {
        cb_err_set(err, "gnuplot failed drawing %s (exit status %d); its message is above", name,
                   WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        rc = -1;
    }
    for (int i = 0; i < 3; i++) {
        if (!tmp[i][0]) continue;
        if (rc == 0) rc = cb_atomic_rename(tmp[i], path[i], err);
        else unlink(tmp[i]);
    }
    return rc;
}

/* A figure's end: drawn through gnuplot and freed. Returns 1 (one figure drawn) or -1 (err says why). */
static int draw(const cb_plot_opts *o, const char *gnuplot, figure *f, const char *name, cb_err *err) {
    int rc = render(o, gnuplot, f, name, err) ? -1 : 1;
    fig_free(f);
    return rc;
}

/* ---- the figures ---- */

/* Every number drawn is read from a view (results/views.c): the series from latency_by_context, the
 * speed-ups from speedup (with refused pairs from arch_pairs). Rows: arch, label, x, y, ylo, yhi,
 * refused_bytes, refused_seconds, in point order. */
#define FILTER " (?1 = 0 OR p.run_id = ?1) AND p.model LIKE ?2 AND p.weight_dtype NOT IN ('int8','fp8') "
#define VIEW_FILTER " (?1 = 0 OR v.run_id = ?1) AND v.model LIKE ?2 AND v.weight_dtype NOT IN ('int8','fp8') "
#define SERIES(XY, WHERE) \
    "SELECT v.arch, CASE WHEN v.source = 'peer' THEN 'peer' ELSE v.label END, " XY ", v.refused_bytes, "          \
    "v.refused_seconds FROM latency_by_context v WHERE " WHERE \
    " AND" VIEW_FILTER "ORDER BY v.point_id"

typedef struct {
    const char *name, *title, *caption;
    const char *skipped; /* why, when skipped */
    char skipped_buf[256];
} fig_entry;

static void skip(fig_entry *e, FILE *log, const char *why) {
    snprintf(e->skipped_buf, sizeof e->skipped_buf, "%s", why);
    e->skipped = e->skipped_buf;
    fprintf(log, "ctxbench plot: skipped %s: %s\n", e->name, why);
}

/* Figures 1, 2, 4, 5 share this: one or more panels of (arch x label) series. */
typedef struct {
    const char *sql, *ylabel, *yformat, *xlabel, *extra_plot, *title;
    bool context_x;
    double top;
    double y_incl_lo, y_incl_hi; /* keep these values inside the y range (reference lines); 0 = none */
    const legend_item *extra_items; /* legend entries for extra_plot */
    int n_extra;
} panel_spec;

static int xy_figure(ctx_t *c, const cb_plot_opts *o, const char *gnuplot, fig_entry *e, const panel_spec *ps, int np,
                     double width, FILE *log, cb_err *err) {
    figure f;
    fig_open(&f, width, 2.6);
    style_header(f.b);
    panel_data p[3];
    char *lab[3] = {0};
    size_t lab_n[3] = {0};
    legend_set legend;
    memset(&legend, 0, sizeof legend);
    fputs("set multiplot\n", f.b);
    int total = 0, rc = 0;
    for (int i = 0; i < np; i++) {
        memset(&p[i], 0, sizeof p[i]);
        panel_reset(&p[i]);
    }
    for (int i = 0; i < np && !rc; i++) {
        FILE *ls = open_memstream(&lab[i], &lab_n[i]);
        rc = panel_query(c, ps[i].sql, &p[i], ls, &f.labels, err);
        fclose(ls);
        legend_add(&legend, &p[i]);
        total += p[i].points;
    }
    for (int i = 0; i < np && !rc && total; i++) {
        fputs("unset label\nunset arrow\nunset title\n", f.b);
        fputs(lab[i], f.b);
        layout(f.b, width, np, i, ps[i].title != NULL, i == 0);
        if (ps[i].title) fprintf(f.b, "set title '%s' offset 0,-0.7\n", ps[i].title);
        if (!p[i].points) {
            fputs("set label 900 'no data' at graph 0.5, graph 0.5 center\nunset logscale\nset xrange [0:1]\n"
                  "set yrange [0:1]\nset xtics ()\nset ytics ()\nset xlabel ''\nset ylabel ''\n", f.b);
            panel_data empty;
            memset(&empty, 0, sizeof empty);
            panel_plot(&f, &empty, NULL, i == 0 ? &legend : NULL, ps[0].extra_items, ps[0].n_extra);
            continue;
        }
        if (ps[i].context_x) context_axis(f.b, 'x', (int64_t)p[i].xmin, (int64_t)p[i].xmax, ps[i].xlabel);
        else
            fprintf(f.b, "set logscale x 2\nset xrange [%g:%g]\nset xtics 2 format '%%g'\nset xlabel '%s'\n", p[i].xmin / 1.4,
                    p[i].xmax * 1.4, ps[i].xlabel);
        if (ps[i].y_incl_lo > 0 && ps[i].y_incl_lo < p[i].ymin) p[i].ymin = ps[i].y_incl_lo;
        if (ps[i].y_incl_hi > 0 && ps[i].y_incl_hi > p[i].ymax) p[i].ymax = ps[i].y_incl_hi;
        log_y(f.b, &p[i], ps[i].ylabel, ps[i].yformat);
        panel_plot(&f, &p[i], ps[i].extra_plot, i == 0 ? &legend : NULL, ps[0].extra_items, ps[0].n_extra);
    }
    for (int i = 0; i < np; i++) panel_reset(&p[i]), free(lab[i]);
    if (!rc) {
        if (!total) skip(e, log, "no timed points for this figure in the database");
        else rc = render(o, gnuplot, &f, e->name, err) ? -1 : 1;
    }
    fig_free(&f);
    return rc;
}

static int fig_prefill(ctx_t *c, const cb_plot_opts *o, const char *g, fig_entry *e, FILE *log, cb_err *err) {
    panel_spec ps[2] = {
        {SERIES("v.context, v.seconds, v.ci_lo, v.ci_hi", "v.phase = 'prefill' AND v.batch = 1"),
         "Prefill time (s)", "%g", "Context (tokens)", NULL, "Time to first token", true, 0.35, 0, 0, NULL, 0},
        {SERIES("v.context, v.tokens_per_s, v.tokens_per_s_lo, v.tokens_per_s_hi", "v.phase = 'prefill' AND v.batch = 1"),
         "Prefill throughput (tokens/s)", "%g", "Context (tokens)", NULL, "Prefill tokens/s", true, 0.6, 0, 0, NULL, 0},
    };
    return xy_figure(c, o, g, e, ps, 2, 7.0, log, err);
}

static int fig_decode(ctx_t *c, const cb_plot_opts *o, const char *g, fig_entry *e, FILE *log, cb_err *err) {
    panel_spec ps[1] = {{SERIES("v.context, 1000 * v.seconds, 1000 * v.ci_lo, 1000 * v.ci_hi",
                                "v.phase = 'decode' AND v.batch = 1"),
                         "Decode latency (ms/token)", "%g", "Context depth (tokens)", NULL, NULL, true, 0.6, 0, 0, NULL, 0}};
    return xy_figure(c, o, g, e, ps, 1, 3.5, log, err);
}

/* ctxbench beside an imported peer: tokens/s of a prefill chunk and of a decoded token vs depth, for the
 * models the peer measured. The peer may have run on another machine (the report's "vs llama.cpp"). */
static int fig_peer(ctx_t *c, const cb_plot_opts *o, const char *g, fig_entry *e, FILE *log, cb_err *err) {
    sqlite3_stmt *st = prepare(c, "SELECT COUNT(*) FROM points p WHERE p.source = 'peer' AND p.label = 'measured' AND"
                                  FILTER, err);
    if (!st) return -1;
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (!n) {
        skip(e, log, "no peer points at this scale (ctxbench import llama-bench FILE: docs/peers.md)");
        return 0;
    }
#define PEER_MODELS " AND v.model IN (SELECT model FROM points WHERE source = 'peer')"
    panel_spec ps[2] = {
        {SERIES("v.context, v.tokens_per_s, v.tokens_per_s_lo, v.tokens_per_s_hi",
                "v.phase = 'prefill_chunk' AND v.batch = 1" PEER_MODELS),
         "Prefill throughput (tokens/s)", "%g", "Context depth (tokens)", NULL, "One prefill chunk at depth", true, 0.6,
         0, 0, NULL, 0},
        {SERIES("v.context, v.tokens_per_s, v.tokens_per_s_lo, v.tokens_per_s_hi",
                "v.phase = 'decode' AND v.batch = 1" PEER_MODELS),
         "Decode throughput (tokens/s)", "%g", "Context depth (tokens)", NULL, "One decoded token at depth", true, 0.6,
         0, 0, NULL, 0},
    };
#undef PEER_MODELS
    return xy_figure(c, o, g, e, ps, 2, 7.0, log, err);
}

static int fig_speedup(ctx_t *c, const cb_plot_opts *o, const char *g, fig_entry *e, FILE *log, cb_err *err) {
#define PAIR_FILTER(PHASE) \
    " phase = '" PHASE "' AND batch = 1 AND (?1 = 0 OR run_id = ?1) AND model LIKE ?2 AND weight_dtype NOT IN ('int8','fp8') "
#define SPEEDUP(PHASE)                                                                                               \
    "SELECT arch, CASE WHEN source = 'peer' THEN 'peer' ELSE pair_label END, context, speedup, speedup_lo, "         \
    "speedup_hi, NULL, NULL, point_id, baseline_point_id "                                                            \
    "FROM speedup WHERE" PAIR_FILTER(PHASE) "UNION ALL SELECT arch, pair_label, context, NULL, NULL, NULL, "         \
    "refused_bytes, refused_seconds, point_id, baseline_point_id FROM arch_pairs WHERE pair_label = 'refused' AND"   \
    PAIR_FILTER(PHASE) "ORDER BY point_id, baseline_point_id"
    const char *ref = "2 with lines dt 3 lw 0.8 lc rgb '#555555' notitle, 5 with lines dt (8,4) lw 0.8 lc "
                      "rgb '#555555' notitle, 1 with lines lw 0.5 lc rgb '#999999' notitle";
    static const legend_item refs[2] = {{"claimed 2×", "#555555", 0, 3}, {"claimed 5×", "#555555", 0, 2}};
    panel_spec ps[2] = {
        {SPEEDUP("prefill"), "Speed-up over transformer (×)", "%g", "Context (tokens)", ref, "Prefill", true, 0.45, 0.8, 6, refs, 2},
        {SPEEDUP("decode"), "Speed-up over transformer (×)", "%g", "Context depth (tokens)", ref, "Decode", true, 0.45, 0.8, 6, NULL, 0},
    };
#undef SPEEDUP
#undef PAIR_FILTER
    return xy_figure(c, o, g, e, ps, 2, 7.0, log, err);
}

static int fig_throughput(ctx_t *c, const cb_plot_opts *o, const char *g, fig_entry *e, FILE *log, cb_err *err) {
    /* The three contexts: 4K/32K/128K where present, else the first three that have throughput points. */
    sqlite3_stmt *st = prepare(c, "SELECT DISTINCT p.context FROM points p WHERE p.phase = 'throughput' AND" FILTER
                                  "ORDER BY (p.context NOT IN (4096, 32768, 131072)), p.context LIMIT 3", err);
    if (!st) return -1;
    int64_t ctxs[3];
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 3) ctxs[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!n) {
        skip(e, log, "no throughput (batched decode) points in the database");
        return 0;
    }
    /* sort ascending */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (ctxs[j] < ctxs[i]) { int64_t t = ctxs[i]; ctxs[i] = ctxs[j]; ctxs[j] = t; }
    char sql[3][1024], title[3][64];
    panel_spec ps[3];
    for (int i = 0; i < n; i++) {
        char l[24];
        cb_plot_context_label(ctxs[i], l, sizeof l);
        snprintf(title[i], sizeof title[i], "Context %s", l);
        snprintf(sql[i], sizeof sql[i],
                 SERIES("v.batch, v.tokens_per_s, v.tokens_per_s_lo, v.tokens_per_s_hi",
                        "v.phase = 'throughput' AND v.context = %lld"),
                 (long long)ctxs[i]);
        ps[i] = (panel_spec){sql[i], "Decode throughput (tokens/s)", "%g", "Batch size (sequences)", NULL, title[i], false, 0.6, 0, 0, NULL, 0};
    }
    return xy_figure(c, o, g, e, ps, n, n == 1 ? 3.5 : 7.0, log, err);
}

/* Figure 3: memory by category, analytic stacked bands + engine-accounted total as points, per arch. */
static int fig_memory(ctx_t *c, const cb_plot_opts *o, const char *gnuplot, fig_entry *e, FILE *log, cb_err *err) {
    sqlite3_stmt *st = prepare(c,
                               "SELECT p.arch, p.context, m.source, "
                               "MAX(CASE WHEN m.category = 'weights' THEN m.bytes END), "
                               "MAX(CASE WHEN m.category IN ('ssm_state') THEN m.bytes END), "
                               "MAX(CASE WHEN m.category IN ('conv_state') THEN m.bytes END), "
                               "MAX(CASE WHEN m.category = 'kv_cache' THEN m.bytes END), "
                               "MAX(CASE WHEN m.category = 'scratch' THEN m.bytes END) "
                               "FROM memory m JOIN points p ON p.id = m.point_id WHERE p.batch = 1 AND m.source IN "
                               "('analytic', 'engine') AND" FILTER "GROUP BY p.arch, p.context, m.source, p.id "
                               "ORDER BY p.arch, m.source, p.context",
                               err);
    if (!st) return -1;
    /* per arch: analytic cumulative rows and engine totals */
    series band[N_ARCH][4]; /* x, y = cumulative weights / +state / +kv / +scratch */
    series meas[N_ARCH];
    memset(band, 0, sizeof band), memset(meas, 0, sizeof meas);
    double ymin = INFINITY, ymax = 0, xmin = INFINITY, xmax = 0;
    int rows = 0;
    int64_t last_ctx[N_ARCH] = {0};
    while (sqlite3_step(st) == SQLITE_ROW) {
        int a = arch_index((const char *)sqlite3_column_text(st, 0));
        if (a < 0) continue;
        double x = col(st, 1);
        const char *src = (const char *)sqlite3_column_text(st, 2);
        double w = col(st, 3), s = col(st, 4), cv = col(st, 5), kv = col(st, 6), sc = col(st, 7);
        w = isfinite(w) ? w : 0, s = (isfinite(s) ? s : 0) + (isfinite(cv) ? cv : 0), kv = isfinite(kv) ? kv : 0;
        sc = isfinite(sc) ? sc : 0;
        double tot = w + s + kv + sc;
        if (tot <= 0) continue;
        if (!strcmp(src, "analytic")) {
            if ((int64_t)x == last_ctx[a]) continue; /* one analytic row per context */
            last_ctx[a] = (int64_t)x;
            double cum[4] = {w, w + s, w + s + kv, tot};
            for (int k = 0; k < 4; k++) series_add(&band[a][k], (pt){x, cum[k], 0, 0});
        } else {
            series_add(&meas[a], (pt){x, tot, tot, tot});
        }
        if (w > 0 && w < ymin) ymin = w;
        if (tot > ymax) ymax = tot;
        if (x < xmin) xmin = x;
        if (x > xmax) xmax = x;
        rows++;
    }
    sqlite3_finalize(st);
    if (!rows) {
        skip(e, log, "no memory rows (analytic or engine-accounted) in the database");
        return 0;
    }
    figure f;
    fig_open(&f, 7.0, 2.6);
    style_header(f.b);
    fputs("set multiplot\n", f.b);
    /* power-of-4 aligned range so the tics read 256 MiB, 1 GiB, 4 GiB ... */
    double ylo = pow(4, floor(log2(ymin / 1.5) / 2)), yhi = pow(4, ceil(log2(ymax * 1.5) / 2));
    static const char *band_col[4] = {"#bbbbbb", "#E69F00", "#56B4E9", "#F0E442"};
    for (int a = 0; a < N_ARCH; a++) {
        fprintf(f.b, "unset label\nset title '%s' offset 0,-0.7\n", ARCH_TITLE[a]);
        layout(f.b, 7.0, N_ARCH, a, true, a == 0);
        fprintf(f.b, "set lmargin at screen %.4f\n", a / 3.0 + 0.125); /* "256 MiB" tic labels are wide */
        if (a == 0) {
            legend_item it[6] = {{"weights (analytic)", "#bbbbbb", 5, 0}, {"+ SSM/conv state", "#E69F00", 5, 0},
                                 {"+ KV cache", "#56B4E9", 5, 0},         {"+ scratch", "#F0E442", 5, 0},
                                 {"analytic total (dashed)", "black", 0, 2}, {"engine-allocated (markers)", "black", 7, 0}};
            legend_draw(f.b, it, 6, f.width_in);
        }
        context_axis(f.b, 'x', (int64_t)xmin, (int64_t)xmax, "Context (tokens)");
        fprintf(f.b, "set logscale y 2\nset yrange [%g:%g]\nset format y '%%.0b %%BB'\nset ylabel '%s'\n"
                     "set ytics 4\n",
                ylo, yhi, a == 0 ? "Memory per sequence (bytes)" : "");
        if (!band[a][0].n && !meas[a].n) {
            fputs("set label 1 'no data' at graph 0.5, graph 0.5 center\nplot NaN notitle\n", f.b);
            continue;
        }
        fprintf(f.b, "plot ");
        int first = 1;
        if (band[a][0].n) {
            for (int k = 0; k < 4; k++) qsort(band[a][k].v, (size_t)band[a][k].n, sizeof(pt), cmp_pt);
            fprintf(f.d, "$m%d << EOD\n", a);
            for (int i = 0; i < band[a][0].n; i++)
                fprintf(f.d, "%.9g %.9g %.9g %.9g %.9g\n", band[a][0].v[i].x, band[a][0].v[i].y, band[a][1].v[i].y,
                        band[a][2].v[i].y, band[a][3].v[i].y);
            fputs("EOD\n", f.d);
            for (int k = 0; k < 4; k++) {
                char lower[32];
                if (k == 0) snprintf(lower, sizeof lower, "(%g)", ylo);
                else snprintf(lower, sizeof lower, "%d", k + 1);
                fprintf(f.b, "%s$m%d using 1:%s:%d with filledcurves fc rgb '%s' fs solid 0.6 noborder notitle",
                        first ? "" : ", ", a, lower, k + 2, band_col[k]);
                first = 0;
            }
            fprintf(f.b, ", $m%d using 1:5 with lines dt (4,3) lw 1 lc rgb 'black' notitle", a);
        }
        if (meas[a].n) {
            qsort(meas[a].v, (size_t)meas[a].n, sizeof(pt), cmp_pt);
            char name[32];
            snprintf(name, sizeof name, "e%d", a);
            points_clause(&f, name, &meas[a], PT_FILLED[a], ARCH_COLOUR[a], first);
        }
        fputs("\n", f.b);
    }
    for (int a = 0; a < N_ARCH; a++) {
        for (int k = 0; k < 4; k++) free(band[a][k].v);
        free(meas[a].v);
    }
    return draw(o, gnuplot, &f, e->name, err);
}

/* Figure 6: roofline from the SDE counters (flops and bytes per point) against the run's measured peaks. */
static int fig_roofline(ctx_t *c, const cb_plot_opts *o, const char *gnuplot, fig_entry *e, FILE *log, cb_err *err) {
    /* the harness stores GFLOP/s and FLOP/byte per point from the SDE counters (docs/schema.md) */
    sqlite3_stmt *st = prepare(c,
                               "SELECT p.arch, p.phase, p.gflops_per_s, p.arith_intensity FROM points p WHERE "
                               "p.gflops_per_s > 0 AND p.arith_intensity > 0 AND p.label IN ('measured', 'sampled') AND"
                               FILTER,
                               err);
    if (!st) return -1;
    series s[N_ARCH][2]; /* prefill, decode-like (decode/throughput/chunk) */
    memset(s, 0, sizeof s);
    double xmin = INFINITY, xmax = 0, ymin = INFINITY, ymax = 0;
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int a = arch_index((const char *)sqlite3_column_text(st, 0));
        const char *ph = (const char *)sqlite3_column_text(st, 1);
        double y = col(st, 2), x = col(st, 3);
        if (a < 0 || !ph || !(x > 0) || !(y > 0)) continue;
        series_add(&s[a][strcmp(ph, "prefill") ? 1 : 0], (pt){x, y, y, y});
        xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        n++;
    }
    sqlite3_finalize(st);
    if (!n) {
        skip(e, log, "no timed points with SDE GFLOP/s and arithmetic intensity in the database");
        return 0;
    }
    double peak = 0, bw = 0;
    st = prepare(c, "SELECT MAX(peak_gflops), MAX(peak_gbps) FROM runs WHERE (?1 = 0 OR id = ?1)", err);
    if (!st) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) peak = col(st, 0), bw = col(st, 1);
    sqlite3_finalize(st);
    /* runs on the amx path also measured the tile peak: prefill's GEMMs ran against that roof */
    double amx = 0;
    st = prepare(c, "SELECT MAX(roof_amx_gflops) FROM runs WHERE (?1 = 0 OR id = ?1)", err);
    if (!st) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) amx = col(st, 0);
    sqlite3_finalize(st);
    if (!(amx > 0) || !(bw > 0)) amx = 0;
    figure f;
    fig_open(&f, 3.5, 2.6);
    style_header(f.b);
    double x0 = xmin / 4, x1 = xmax * 4;
    if (bw > 0 && peak > 0) x0 = fmin(x0, peak / bw / 8), x1 = fmax(x1, peak / bw * 4);
    double y1 = fmax(fmax(ymax, isfinite(peak) ? peak : 0), amx) * 6, y0 = fmin(ymin, bw > 0 ? bw * x0 : ymin) / 2;
    fprintf(f.b, "set logscale xy 10\nset xrange [%g:%g]\nset yrange [%g:%g]\nset format x '%%g'\nset format y '%%g'\n"
                 "set xlabel 'Arithmetic intensity (FLOP/byte)'\nset ylabel 'Achieved GFLOP/s'\n",
                 x0, x1, y0, y1);
    fputs("set multiplot\n", f.b);
    layout(f.b, 3.5, 1, 0, false, true);
    legend_item it[6];
    int ni = 0;
    for (int a = 0; a < N_ARCH; a++)
        if (s[a][0].n || s[a][1].n) {
            it[ni] = (legend_item){"", ARCH_COLOUR[a], PT_FILLED[a], 0};
            snprintf(it[ni++].text, sizeof it[0].text, "%s", ARCH_TITLE[a]);
        }
    it[ni++] = (legend_item){"prefill (filled)", "black", 7, 0};
    it[ni++] = (legend_item){"decode (hollow)", "black", 6, 0};
    legend_draw(f.b, it, ni, f.width_in);
    bool roof = peak > 0 && bw > 0;
    if (roof) {
        fprintf(f.b, "set label 'peak %.0f GFLOP/s' at first %g, first %g right offset 0,0.7 font ',6' front\n", peak,
                x1 / 1.3, peak);
        fprintf(f.b, "set label '%.0f GB/s' at first %g, first %g left offset -0.5,1.6 font ',6' front\n", bw, x0 * 1.5,
                bw * x0 * 1.5);
    } else {
        fprintf(log, "ctxbench plot: roofline drawn without roof: the run rows carry no measured peak_gflops/peak_gbps\n");
    }
    if (amx > 0) /* dashed: the tile roof of runs on the amx path (docs/performance.md "AMX tiles") */
        fprintf(f.b, "set label 'AMX-BF16 peak %.0f GFLOP/s' at first %g, first %g right offset 0,0.7 font ',6' front\n",
                amx, x1 / 1.3, amx);
    fputs("plot ", f.b);
    if (roof) fprintf(f.b, "(x * %g < %g ? x * %g : %g) with lines lw 1.2 lc rgb '#444444' notitle", bw, peak, bw, peak);
    else fputs("NaN notitle", f.b);
    if (amx > 0)
        fprintf(f.b, ", (x * %g < %g ? x * %g : %g) with lines lw 1.0 dt 2 lc rgb '#444444' notitle", bw, amx, bw, amx);
    for (int a = 0; a < N_ARCH; a++)
        for (int k = 0; k < 2; k++) {
            if (!s[a][k].n) continue;
            char name[32];
            snprintf(name, sizeof name, "r%d_%d", a, k);
            points_clause(&f, name, &s[a][k], k ? PT_HOLLOW[a] : PT_FILLED[a], ARCH_COLOUR[a], false);
            free(s[a][k].v);
        }
    fputs("\n", f.b);
    return draw(o, gnuplot, &f, e->name, err);
}

/* Figure 7: PMU counters per prefill token vs context — only where a PMU answered. */
static int fig_pmu(ctx_t *c, const cb_plot_opts *o, const char *gnuplot, fig_entry *e, FILE *log, cb_err *err) {
    sqlite3_stmt *st = prepare(c,
                               "SELECT DISTINCT k.event FROM counters k JOIN points p ON p.id = k.point_id WHERE "
                               "k.status = 'ok' AND k.value IS NOT NULL AND k.event NOT LIKE 'sde%' AND p.phase = "
                               "'prefill' AND" FILTER "ORDER BY k.event LIMIT 3",
                               err);
    if (!st) return -1;
    char ev[3][96];
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 3) snprintf(ev[n++], sizeof ev[0], "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (!n) {
        char why[200] = "no hardware (PMU) counter values in the database";
        st = prepare(c, "SELECT status FROM counters k WHERE k.event NOT LIKE 'sde%' AND k.status != 'ok' LIMIT 1", err);
        if (!st) return -1;
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(why, sizeof why, "no hardware (PMU) counter values in the database (%.120s)", sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        skip(e, log, why);
        return 0;
    }
    char sql[3][700];
    panel_spec ps[3];
    for (int i = 0; i < n; i++) {
        char *q = sqlite3_mprintf("%Q", ev[i]);
        snprintf(sql[i], sizeof sql[i],
                 "SELECT p.arch, p.label, p.context, k.value / p.context, NULL, NULL, NULL, NULL FROM points p JOIN "
                 "counters k ON k.point_id = p.id AND k.event = %s AND k.status = 'ok' WHERE p.phase = 'prefill' AND"
                 FILTER, q);
        sqlite3_free(q);
        ps[i] = (panel_spec){sql[i], "Events per token", "%g", "Context (tokens)", NULL, ev[i], true, 0.6, 0, 0, NULL, 0};
    }
    return xy_figure(c, o, gnuplot, e, ps, n, n == 1 ? 3.5 : 7.0, log, err);
}

/* ---- gallery and driver ---- */

static void html_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

static int gallery(const cb_plot_opts *o, ctx_t *c, fig_entry *figs, int nf, cb_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/index.html", o->out);
    cb_atomic_file af;
    if (cb_atomic_open(&af, path, err)) return -1;
    FILE *f = af.f;
    fputs("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ctxbench figures</title>\n<style>body{font-family:"
          "sans-serif;max-width:60em;margin:2em auto}figure{margin:2em 0}img{max-width:100%;border:1px solid #ddd}"
          "figcaption{font-size:0.9em}.skip{color:#a00}</style></head><body>\n<h1>ctxbench figures</h1>\n",
          f);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT id, started_utc, cpu_model, threads_used, git_commit, kernel_path, workload_name FROM runs "
                                  "WHERE (?1 = 0 OR id = ?1) ORDER BY id", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, c->run);
        fputs("<p>Runs drawn:</p><ul>\n", f);
        while (sqlite3_step(st) == SQLITE_ROW) {
            fprintf(f, "<li>run %lld — ", (long long)sqlite3_column_int64(st, 0));
            const char *k[] = {"date", "machine", "threads", "commit", "kernel path", "workload"};
            for (int i = 1; i <= 6; i++) {
                fprintf(f, "%s%s: ", i > 1 ? "; " : "", k[i - 1]);
                const unsigned char *t = sqlite3_column_text(st, i);
                html_escape(f, t ? (const char *)t : "?");
            }
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    sqlite3_finalize(st);
    fprintf(f, "<p>Database <code>");
    html_escape(f, o->db);
    fprintf(f, "</code>, model scale <code>%s</code>. Markers: filled = measured (line, error bars = 95%% bootstrap CI "
               "of the median), hollow = sampled, dashed = analytic, ▼ at the top edge = refused (with what it needed); failed points are not drawn (the claims report lists them)."
               "</p>\n", c->pattern + 2);
    for (int i = 0; i < nf; i++) {
        fprintf(f, "<figure id=\"%s\"><h2>%d. %s</h2>\n", figs[i].name, i + 1, figs[i].title);
        if (figs[i].skipped) {
            fprintf(f, "<p class=\"skip\">Skipped: ");
            html_escape(f, figs[i].skipped);
            fputs("</p>\n", f);
        } else {
            fprintf(f, "<img src=\"%s.%s\" alt=\"%s\">\n", figs[i].name, o->png ? "png" : "svg", figs[i].title);
            fprintf(f, "<figcaption>%s ", figs[i].caption);
            if (o->pdf) fprintf(f, "[<a href=\"%s.pdf\">PDF</a>] ", figs[i].name);
            if (o->svg) fprintf(f, "[<a href=\"%s.svg\">SVG</a>]", figs[i].name);
            fputs("</figcaption>\n", f);
        }
        fputs("</figure>\n", f);
    }
    fputs("</body></html>\n", f);
    return cb_atomic_commit(&af, err);
}

static int64_t count_of(sqlite3 *db, const char *sql, int64_t run, const char *text) {
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, run);
        if (text) sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* --run and --scale must name something in the database: an empty selection is an error, not a
 * gallery of skipped figures. */
static int check_selection(ctx_t *c, const cb_plot_opts *o, cb_err *err) {
    if (o->run_id > 0 && count_of(c->db, "SELECT COUNT(*) FROM runs WHERE id = ?1", o->run_id, NULL) <= 0) {
        cb_err_set(err, "--run %lld: no such run in %s (ids: SELECT id FROM runs)", (long long)o->run_id, o->db);
        return -1;
    }
    if (o->scale) {
        char pattern[96];
        snprintf(pattern, sizeof pattern, "%%-%s", o->scale);
        if (count_of(c->db, "SELECT COUNT(*) FROM points WHERE (?1 = 0 OR run_id = ?1) AND model LIKE ?2", o->run_id,
                     pattern) <= 0) {
            cb_err_set(err, "--scale %s: no points of a model named *-%s in %s%s (expected a suffix such as xs, s or 9b)",
                       o->scale, o->scale, o->db, o->run_id ? " for that run" : "");
            return -1;
        }
    }
    return 0;
}

/* Scale suffix with the most timed points, e.g. "xs" from "bamba-xs". */
static void pick_scale(ctx_t *c, const cb_plot_opts *o) {
    snprintf(c->pattern, sizeof c->pattern, "%%");
    if (o->scale) {
        snprintf(c->pattern, sizeof c->pattern, "%%-%s", o->scale);
        return;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT model FROM points WHERE (?1 = 0 OR run_id = ?1) AND label != 'analytic' AND "
                           "source = 'ctxbench'", -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, c->run);
    char best[32] = "";
    int best_n = 0;
    struct { char s[32]; int n; } seen[32];
    int ns = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        const char *d = m ? strrchr(m, '-') : NULL;
        if (!d || strlen(d + 1) >= 32) continue;
        int i = 0;
        while (i < ns && strcmp(seen[i].s, d + 1)) i++;
        if (i == ns) {
            if (ns == 32) continue;
            snprintf(seen[ns].s, sizeof seen[ns].s, "%s", d + 1), seen[ns++].n = 0;
        }
        if (++seen[i].n > best_n) best_n = seen[i].n, snprintf(best, sizeof best, "%s", seen[i].s);
    }
    sqlite3_finalize(st);
    if (best_n) snprintf(c->pattern, sizeof c->pattern, "%%-%s", best);
}

int cb_plot_all(const cb_plot_opts *o, FILE *log, cb_err *err) {
    char gnuplot[4096];
    if (cb_gnuplot_find(gnuplot, sizeof gnuplot, err)) return -1;
    if (!o->pdf && !o->png && !o->svg) {
        cb_err_set(err, "no output format chosen (--formats takes pdf,png,svg)");
        return -1;
    }
    ctx_t c = {.run = o->run_id};
    if (cb_store_open_read(o->db, &c.db, err)) return -1;
    if (check_selection(&c, o, err)) {
        sqlite3_close(c.db);
        return -1;
    }
    if (mkdir(o->out, 0777) && errno != EEXIST) {
        cb_err_set(err, "%s: cannot create the output folder: %s", o->out, strerror(errno));
        sqlite3_close(c.db);
        return -1;
    }
    pick_scale(&c, o);
    fig_entry figs[] = {
        {"prefill", "Prefill time and throughput vs context", "Left: time to first token (prefill of N tokens from "
         "an empty cache), median of the repetitions. Right: the same as tokens/s.", NULL, ""},
        {"decode", "Decode latency per token vs context depth", "Median per-token decode latency with N tokens "
         "already in context (batch 1).", NULL, ""},
        {"memory", "Memory per sequence vs context", "Bands: analytic bytes from the engine's memory plan, stacked "
         "by category (weights, SSM+conv state, KV cache, scratch). Points: bytes the engine allocated.", NULL, ""},
        {"speedup", "Speed-up over the transformer", "Transformer time / engine time at equal context, batch, "
         "threads and dtypes; error bars combine the two CIs conservatively. Dotted/dashed: the claimed 2× and 5×.",
         NULL, ""},
        {"throughput", "Batched-decode throughput vs batch size", "Tokens/s of one batched decode step at fixed "
         "depth; refused = the batch did not fit the memory budget.", NULL, ""},
        {"roofline", "Roofline", "Achieved GFLOP/s vs arithmetic intensity from the engines' SDE counters (flops, "
         "bytes read and written), against the run's measured peak FLOP/s and bandwidth.", NULL, ""},
        {"counters", "Hardware counters per token", "PAPI preset events per prefill token vs context (PMU needed).",
         NULL, ""},
        {"peer", "ctxbench and llama.cpp", "Tokens/s of one prefill chunk (left) and one decoded token (right) at "
         "each depth, ctxbench (solid) beside the imported llama-bench tests of the same models (dotted, open diamonds; "
         "`ctxbench import`). The peer's file may come from another machine: the report's \"vs llama.cpp\" section "
         "names both CPUs.", NULL, ""},
    };
    typedef int (*fig_fn)(ctx_t *, const cb_plot_opts *, const char *, fig_entry *, FILE *, cb_err *);
    fig_fn fns[] = {fig_prefill, fig_decode, fig_memory, fig_speedup, fig_throughput, fig_roofline, fig_pmu, fig_peer};
    int nf = (int)(sizeof fns / sizeof fns[0]), drawn = 0;
    for (int i = 0; i < nf; i++) {
        int r = fns[i](&c, o, gnuplot, &figs[i], log, err);
        if (r < 0) {
            sqlite3_close(c.db);
            return -1;
        }
        drawn += r;
    }
    int rc = gallery(o, &c, figs, nf, err);
    sqlite3_close(c.db);
    return rc ? -1 : drawn;
}
