/* Sweep step 2: failed / analytic / refused, or measure and how (sweep_decide.h). */
#include "sweep_decide.h"

#include <stdio.h>
#include <string.h>

#include "estimate.h"

void cb_decider_init(cb_decider *d, const cb_workload *w, const cb_sweep_plan *plan, int64_t mem_budget,
                     double time_budget_point, double t_start) {
    memset(d, 0, sizeof *d);
    d->w = w, d->plan = plan, d->mem_budget = mem_budget, d->time_budget_point = time_budget_point, d->t_start = t_start;
}

/* The slot remembering the last point of this engine/model/phase (for time estimates); -1 if full. */
static int last_slot(cb_decider *c, const cb_point_def *p) {
    for (int i = 0; i < c->n_last; i++)
        if (c->last[i].ops == p->ops && c->last[i].model == p->model && c->last[i].phase == p->phase) return i;
    if (c->n_last >= 256) return -1;
    int i = c->n_last++;
    c->last[i].ops = p->ops; c->last[i].model = p->model; c->last[i].phase = p->phase;
    c->last[i].ctx = 0; c->last[i].sec = -1; c->last[i].sampled = false;
    return i;
}

static void opts_for(const cb_decider *c, const cb_point_def *p, int64_t max_ctx, int batch, cb_engine_opts *eo) {
    cb_engine_opts_default(eo);
    eo->threads = p->threads;
    eo->mode = c->w->mode;
    eo->kv_dtype = c->w->kv_dtype;
    eo->max_context = max_ctx;
    eo->max_batch = batch;
    eo->prefill_chunk = c->w->prefill_chunk;
}

/* Tokens the timed repetitions add beyond the point's depth (the cache must hold them). */
static int64_t extra_tokens(const cb_decider *c, cb_phase ph, int reps) {
    switch (ph) {
    case CB_PH_DECODE: case CB_PH_THROUGHPUT: return (int64_t)c->w->decode_tokens * reps;
    case CB_PH_PREFILL_CHUNK: return (int64_t)c->w->prefill_chunk * reps;
    default: return 0;
    }
}

/* The point's compute work (FLOPs of every timed call, warm-ups included; for decode, which is bound by
 * memory traffic, bytes of weights, cache and state read) and depth-fill work (FLOPs of a real prefill, or
 * bytes of cache and state written by synthetic fills), for the time estimates. Returns whether the
 * compute work is in bytes. */
static bool point_work(const cb_decider *c, const cb_point_def *p, const cb_point_result *r, const cb_config *cfg,
                       bool sampled, double *compute, double *fill) {
    const cb_workload *w = c->w;
    double total = (double)(w->warmups + w->repetitions), B = CB_MAX(r->batch, 1), G = w->decode_tokens;
    double cache = (double)(r->plan.kv_cache + r->plan.ssm_state + r->plan.conv_state);
    *fill = 0;
    switch (p->phase) {
    case CB_PH_PREFILL:
        *compute = sampled ? w->sample_depths * total * cb_est_flops(cfg, w->prefill_chunk, p->ctx / 2, 1)
                           : total * cb_est_flops(cfg, p->ctx, 0, 1);
        if (sampled) *fill = w->sample_depths * total * cache / 2;
        return false;
    case CB_PH_PREFILL_CHUNK: *compute = total * cb_est_flops(cfg, w->prefill_chunk, p->ctx, 1); break;
    case CB_PH_DECODE: case CB_PH_THROUGHPUT: *compute = total * G * ((double)r->plan.weights + cache); break;
    default: *compute = 0; return false;
    }
    if (r->fill == CB_FILL_REAL) *fill = B * cb_est_flops(cfg, p->ctx, 0, 0);
    else *fill = (p->phase == CB_PH_THROUGHPUT ? 1 : total) * cache;
    return p->phase == CB_PH_DECODE || p->phase == CB_PH_THROUGHPUT;
}

/* Throughput with batch 0: the largest batch whose plan fits the memory budget. */
static int largest_batch(const cb_decider *c, const cb_point_def *p, const cb_config *cfg, int reps) {
    cb_engine_opts eo;
    int lo = 0, hi = 1;
    for (;;) {
        opts_for(c, p, p->ctx + extra_tokens(c, p->phase, reps), hi, &eo);
        cb_memory_report m;
        p->ops->plan(cfg, &eo, eo.max_context, hi, &m);
        if (m.total > (size_t)c->mem_budget || hi >= 4096) break;
        lo = hi; hi *= 2;
    }
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        opts_for(c, p, p->ctx + extra_tokens(c, p->phase, reps), mid, &eo);
        cb_memory_report m;
        p->ops->plan(cfg, &eo, eo.max_context, mid, &m);
        if (m.total <= (size_t)c->mem_budget) lo = mid; else hi = mid;
    }
    return CB_MAX(lo, 1);
}

/* The point's time estimate from the previous point of its series, or the fastest rate of the run;
 * false when neither is known yet. */
static bool estimate(const cb_decider *c, const cb_point_def *p, const cb_point_result *r, const cb_measure_order *o,
                     double *est) {
    const cb_workload *w = c->w;
    int li = o->slot, reps = w->warmups + w->repetitions;
    double work_c = o->work_compute, work_f = o->work_fill;
    if (li >= 0 && c->last[li].sec > 0 && c->last[li].ctx > 0) {
        if (o->sampled && !c->last[li].sampled) {
            /* from a whole prefill: its per-token cost x k chunks of c tokens, x (warm-ups + repetitions),
             * x the depth ratio (attention chunks cost more deeper), x 2 for the one-off validation */
            double prev = c->last[li].sec, ratio = (double)p->ctx / (double)c->last[li].ctx;
            double per_token = prev / ((double)reps * (double)c->last[li].ctx);
            *est = per_token * w->prefill_chunk * w->sample_depths * reps * ratio * 2;
        } else {
            /* compute scales with FLOPs, fills with their work; a real fill after a synthetic one (or the
             * reverse) is converted through the previous point's compute rate (FLOPs) or 2 GB/s per thread */
            double fill_s = c->last[li].fill_s, fill_work = c->last[li].fill_work;
            if (c->last[li].fill != r->fill) {
                if (r->fill == CB_FILL_REAL && c->last[li].compute_work > 0) {
                    fill_s = c->last[li].compute_s; fill_work = c->last[li].compute_work;
                } else {
                    fill_s = 1; fill_work = 2e9 * c->last[li].threads;
                }
            }
            *est = cb_est_seconds(c->last[li].compute_s, c->last[li].compute_work, fill_s, fill_work,
                                  c->last[li].other_s, c->last[li].threads, work_c, work_f, p->threads);
        }
        return true;
    }
    if (c->best_rate[o->bytes_bound] > 0 && work_c > 0) {
        /* first point of its series: an optimistic estimate from the fastest rate seen in this run */
        double rate = c->best_rate[o->bytes_bound] * p->threads;
        *est = work_c / rate + (r->fill == CB_FILL_REAL ? work_f / rate : work_f / (2e9 * p->threads));
        return true;
    }
    return false;
}

bool cb_decide(cb_decider *c, const cb_point_def *p, cb_point_result *r, cb_measure_order *o) {
    const cb_workload *w = c->w;
    memset(o, 0, sizeof *o);
    snprintf(r->status, sizeof r->status, "ok");
    r->batch = p->batch;
    if (p->error) { r->label = CB_LABEL_FAILED; snprintf(r->status, sizeof r->status, "%s", p->error); return false; }
    const cb_config *cfg = &c->plan->cfgs[p->model];
    o->sampled = p->phase == CB_PH_PREFILL && p->ctx > w->max_measured_prefill;
    r->fill = w->fill == CB_FILL_AUTO ? (p->ctx > w->max_measured_prefill ? CB_FILL_SYNTHETIC : CB_FILL_REAL) : w->fill;
    if (p->phase == CB_PH_PREFILL) r->fill = o->sampled ? CB_FILL_SYNTHETIC : CB_FILL_REAL;
    int reps = w->warmups + w->repetitions;
    if (p->phase == CB_PH_THROUGHPUT && p->batch == 0) r->batch = largest_batch(c, p, cfg, reps);
    int B = CB_MAX(r->batch, 1);
    int64_t max_ctx = o->sampled ? p->ctx : p->ctx + extra_tokens(c, p->phase, reps);
    if (p->phase == CB_PH_MEMORY) max_ctx = p->ctx;
    opts_for(c, p, max_ctx, B, &o->eo);
    p->ops->plan(cfg, &o->eo, max_ctx, B, &r->plan);
    cb_config_weight_split(cfg, &r->wplan);
    r->have_plan = true;
    if (p->phase == CB_PH_MEMORY) { r->label = CB_LABEL_ANALYTIC; r->unit = "bytes"; return false; }
    if (r->plan.total > (size_t)c->mem_budget) {
        r->label = CB_LABEL_REFUSED;
        r->refused_bytes = (int64_t)r->plan.total; /* saturated at CB_BYTES_MAX: never negative */
        snprintf(r->status, sizeof r->status, "plan needs %s%zu bytes > memory budget %lld bytes",
                 r->plan.total == CB_BYTES_MAX ? "more than " : "", r->plan.total, (long long)c->mem_budget);
        return false;
    }
    o->slot = last_slot(c, p);
    double spent = cb_now_seconds() - c->t_start;
    if (w->time_budget_run > 0 && spent >= w->time_budget_run) {
        r->label = CB_LABEL_REFUSED; /* no estimate needed: nothing is left of the run budget */
        snprintf(r->status, sizeof r->status, "run time budget %.0f s spent (%.0f s elapsed)", w->time_budget_run, spent);
        return false;
    }
    o->bytes_bound = point_work(c, p, r, cfg, o->sampled, &o->work_compute, &o->work_fill);
    double est = 0;
    if (estimate(c, p, r, o, &est)) {
        r->estimated_seconds = est;
        double elapsed = cb_now_seconds() - c->t_start;
        bool over_point = c->time_budget_point > 0 && est > c->time_budget_point;
        bool over_run = w->time_budget_run > 0 && elapsed + est > w->time_budget_run;
        if (over_point || over_run) {
            r->label = CB_LABEL_REFUSED;
            r->refused_seconds = est;
            snprintf(r->status, sizeof r->status, "estimated %.1f s > %s time budget %.1f s", est,
                     over_point ? "point" : "run", over_point ? c->time_budget_point : w->time_budget_run - elapsed);
            return false;
        }
    }
    return true;
}

void cb_decide_learn(cb_decider *c, const cb_point_def *p, const cb_point_result *r, const cb_measure_order *o) {
    int li = o->slot;
    if (li < 0) return;
    /* the whole point, fill included */
    c->last[li].sec = r->seconds_total; c->last[li].ctx = p->ctx; c->last[li].sampled = o->sampled;
    c->last[li].threads = p->threads; c->last[li].fill = r->fill;
    c->last[li].compute_work = o->work_compute; c->last[li].fill_work = o->work_fill;
    if (o->sampled) { /* sample_prefill times fills and chunks together */
        c->last[li].compute_s = r->seconds_total; c->last[li].fill_s = 0; c->last[li].other_s = 0;
    } else {
        c->last[li].compute_s = r->timed_seconds; c->last[li].fill_s = r->fill_seconds;
        c->last[li].other_s = CB_MAX(0.0, r->seconds_total - r->timed_seconds - r->fill_seconds);
        if (r->timed_seconds > 0 && p->threads > 0)
            c->best_rate[o->bytes_bound] = CB_MAX(c->best_rate[o->bytes_bound], o->work_compute / r->timed_seconds / p->threads);
    }
}
