/* The sweep runner: a workload -> points (engine x model x phase x context x threads x batch),
 * each planned, refused, or measured, and committed to the store in its own transaction. */
#ifndef CB_SWEEP_H
#define CB_SWEEP_H

#include <sqlite3.h>
#include <stdbool.h>

#include "../../engines/engine.h"
#include "workload.h"

/* Where configs and models come from: cb_model_config / cb_model_open by default; tests inject
 * their own (a mock model) through this. */
typedef struct {
    int (*config)(const char *model, cb_config *cfg, cb_err *err);
    int (*open)(const char *model, uint64_t seed, cb_dtype dtype, cb_model *m, cb_err *err);
    void (*close)(cb_model *m);
} cb_model_source;

typedef struct {
    const char *db_path;
    const char *workload_text;   /* stored with the run; its hash keys --resume */
    bool resume, quiet;
    int shard_i, shard_n;        /* run points with index % shard_n == shard_i */
    int threads_override;        /* > 0: replaces the workload's thread list */
    double memory_budget_fraction; int64_t memory_budget_bytes; /* override when either is > 0 */
    double time_budget_point;    /* override when > 0 */
    const cb_model_source *source; /* NULL: the default (presets and checkpoint dirs) */
    const char *commit_override; /* NULL: the build's commit (tests use it to simulate another build) */
    double roofs_seconds;        /* time for measuring the machine's roofs (0: 1.5 s; < 0: not measured) */
} cb_sweep_opts;

typedef struct {
    int total, run, skipped_resume, measured, sampled, analytic, refused, failed;
    int64_t run_id;
} cb_sweep_result;

/* Most points one sweep may hold (a larger workload is refused before anything runs). */
#define CB_SWEEP_MAX_POINTS 1000000

int cb_sweep_run(const cb_workload *w, const cb_sweep_opts *o, cb_sweep_result *res, cb_err *err);

/* Sampled prefill: per-token cost t(d) at depths d[0..k) fitted by least squares to a + b*d and
 * integrated over [0, n): returns the estimated seconds; *fit_err = max |residual| / t. */
double cb_sampled_prefill_estimate(const double *depth, const double *sec_per_token, int k, int64_t n, double *fit_err);

#endif
