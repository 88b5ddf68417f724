/* PAPI counters: hardware presets where a PMU exists, and everywhere the software-defined counters the
 * engines export through libsde (engines/counters.h). docs/methodology.md. */
#ifndef CB_PAPI_COUNTERS_H
#define CB_PAPI_COUNTERS_H

#include <stddef.h>

#include "../results/point_types.h" /* cb_counter_value: what a point stores */

/* Initialise PAPI once and register the engines' SDE counters (library "ctxbench", counters
 * flops, weight_bytes, kv_bytes_read, kv_bytes_written, state_bytes, tokens, ssd_ns, attention_ns: see
 * engines/counters.h). */
int cb_papi_init(char *why, size_t why_len);

typedef struct cb_counter_set cb_counter_set;
/* Build an event set from names (PAPI presets like PAPI_TOT_CYC, native names, or "sde:::ctxbench::flops").
 * Events that cannot be added are kept with ok=false and the reason; never fails the run. */
cb_counter_set *cb_counters_open(const char *const *names, int n);
void cb_counters_start(cb_counter_set *s);
/* Stop and read: out has n entries in the order given to open. */
void cb_counters_stop(cb_counter_set *s, cb_counter_value *out);
void cb_counters_close(cb_counter_set *s);
/* Default hardware list (PAPI_TOT_CYC, PAPI_TOT_INS, PAPI_L3_TCM or closest, PAPI_FP_OPS/VEC) + all SDE counters. */
int cb_counters_default_names(const char **names, int max);

#endif
