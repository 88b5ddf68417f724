/* Sweep step 2, decide: whether a point is failed (could not be planned), analytic (memory phase),
 * refused (its memory plan over the budget, or its time estimate over a time budget) or to be measured
 * or sampled, and how (engine options, batch). The time estimates come from the earlier points of the
 * run, which is this step's state (docs/methodology.md). */
#ifndef CB_SWEEP_DECIDE_H
#define CB_SWEEP_DECIDE_H

#include "sweep_plan.h"

/* What the measure step is asked to do for one point. */
typedef struct {
    bool sampled;        /* prefill past max_measured_prefill: timed chunks at k depths, integrated */
    cb_engine_opts eo;   /* the engine options the point is created with */
    int slot;            /* its series in the decider's memory (-1: none left) */
    double work_compute, work_fill; /* the point's work (FLOPs or bytes: see bytes_bound) */
    bool bytes_bound;    /* compute work counted in bytes (decode, throughput) */
} cb_measure_order;

typedef struct {
    const cb_workload *w;
    const cb_sweep_plan *plan;
    int64_t mem_budget;
    double time_budget_point;
    double t_start;
    /* last timing per (engine, model, phase) for the time estimate */
    struct {
        const cb_engine_ops *ops; int model; cb_phase phase; int64_t ctx; double sec; bool sampled;
        int threads; cb_fill fill; double compute_s, compute_work, fill_s, fill_work, other_s;
    } last[256];
    int n_last;
    double best_rate[2]; /* highest FLOP/s [0] and byte/s [1] per thread seen in this run: first-point estimates */
} cb_decider;

void cb_decider_init(cb_decider *d, const cb_workload *w, const cb_sweep_plan *plan, int64_t mem_budget,
                     double time_budget_point, double t_start);
/* Label r (failed / analytic / refused, with its status and plan) and return false, or fill the order
 * and return true: the point is to be measured. */
bool cb_decide(cb_decider *d, const cb_point_def *p, cb_point_result *r, cb_measure_order *order);
/* After a measured or sampled point: remember what it took, for the next estimates. */
void cb_decide_learn(cb_decider *d, const cb_point_def *p, const cb_point_result *r, const cb_measure_order *order);

#endif
