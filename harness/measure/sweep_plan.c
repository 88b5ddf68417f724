/* Sweep step 1: the points of a workload (sweep_plan.h). */
#include "sweep_plan.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/model/presets.h"
#include "../../engines/model/quantize.h"

/* The sweep's points, at most: models x engines x phases x contexts x threads (x batches for
 * throughput). Lists of up to CB_WL_MAX_LIST entries make the product reach 5 x 64^5, so it is counted
 * in 64 bits and refused past CB_SWEEP_MAX_POINTS (docs/promises.md). */
static int count_points(const cb_workload *w, const cb_sweep_opts *o, int64_t *out, cb_err *err) {
    int64_t per_ctx = 0;
    for (int ph = 0; ph < w->n_phases; ph++) per_ctx += w->phases[ph] == CB_PH_THROUGHPUT ? w->n_batches : 1;
    int64_t n_thr = o->threads_override > 0 ? 1 : w->n_threads;
    int64_t n = (int64_t)w->n_models * CB_MAX(w->n_engines, 1) * w->n_contexts * n_thr * per_ctx;
    if (n > CB_SWEEP_MAX_POINTS) {
        cb_err_set(err, "workload '%s': %lld points (%d models x %d engines x %d contexts x %lld threads x %lld "
                   "phase/batch combinations) exceed the limit of %d points per sweep; split it into several workloads",
                   w->name, (long long)n, w->n_models, CB_MAX(w->n_engines, 1), w->n_contexts, (long long)n_thr,
                   (long long)per_ctx, CB_SWEEP_MAX_POINTS);
        return -1;
    }
    *out = n;
    return 0;
}

/* The engine of model mi at engine list index ei: NULL with *skip when the workload names an engine that
 * does not run the model, NULL with *perr when the point can only fail. */
static int engine_for(const cb_workload *w, const cb_sweep_plan *plan, int mi, int ei, const cb_engine_ops **ops,
                      const char **perr, bool *skip, FILE *notes, cb_err *err) {
    *ops = NULL, *perr = NULL, *skip = false;
    if (!plan->cfg_ok[mi]) { *perr = plan->cfg_err[mi]; return 0; }
    if (w->n_engines == 0) {
        *ops = cb_engine_for_config(&plan->cfgs[mi]);
        if (!*ops) *perr = "no engine registered for this model_type";
        return 0;
    }
    *ops = cb_engine_find(w->engines[ei]);
    if (!*ops) { cb_err_set(err, "unknown engine '%s'", w->engines[ei]); return -1; }
    if (!(*ops)->supports(&plan->cfgs[mi])) {
        if (notes) fprintf(notes, "ctxbench: note: engine %s does not run %s (model_type %s); no points\n",
                           (*ops)->name, w->models[mi], plan->cfgs[mi].model_type_str);
        *skip = true;
    }
    return 0;
}

int cb_sweep_plan_build(const cb_workload *w, const cb_sweep_opts *o, const cb_model_source *src, FILE *notes,
                        cb_sweep_plan *plan, cb_err *err) {
    memset(plan, 0, sizeof *plan);
    int64_t max_points = 0;
    if (count_points(w, o, &max_points, err)) return -1;
    plan->cfgs = calloc((size_t)w->n_models, sizeof *plan->cfgs);
    plan->cfg_ok = calloc((size_t)w->n_models, sizeof *plan->cfg_ok);
    plan->cfg_err = calloc((size_t)w->n_models, sizeof *plan->cfg_err);
    plan->pts = calloc((size_t)max_points + 1, sizeof *plan->pts);
    if (!plan->cfgs || !plan->cfg_ok || !plan->cfg_err || !plan->pts) {
        cb_sweep_plan_free(plan);
        cb_err_set(err, "out of memory");
        return -1;
    }
    int n_thr = o->threads_override > 0 ? 1 : w->n_threads;
    for (int mi = 0; mi < w->n_models; mi++) {
        cb_err e = { "" };
        plan->cfg_ok[mi] = src->config(w->models[mi], &plan->cfgs[mi], &e) == 0;
        if (plan->cfg_ok[mi]) cb_config_for_weights(w->models[mi], w->weight_dtype, &plan->cfgs[mi]); /* 8-bit plans */
        snprintf(plan->cfg_err[mi], sizeof plan->cfg_err[mi], "model %.200s: %.290s", w->models[mi], e.msg);
        for (int ei = 0; ei < (w->n_engines ? w->n_engines : 1); ei++) {
            const cb_engine_ops *ops;
            const char *perr;
            bool skip;
            if (engine_for(w, plan, mi, ei, &ops, &perr, &skip, notes, err)) { cb_sweep_plan_free(plan); return -1; }
            if (skip) continue;
            for (int ph = 0; ph < w->n_phases; ph++)
                for (int ci = 0; ci < w->n_contexts; ci++)
                    for (int ti = 0; ti < n_thr; ti++) {
                        int nb = w->phases[ph] == CB_PH_THROUGHPUT ? w->n_batches : 1;
                        for (int bi = 0; bi < nb; bi++) {
                            cb_point_def *p = &plan->pts[plan->np++];
                            p->ops = ops; p->model = mi; p->phase = w->phases[ph]; p->ctx = w->contexts[ci];
                            p->threads = o->threads_override > 0 ? o->threads_override : w->threads[ti];
                            if (p->threads <= 0) p->threads = omp_get_max_threads(); /* record what "all" meant */
                            p->batch = w->phases[ph] == CB_PH_THROUGHPUT ? w->batches[bi] : 1;
                            p->error = perr;
                        }
                    }
        }
    }
    return 0;
}

void cb_sweep_plan_free(cb_sweep_plan *plan) {
    free(plan->pts); free(plan->cfgs); free(plan->cfg_ok); free(plan->cfg_err);
    memset(plan, 0, sizeof *plan);
}

void cb_sweep_point_key(const cb_workload *w, const cb_point_def *p, char *out, size_t n) {
    snprintf(out, n, "%s|%s|%s|%lld|%d|%d|%s|%s|%s|%s", p->ops ? p->ops->name : "none", w->models[p->model],
             cb_phase_name(p->phase), (long long)p->ctx, p->batch, p->threads, w->mode == CB_MODE_FAST ? "fast" : "exact",
             cb_dtype_name(w->weight_dtype), cb_dtype_name(w->kv_dtype), cb_fill_name(w->fill));
}

const char *cb_sweep_point_arch(const cb_sweep_plan *plan, const cb_point_def *p) {
    return plan->cfg_ok[p->model] ? cb_arch_name(plan->cfgs[p->model].arch) : "unknown";
}
