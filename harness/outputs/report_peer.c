/* The claims report's peer parts (report_peer.h): ctxbench beside an imported llama.cpp, from the views
 * vs_peer and speedup_vs_peer (results/views.c). docs/peers.md. */
#include "report_peer.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "plot.h"
#include "report_cells.h"

static const char *col_txt(sqlite3_stmt *st, int i) { return cb_report_text(st, i, "—"); }

/* A peer table's ratio column over its rows: count, sum of logs (the geometric mean), range. */
typedef struct { int rows; double sum_log, lo, hi; } ratio_sum;

/* The cells each peer row starts with: the depth (column 2) as 4K / 1M, the CI text of columns lo, hi;
 * returns the ratio (column r), counted into g. */
static double ratio_cells(sqlite3_stmt *st, int r, int lo, int hi, char cl[16], char ci[48], ratio_sum *g) {
    cb_plot_context_label(sqlite3_column_int64(st, 2), cl, 16);
    cb_report_ci(st, lo, hi, ci, 48);
    double x = sqlite3_column_double(st, r);
    g->sum_log += log(x), g->lo = fmin(g->lo, x), g->hi = fmax(g->hi, x), g->rows++;
    return x;
}

/* Steps to the next row; before the first, prints the table's header. */
static bool next_row(sqlite3_stmt *st, const ratio_sum *g, const char *header, FILE *md) {
    if (!st || sqlite3_step(st) != SQLITE_ROW) return false;
    if (!g->rows) fputs(header, md);
    return true;
}

static const char C2_HEADER[] =
    "### beside the peer's own ratio\n\nThe same speed-up measured by an imported peer on its own models "
    "(view `speedup_vs_peer`: its hybrid / mamba2 model over its transformer of the same scale, same phase, "
    "depth and threads). Both ratios are within one machine each, so they compare even when the peer ran "
    "elsewhere; ours / peer's > 1 means ctxbench's architectures gain more over its transformer.\n\n"
    "| model | phase | depth | threads | ctxbench speed-up | 95% CI | peer speed-up | 95% CI | ours / peer's | "
    "point ids (ctxbench; peer) |\n|---|---|---|---|---|---|---|---|---|---|\n";

static const char VS_HEADER[] =
    "ctxbench against the imported peer at the same model, phase, depth and threads (view `vs_peer`): "
    "ratio = ctxbench tokens/s / the peer's (> 1: ctxbench faster), CI from both 95% bootstrap CIs per "
    "token (conservative). prefill_chunk = one chunk at that depth (the peer's pp test), decode = one token "
    "at that depth (its tg test).\n\n| model | phase | depth | threads | ctxbench tok/s | peer tok/s | "
    "ratio | 95% CI | ctxbench mode, KV | peer KV | point ids (ctxbench, peer) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|\n";

void cb_report_c2_peer(sqlite3 *db, FILE *md, char *summary, size_t n) {
    summary[0] = 0;
    sqlite3_stmt *st = cb_report_query(db, "SELECT model, phase, context, threads, speedup, speedup_lo, speedup_hi, peer_speedup, "
                                "peer_speedup_lo, peer_speedup_hi, speedup_ratio, point_id, baseline_point_id, peer_point_id, "
                                "peer_baseline_point_id, peer_engine FROM speedup_vs_peer ORDER BY arch DESC, model, phase DESC, "
                                "context, point_id");
    ratio_sum g = { 0, 0, INFINITY, 0 };
    char peer[64] = "";
    while (next_row(st, &g, C2_HEADER, md)) {
        char cl[16], ci[48], pci[48];
        double r = ratio_cells(st, 10, 5, 6, cl, ci, &g);
        cb_report_ci(st, 8, 9, pci, sizeof pci);
        fprintf(md, "| %s | %s | %s | %s | **%.2f×** | %s | %.2f× | %s | %.2f | %s/%s; %s/%s |\n", col_txt(st, 0),
                col_txt(st, 1), cl, col_txt(st, 3), sqlite3_column_double(st, 4), ci, sqlite3_column_double(st, 7), pci, r,
                col_txt(st, 11), col_txt(st, 12), col_txt(st, 13), col_txt(st, 14));
        snprintf(peer, sizeof peer, "%s", col_txt(st, 15));
    }
    sqlite3_finalize(st);
    if (!g.rows) {
        fputs("No peer measurement to compare the speed-ups with (`ctxbench import llama-bench FILE`, docs/peers.md).\n\n", md);
        return;
    }
    double geo = exp(g.sum_log / g.rows);
    fprintf(md, "\nOver these %d pairs ctxbench's speed-up is %.2f× the %s one (geometric mean; %.2f–%.2f): %s.\n\n", g.rows,
            geo, peer, g.lo, g.hi, geo > 1.05 ? "ctxbench's hybrid and SSM engines gain more over its transformer than the peer's do"
            : geo < 0.95 ? "the peer's hybrid and SSM models gain more over its transformer than ctxbench's do"
                         : "both gain about as much");
    snprintf(summary, n, "ctxbench's speed-ups are %.2fx %s's own (geometric mean over %d pairs, %.2f-%.2f)", geo, peer,
             g.rows, g.lo, g.hi);
}

void cb_report_vs_peer(sqlite3 *db, FILE *md) {
    sqlite3_stmt *st = cb_report_query(db, "SELECT model, phase, context, threads, tokens_per_s, peer_tokens_per_s, ratio, ratio_lo, "
                                "ratio_hi, label, engine, mode, kv_dtype, peer_kv_dtype, point_id, peer_point_id, "
                                "COALESCE(cpu_model, '—'), COALESCE(peer_cpu_model, '—'), peer_engine FROM vs_peer "
                                "ORDER BY arch DESC, model, phase DESC, context, threads, point_id");
    ratio_sum g = { 0, 0, INFINITY, 0 };
    bool other_machine = false;
    char peer[64] = "llama.cpp", cpu[160] = "", pcpu[160] = "";
    fputs("## vs llama.cpp\n\n", md);
    while (next_row(st, &g, VS_HEADER, md)) {
        char cl[16], ci[48];
        double r = ratio_cells(st, 6, 7, 8, cl, ci, &g);
        fprintf(md, "| %s | %s | %s | %s | %.4g | %.4g | **%.2f×** | %s | %s, %s | %s | %s, %s |\n", col_txt(st, 0),
                col_txt(st, 1), cl, col_txt(st, 3), sqlite3_column_double(st, 4), sqlite3_column_double(st, 5), r, ci,
                col_txt(st, 11), col_txt(st, 12), col_txt(st, 13), col_txt(st, 14), col_txt(st, 15));
        if (strcmp(col_txt(st, 16), col_txt(st, 17))) other_machine = true;
        snprintf(cpu, sizeof cpu, "%s", col_txt(st, 16)), snprintf(pcpu, sizeof pcpu, "%s", col_txt(st, 17));
        snprintf(peer, sizeof peer, "%s", col_txt(st, 18));
    }
    sqlite3_finalize(st);
    if (!g.rows) {
        fputs("No ctxbench point has a peer point of the same model, phase (prefill_chunk / decode), depth and threads "
              "(`ctxbench import llama-bench FILE`, docs/peers.md).\n\n", md);
        return;
    }
    fprintf(md, "\nGeometric mean over %d pairs: ctxbench %.2f× %s.", g.rows, exp(g.sum_log / g.rows), peer);
    if (other_machine)
        fprintf(md, " **Different machines**: ctxbench ran on \"%s\", the peer's file on \"%s\" — the ratios mix the two "
                    "programs with the two machines; compare the speed-ups (C2, \"beside the peer's own ratio\") instead, "
                    "or re-run llama-bench here (docs/peers.md).", cpu, pcpu);
    fputs("\n\n", md);
}
