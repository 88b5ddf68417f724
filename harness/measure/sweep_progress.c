/* The sweep's progress lines (sweep_progress.h). */
#include "sweep_progress.h"

#include <stdio.h>

void cb_progress_roofs(const cb_progress *pr, const cb_sweep_roofs *rf) {
    if (pr->quiet) return;
    const cb_roofs *r = &rf->roofs;
    if (rf->have)
        fprintf(stderr, "ctxbench: roofs (measured, %.1f s): FMA %.0f GFLOP/s 1 thread, %.0f GFLOP/s %d threads; "
                "triad %.1f GB/s 1 thread, %.1f GB/s %d threads\n", r->seconds, r->fma_gflops_1t, r->fma_gflops,
                r->threads, r->triad_gbps_1t, r->triad_gbps, r->threads);
    if (rf->have && r->amx_gflops > 0)
        fprintf(stderr, "ctxbench: AMX-BF16 roof %.0f GFLOP/s 1 thread, %.0f GFLOP/s %d threads (prefill %% of peak uses it)\n",
                r->amx_gflops_1t, r->amx_gflops, r->threads);
    if (!rf->have) fprintf(stderr, "ctxbench: roofs %s\n", rf->why);
}

void cb_progress_point(cb_progress *pr, const cb_workload *w, const cb_point_def *p, const cb_point_result *r) {
    pr->done++;
    if (pr->quiet) return;
    double el = cb_now_seconds() - pr->t_start;
    double eta = pr->done < pr->total ? el / pr->done * (pr->total - pr->done) : 0;
    fprintf(stderr, "[%d/%d] %-11s %-18s %s@%lld%s  %-8s %s%.4g  elapsed %.0fs  ETA %.0fs\n", pr->done, pr->total,
            p->ops ? p->ops->name : "-", w->models[p->model], cb_phase_name(p->phase), (long long)p->ctx,
            p->phase == CB_PH_THROUGHPUT ? "x" : "", cb_label_name(r->label),
            r->have_stats ? "median " : r->have_plan ? "plan bytes " : "", r->have_stats ? r->st.median : (double)r->plan.total,
            el, eta);
    if (r->label == CB_LABEL_FAILED || r->label == CB_LABEL_REFUSED) fprintf(stderr, "    %s\n", r->status);
    else if (r->have_stats && r->estimated_seconds > 0)
        fprintf(stderr, "    point took %.1f s (estimated %.1f s)\n", r->seconds_total, r->estimated_seconds);
    else if (r->have_stats) fprintf(stderr, "    point took %.1f s (estimated - : first of its kind)\n", r->seconds_total);
}
