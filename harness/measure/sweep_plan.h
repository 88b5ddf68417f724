/* Sweep step 1, plan: the workload's points in their fixed order (models x engines x phases x contexts
 * x threads x batches), each a cb_point_def, with the models' configs. Nothing runs here. */
#ifndef CB_SWEEP_PLAN_H
#define CB_SWEEP_PLAN_H

#include <stdio.h>

#include "../results/point_record.h"
#include "sweep.h"

typedef struct {
    cb_point_def *pts;
    int np;
    cb_config *cfgs;        /* per workload model, as the plan and the memory check see it */
    bool *cfg_ok;
    char (*cfg_err)[512];
} cb_sweep_plan;

/* Enumerate the points; engines that do not run a model are skipped with a note on `notes` (NULL: none).
 * Returns 0, or -1 with err set (unknown engine, too many points, out of memory). */
int cb_sweep_plan_build(const cb_workload *w, const cb_sweep_opts *o, const cb_model_source *src, FILE *notes,
                        cb_sweep_plan *plan, cb_err *err);
void cb_sweep_plan_free(cb_sweep_plan *plan);

/* points.point_key: engine|model|phase|context|batch|threads|mode|wdtype|kvdtype|fill as asked. */
void cb_sweep_point_key(const cb_workload *w, const cb_point_def *p, char *out, size_t n);
/* points.arch of the point's model ("unknown" when its config did not load). */
const char *cb_sweep_point_arch(const cb_sweep_plan *plan, const cb_point_def *p);

#endif
