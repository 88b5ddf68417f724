/* The vocabulary of a stored point, owned by the results layer: phases, fills, labels (their stored
 * spellings) and counter values. The measurement side (workload parsing, the PAPI counters) builds on
 * these, so the arrow runs harness/measure -> harness/results only (docs/architecture.md). */
#ifndef CB_POINT_TYPES_H
#define CB_POINT_TYPES_H

#include <stdbool.h>

typedef enum { CB_PH_PREFILL = 0, CB_PH_DECODE, CB_PH_PREFILL_CHUNK, CB_PH_THROUGHPUT, CB_PH_MEMORY, CB_PH_COUNT } cb_phase;
typedef enum { CB_FILL_AUTO = 0, CB_FILL_REAL, CB_FILL_SYNTHETIC, CB_FILL_COUNT } cb_fill;
/* Every point ends with exactly one label (docs/methodology.md). */
typedef enum { CB_LABEL_MEASURED = 0, CB_LABEL_SAMPLED, CB_LABEL_ANALYTIC, CB_LABEL_REFUSED, CB_LABEL_FAILED, CB_LABEL_COUNT } cb_label;

/* As stored in points.phase / points.fill / points.label (and written in workloads); "?" / "failed" out
 * of range. */
const char *cb_phase_name(cb_phase p);
const char *cb_fill_name(cb_fill f);
const char *cb_label_name(cb_label l);

/* One counter of a point as read (a `counters` row). */
typedef struct {
    char name[64];
    long long value;
    char status[128]; /* "ok", or why unavailable ("perf_event component disabled: no PMU", "not a preset on this CPU") */
    bool ok;
} cb_counter_value;

#endif
