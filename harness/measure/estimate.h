/* Relative cost of sweep points, for the time estimates that decide whether a point is refused.
 * Only ratios between points of one (engine, model, phase) series are used, so FLOPs counted from the
 * config are enough: matmuls per token, plus attention per token per position of depth. */
#ifndef CTXBENCH_ESTIMATE_H
#define CTXBENCH_ESTIMATE_H

#include <stdint.h>

#include "../../engines/model/config.h"

/* FLOPs to append `tokens` tokens at depth `depth` (LM head once per call when `logits_rows` = 1, per
 * token when it equals tokens). */
double cb_est_flops(const cb_config *c, int64_t tokens, int64_t depth, int64_t logits_rows);

/* Estimated seconds of a point from the previous point of its series: the compute part scales with
 * the FLOP ratio, the depth-fill part with the fill-work ratio, both with the thread ratio (assumed
 * linear: optimistic, so a point is refused only when even perfect scaling would not save it); the
 * rest (engine create) is carried over as is. */
double cb_est_seconds(double prev_compute_s, double prev_compute_work, double prev_fill_s, double prev_fill_work,
                      double prev_other_s, int prev_threads, double compute_work, double fill_work, int threads);

#endif
