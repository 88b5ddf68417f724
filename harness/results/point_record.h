/* One point of a sweep as the results layer stores it: what was asked (cb_point_def, from the plan),
 * what happened (cb_point_result, filled by the decide and measure steps) and the rates derived from
 * it (cb_point_rates, results/derive.c). harness/results/columns.h maps this record onto the columns
 * of `points`; docs/architecture.md shows where each part is filled. */
#ifndef CB_POINT_RECORD_H
#define CB_POINT_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "../../engines/engine.h"
#include "../stats/stats.h"
#include "point_types.h"

/* A point of the plan: engine x model x phase x context x threads x batch. */
typedef struct {
    const cb_engine_ops *ops;
    int model;          /* index into the workload's models */
    cb_phase phase;
    int64_t ctx;
    int threads, batch; /* batch 0: largest that fits (throughput) */
    const char *error;  /* set when the point cannot even be planned (no engine, bad model) */
} cb_point_def;

typedef struct {
    cb_label label;
    char status[512];
    const char *unit;
    cb_fill fill;
    int batch;
    double *samples; int n_samples;
    cb_stats st; bool have_stats;
    double tokens_per_s;
    int samples_k; double fit_error, validation; bool have_fit, have_validation;
    int64_t refused_bytes; double refused_seconds;
    cb_memory_report plan, engine; bool have_plan, have_engine;
    cb_weight_split wplan, wengine;     /* weights by storage: 8-bit codes, scales, kept precision */
    int64_t peak_rss, minor, major;
    cb_counter_value *counters; int n_counters;
    double seconds_total;
    double fill_seconds, timed_seconds; /* inside the timed part: depth fills; timed calls incl. warm-ups */
    double estimated_seconds;           /* the estimate the budget check used (0: none) */
    double triad_before, triad_after;   /* bandwidth probes next to the timed repetitions (0: none) */
    int64_t rss_peak_pre_probe;         /* VmHWM read before each probe (the probe's arrays are not the engine's) */
    int64_t probe_minor, probe_major;   /* page faults of the probes, taken out of the point's */
} cb_point_result;

void cb_point_result_free(cb_point_result *r);

/* Rates from the SDE counters over the timed repetitions (NAN: not available). */
typedef struct {
    double counted_seconds;  /* the seconds the counters cover */
    double gflops_per_s, gbytes_per_s, arith_intensity, pct_peak_flops, pct_peak_bw;
} cb_point_rates;

/* Everything a `points` row is filled from (columns.h). Texts are the stored spellings. */
typedef struct {
    int64_t run_id;
    const char *key;                 /* point_key: the --resume identity */
    const char *engine, *model, *arch, *mode, *weight_dtype, *kv_dtype;
    const char *source;              /* points.source: NULL = "ctxbench"; "peer" for imports (peer_import.c) */
    const cb_point_def *def;
    const cb_point_result *r;
    cb_point_rates rates;
    int64_t params_total, params_active; /* from the model's config; 0 when it did not load */
    const char *resume_hash, *resume_commit; /* non-NULL (--resume): this key's earlier failed / time-refused rows go */
} cb_point_record;

#endif
