/* Software-defined counters the engines bump analytically (from shapes, per call, outside hot loops).
 * The harness exports them through PAPI SDE (libsde) and reads them back through PAPI like any event. */
#ifndef CB_COUNTERS_H
#define CB_COUNTERS_H

typedef struct {
    long long flops;            /* multiply-adds count 2 */
    long long weight_bytes;     /* weight bytes streamed from memory */
    long long kv_bytes_read;
    long long kv_bytes_written;
    long long state_bytes;      /* SSM + conv state bytes read + written */
    long long tokens;           /* tokens processed (prefill + decode) */
} cb_counters;

extern cb_counters cb_ctr;

#endif
