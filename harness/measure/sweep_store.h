/* Sweep step 4, store: the run's row and each point's rows (through the results layer,
 * harness/results/), with the % of peak against the workload's peaks or the run's roofs. */
#ifndef CB_SWEEP_STORE_H
#define CB_SWEEP_STORE_H

#include <sqlite3.h>

#include "machine.h"
#include "sweep_measure.h"

typedef struct {
    sqlite3 *db;
    const cb_workload *w;
    const cb_sweep_plan *plan;
    const cb_sweep_roofs *roofs;
    int64_t run_id;
    const char *resume_hash, *resume_commit; /* --resume: a point tried again replaces its earlier rows */
} cb_sweep_store;

/* Insert the run (machine, budgets, peaks, roofs); sets s->run_id. */
int cb_sweep_store_run(cb_sweep_store *s, const cb_sweep_opts *o, const cb_machine *m, const char *hash,
                       int64_t mem_budget, double time_budget_point, cb_err *err);
int cb_sweep_store_point(cb_sweep_store *s, const cb_point_def *p, const char *key, const cb_point_result *r, cb_err *err);
/* Stamp runs.finished_utc. */
void cb_sweep_store_finish(cb_sweep_store *s);

#endif
