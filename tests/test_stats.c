#include <criterion/criterion.h>
#include <math.h>

#include "../harness/stats/stats.h"

Test(stats, median_iqr_exact_on_known_data) {
    const double x[] = { 5, 1, 4, 2, 3 }; /* sorted 1..5 */
    cb_stats s;
    cb_stats_compute(x, 5, 1, &s);
    cr_assert_eq(s.n, 5);
    cr_assert_float_eq(s.median, 3.0, 1e-12);
    cr_assert_float_eq(s.q1, 2.0, 1e-12);
    cr_assert_float_eq(s.q3, 4.0, 1e-12);
    cr_assert_float_eq(s.iqr, 2.0, 1e-12);
    cr_assert_float_eq(s.mean, 3.0, 1e-12);
    cr_assert_float_eq(s.cv, sqrt(2.5) / 3.0, 1e-12); /* sample stddev */
    cr_assert(s.noisy);
    const double even[] = { 4, 1, 3, 2 };
    cb_stats_compute(even, 4, 1, &s);
    cr_assert_float_eq(s.median, 2.5, 1e-12);
    cr_assert_float_eq(s.q1, 1.75, 1e-12);
}

Test(stats, bootstrap_ci_contains_median_and_is_deterministic) {
    double x[21];
    for (int i = 0; i < 21; i++) x[i] = 1.0 + 0.001 * ((i * 7) % 21);
    cb_stats a, b;
    cb_stats_compute(x, 21, 42, &a);
    cb_stats_compute(x, 21, 42, &b);
    cr_assert(a.ci_lo <= a.median && a.median <= a.ci_hi);
    cr_assert(a.ci_lo < a.ci_hi);
    cr_assert_eq(a.ci_lo, b.ci_lo);
    cr_assert_eq(a.ci_hi, b.ci_hi);
    cr_assert(!a.noisy, "cv %g", a.cv);
}

Test(stats, single_sample_and_constant) {
    const double one[] = { 2.0 };
    cb_stats s;
    cb_stats_compute(one, 1, 1, &s);
    cr_assert_eq(s.median, 2.0);
    cr_assert_eq(s.ci_lo, 2.0);
    cr_assert_eq(s.ci_hi, 2.0);
    cr_assert_eq(s.cv, 0.0);
    cr_assert(!s.noisy);
}
