/* Software-defined counters the engines bump analytically (from shapes, per call, outside hot loops),
 * and two wall-clock timers of prefill kernels. The harness exports them through PAPI SDE (libsde) and
 * reads them back through PAPI like any event (docs/counters.md). */
#ifndef CB_COUNTERS_H
#define CB_COUNTERS_H

#include <time.h>

typedef struct {
    long long flops;            /* multiply-adds count 2 */
    long long weight_bytes;     /* weight bytes streamed from memory */
    long long kv_bytes_read;
    long long kv_bytes_written;
    long long state_bytes;      /* SSM + conv state bytes read + written */
    long long tokens;           /* tokens processed (prefill + decode) */
    long long ssd_ns;           /* wall ns in the chunked SSD of prefill (C·Bᵀ + chunked scan, all heads) */
    long long attention_ns;     /* wall ns in the flash attention of prefill (after QKV, before o_proj) */
} cb_counters;

extern cb_counters cb_ctr;

/* Monotonic ns for the timers: `long long t = cb_ctr_ns(); <parallel region>; cb_ctr.x_ns += cb_ctr_ns() - t;`
 * taken by the calling thread around a whole OpenMP region, so it is wall time, not thread time. */
static inline long long cb_ctr_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
