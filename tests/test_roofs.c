/* The roof loops: the AVX-512 FMA loop and its portable twin compute the same chains (the twin rounds the
 * multiply and the add separately, and the 192 lanes are summed in another order: each may cost about an
 * ulp, so agreement to (iters + 192) · 2 ε); a short measurement gives finite positive roofs for 1 and N
 * threads with the loop of the kernel path in use. Speed itself is not asserted here. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../harness/measure/roofs.h"

Test(roofs, fma_twins_agree) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("no AVX-512");
    for (long iters = 1; iters <= 1000; iters *= 10) {
        float s_ref, s_avx;
        double f_ref = cb_roofs_fma_ref(iters, &s_ref), f_avx = cb_roofs_fma_avx512(iters, &s_avx);
        cr_assert_eq(f_ref, f_avx, "flop counts differ at %ld iterations", iters);
        cr_assert_eq(f_ref, (double)iters * 384);
        cr_assert(fabs(s_ref - s_avx) <= 2.0 * (double)(iters + 192) * FLT_EPSILON * fabs(s_ref), "iters %ld: ref %.9g avx512 %.9g", iters, s_ref, s_avx);
    }
}

/* The AVX2 loop runs the same chains on 8 lanes: half the flops, half the twin's lane sum. */
Test(roofs, fma_avx2_agrees_with_the_twin) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("no AVX2");
    for (long iters = 1; iters <= 1000; iters *= 10) {
        float s_ref, s_avx;
        double f_ref = cb_roofs_fma_ref(iters, &s_ref), f_avx = cb_roofs_fma_avx2(iters, &s_avx);
        cr_assert_eq(f_avx, (double)iters * 192);
        cr_assert_eq(f_ref, 2 * f_avx);
        cr_assert(fabs(s_ref - 2 * s_avx) <= 2.0 * (double)(iters + 192) * FLT_EPSILON * fabs(s_ref),
                  "iters %ld: ref %.9g avx2 x 2 %.9g", iters, s_ref, 2 * s_avx);
    }
}

Test(roofs, measure_short) {
    cb_roofs r;
    cb_err err = { "" };
    cr_assert_eq(cb_roofs_measure(2, 0.05, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.threads, 2);
    double v[] = { r.fma_gflops_1t, r.fma_gflops, r.triad_gbps_1t, r.triad_gbps };
    for (int i = 0; i < 4; i++) cr_assert(isfinite(v[i]) && v[i] > 0, "roof %d = %g", i, v[i]);
    cr_assert_str_eq(r.loop, cb_kernels_path() >= CB_PATH_AVX512 ? "avx512"
                             : cb_kernels_path() == CB_PATH_AVX2 ? "avx2" : "portable");
    cr_assert(r.seconds > 0 && r.seconds < 10, "took %g s", r.seconds);
}

Test(roofs, triad_probe_short) {
    cb_err err = { "" };
    double g = cb_roofs_triad_probe(2, 0.02, &err);
    cr_assert(isfinite(g) && g > 0, "probe %g: %s", g, err.msg);
}
