/* Statistics for repeated measurements. The bootstrap uses a fixed-seed RNG so the same samples
 * always give the same CI (a database re-derived from its samples table matches). */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/common.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cb_quantile_sorted(const double *s, int n, double q) {
    if (n <= 0) return NAN;
    if (n == 1) return s[0];
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1) return s[n - 1];
    return s[lo] + (h - lo) * (s[lo + 1] - s[lo]);
}

void cb_stats_compute(const double *x, int n, uint64_t seed, cb_stats *o) {
    memset(o, 0, sizeof *o);
    o->n = n;
    if (n <= 0) { o->median = o->q1 = o->q3 = o->ci_lo = o->ci_hi = o->mean = NAN; return; }
    double *s = malloc(sizeof(double) * (size_t)n);
    double *r = malloc(sizeof(double) * (size_t)n);
    double *meds = malloc(sizeof(double) * CB_STATS_RESAMPLES);
    if (!s || !r || !meds) { free(s); free(r); free(meds); o->median = NAN; return; }
    memcpy(s, x, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    o->median = cb_quantile_sorted(s, n, 0.5);
    o->q1 = cb_quantile_sorted(s, n, 0.25);
    o->q3 = cb_quantile_sorted(s, n, 0.75);
    o->iqr = o->q3 - o->q1;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += s[i];
    o->mean = sum / n;
    if (n >= 2) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (s[i] - o->mean) * (s[i] - o->mean);
        o->stddev = sqrt(ss / (n - 1));
        o->cv = o->mean != 0 ? o->stddev / fabs(o->mean) : 0;
    }
    o->noisy = o->cv > CB_STATS_NOISY_CV;
    cb_rng rng = { seed ^ 0x5bd1e995u };
    for (int b = 0; b < CB_STATS_RESAMPLES; b++) {
        for (int i = 0; i < n; i++) r[i] = s[cb_rng_next(&rng) % (uint64_t)n];
        qsort(r, (size_t)n, sizeof(double), cmp_double);
        meds[b] = cb_quantile_sorted(r, n, 0.5);
    }
    qsort(meds, CB_STATS_RESAMPLES, sizeof(double), cmp_double);
    o->ci_lo = cb_quantile_sorted(meds, CB_STATS_RESAMPLES, 0.025);
    o->ci_hi = cb_quantile_sorted(meds, CB_STATS_RESAMPLES, 0.975);
    free(s); free(r); free(meds);
}
