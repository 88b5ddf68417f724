/* The sweep's progress on stderr (nothing when quiet): the roofs, one line per point with its label,
 * value, elapsed time and ETA, and why a point was refused or failed. */
#ifndef CB_SWEEP_PROGRESS_H
#define CB_SWEEP_PROGRESS_H

#include "sweep_measure.h"

typedef struct {
    bool quiet;
    int total, done;
    double t_start;
} cb_progress;

void cb_progress_roofs(const cb_progress *pr, const cb_sweep_roofs *roofs);
void cb_progress_point(cb_progress *pr, const cb_workload *w, const cb_point_def *p, const cb_point_result *r);

#endif
