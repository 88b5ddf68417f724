/* The per-point numbers derived when a point is stored (the stored columns tokens_per_s, timed_seconds,
 * gflops_per_s, gbytes_per_s, arith_intensity, pct_peak_*). Numbers derived across points (speed-ups,
 * ratios, % of the bandwidth next to a point) are SQL views: results/views.c. docs/schema.md says which
 * owns which. */
#ifndef CB_DERIVE_H
#define CB_DERIVE_H

#include "point_record.h"

/* Tokens per second of a point whose median (in the point's unit) is `median`: prefill ctx / median,
 * prefill_chunk chunk / median, decode 1 / median, throughput batch / median. */
double cb_tokens_per_s(cb_phase phase, int64_t ctx, int prefill_chunk, int batch, double median);

/* Rates from the SDE counters over the timed repetitions (samples in seconds per token for decode and per
 * step for throughput: x decode_tokens gives the counted seconds). Peaks <= 0: no % of peak. */
void cb_point_rates_compute(const cb_point_result *r, cb_phase phase, int decode_tokens, double peak_gflops,
                            double peak_gbps, cb_point_rates *out);

#endif
