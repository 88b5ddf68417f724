/* Summary statistics of repeated timings: median, IQR, 95% bootstrap CI of the median, CV. */
#ifndef CB_STATS_H
#define CB_STATS_H

#include <stdbool.h>
#include <stdint.h>

#define CB_STATS_RESAMPLES 2000
#define CB_STATS_NOISY_CV 0.05

typedef struct {
    int n;
    double median, q1, q3, iqr;
    double ci_lo, ci_hi; /* 95% percentile bootstrap CI of the median (deterministic seed) */
    double mean, stddev, cv; /* cv = stddev / mean (sample stddev); 0 when n < 2 */
    bool noisy;              /* cv > CB_STATS_NOISY_CV */
} cb_stats;

/* Quantile of sorted data by linear interpolation (type 7, as R/numpy default). */
double cb_quantile_sorted(const double *sorted, int n, double q);
/* Summarise x[0..n) (n >= 1); x is not modified. seed makes the bootstrap reproducible. */
void cb_stats_compute(const double *x, int n, uint64_t seed, cb_stats *out);

#endif
