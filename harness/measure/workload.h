/* A workload file: a YAML mapping (comments allowed) that names one sweep. See docs/usage.md.
 * Parsed with libyaml; every error names file:line. */
#ifndef CB_WORKLOAD_H
#define CB_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "../../engines/common.h"
#include "../../engines/engine.h"
#include "../results/point_types.h" /* cb_phase, cb_fill */

#define CB_WL_MAX_LIST 64
#define CB_WL_MAX_NAME 256
/* Accepted ranges of the numeric keys and options (docs/usage.md); past them a value is refused by name. */
#define CB_WL_MAX_CONTEXT (1ll << 60)      /* tokens */
#define CB_WL_MAX_THREADS 4096
#define CB_WL_MAX_SECONDS 1e7              /* time budgets (about 116 days) */
#define CB_WL_MAX_BUDGET_BYTES (1ll << 60) /* memory_budget in bytes */
#define CB_WL_MAX_PEAK 1e9                 /* peak_gflops, peak_gbps */

typedef struct {
    char name[CB_WL_MAX_NAME];
    int n_engines;                 /* 0 = auto: the engine for each model's model_type */
    char engines[CB_WL_MAX_LIST][64];
    int n_models;
    char models[CB_WL_MAX_LIST][CB_WL_MAX_NAME];
    int n_contexts;
    int64_t contexts[CB_WL_MAX_LIST];
    int n_phases;
    cb_phase phases[CB_PH_COUNT];
    int n_batches;
    int batches[CB_WL_MAX_LIST];   /* for throughput; 0 = largest batch that fits the memory budget */
    int n_threads;
    int threads[CB_WL_MAX_LIST];   /* 0 = all available */
    int repetitions, warmups;
    int decode_tokens;             /* G */
    int prefill_chunk;             /* c for prefill_chunk@N, and the sampled-prefill chunk */
    int sample_depths;             /* k for sampled prefill */
    int64_t max_measured_prefill;  /* prefill above this context is sampled, not run whole */
    cb_fill fill;
    double time_budget_point, time_budget_run; /* seconds; 0 = none */
    double memory_budget_fraction; /* of MemAvailable when memory_budget_bytes == 0 */
    int64_t memory_budget_bytes;
    cb_mode mode;
    cb_dtype kv_dtype, weight_dtype;
    uint64_t seed;
    int n_events;
    char events[CB_WL_MAX_LIST][96];
    double peak_gflops, peak_gbps;  /* 0 = unknown */
    bool bandwidth_probe;           /* triad probe before and after each decode / throughput point */
    bool memory_check;              /* memory points also create the engine over a shapes-only preset */
} cb_workload;

void cb_workload_defaults(cb_workload *w);
/* Parse from text; origin names the file in errors. */
int cb_workload_parse(const char *text, const char *origin, cb_workload *w, cb_err *err);
/* Read path (a trailing ".yaml" may be omitted) and parse; *text_out (malloc'd) gets the file text. */
int cb_workload_load(const char *path, cb_workload *w, char **text_out, cb_err *err);

/* "4K" -> 4096, "1M", "512", "64k". */
int cb_parse_size(const char *s, int64_t *out);
/* "4K..1M" (powers of two), "4K" or "4K,32K", each in [1, CB_WL_MAX_CONTEXT]; appends to out (max entries). */
int cb_parse_contexts(const char *s, int64_t *out, int *n, int max);
/* "85%" -> fraction in (0, 1], or bytes with K/M/G/T suffix in [1, CB_WL_MAX_BUDGET_BYTES]. */
int cb_parse_memory_budget(const char *s, double *fraction, int64_t *bytes);
/* Seconds: "30", "30s", "5m", "1h", finite, in [0, CB_WL_MAX_SECONDS]. */
int cb_parse_seconds(const char *s, double *out);

#endif
