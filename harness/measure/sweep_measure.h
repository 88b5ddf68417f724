/* Sweep step 3, measure: open the point's model (kept open for the next point of the same model),
 * create the engine, fill to depth, time the repetitions (or sample a long prefill and validate the
 * method once per engine/model), read the counters, memory and page faults, destroy the engine. */
#ifndef CB_SWEEP_MEASURE_H
#define CB_SWEEP_MEASURE_H

#include "papi_counters.h"
#include "roofs.h"
#include "sweep_decide.h"

typedef struct {
    const cb_workload *w;
    const cb_model_source *src;
    int64_t mem_budget;          /* the bandwidth probe must fit beside the point's plan */
    cb_counter_set *cs;          /* NULL: no counters this run */
    int n_events;
    /* the model currently open */
    int open_model; cb_model model; bool model_ok; char model_err[512];
    /* sampled-prefill validation per (engine, model) */
    struct { const cb_engine_ops *ops; int model; int64_t ctx; double measured, rel_err; bool done; } val[64];
    int n_val;
} cb_measurer;

/* The machine's roofs, measured once per run (harness/measure/roofs.c). */
typedef struct {
    cb_roofs roofs;
    bool have;
    char why[160]; /* why not, when not */
} cb_sweep_roofs;

void cb_measurer_init(cb_measurer *m, const cb_workload *w, const cb_model_source *src, int64_t mem_budget,
                      cb_counter_set *cs, int n_events);
void cb_measurer_close(cb_measurer *m);
/* Measure (or sample) p as ordered; r ends labelled measured, sampled or failed. */
void cb_measure_point(cb_measurer *m, const cb_point_def *p, const cb_measure_order *order, cb_point_result *r);
/* A memory point with `memory_check: allocate`: create the engine over the preset's shapes and store what
 * it allocates beside the plan (or say in the status why not). */
void cb_measure_memory_check(cb_measurer *m, const cb_point_def *p, const cb_measure_order *order, cb_point_result *r);
/* Measure the roofs at `threads` (and 1) for `seconds` (0: 1.5 s; < 0: not measured); not measured either
 * when their arrays (CB_ROOFS_TRIAD_BYTES) exceed the memory budget (out->why says so). */
void cb_sweep_roofs_measure(int threads, double seconds, int64_t mem_budget, cb_sweep_roofs *out);

#endif
