/* Attention layer and flash kernels: kernel vs naive softmax(QKᵀ)V in double, AVX-512 vs portable twins,
 * the whole layer vs a naive double-precision layer (GQA, partial RoPE, depth), prefill == decode,
 * batched == alone, 1 == 2 threads, llama3 inv_freq, plan == memory, max_context errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "../engines/counters.h"
#include "../engines/kernels/attention.h"
#include "../engines/kernels/kernels_avx2.h"
#include "../engines/kernels/kernels.h"
#include "../engines/kernels/gemm8.h"
#include "../engines/kernels/kv8.h"
#include "../engines/layers/attention_layer.h"

static void fill(float *x, size_t n, uint64_t seed, float scale) {
    cb_rng r = { seed };
    for (size_t i = 0; i < n; i++) x[i] = scale * cb_rng_uniform(&r);
}

static double max_rel_err(const float *a, const double *b, size_t n) {
    double e = 0, mag = 1e-30;
    for (size_t i = 0; i < n; i++) mag = fmax(mag, fabs(b[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e / mag;
}
static double max_diff(const float *a, const float *b, size_t n) {
    double e = 0, mag = 1e-30;
    for (size_t i = 0; i < n; i++) mag = fmax(mag, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - (double)b[i]));
    return e / mag;
}

/* ---------- kernel level ---------- */

/* An 8-bit cache's scales (NULL for other dtypes), set by make_cache, freed by its caller. */
static float *cache_ks, *cache_vs;

/* A cache of `cap` positions for one KV head holding keys kf/vf ([cap][hd] f32) stored in dtype t;
 * kf/vf are replaced by the values actually stored (rounded, or an 8-bit cache's scale · value). */
static void *make_cache(int64_t cap, int hd, cb_dtype t, float *kf, float *vf, void **vout) {
    size_t es = cb_dtype_size(t);
    char *k = calloc((size_t)cap * hd, es), *v = calloc((size_t)cap * hd, es);
    cache_ks = cache_vs = NULL;
    if (cb_kv_is_q8(t)) {
        cache_ks = calloc((size_t)cap, sizeof(float)), cache_vs = calloc((size_t)cap, sizeof(float));
        uint8_t kc[CB_FLASH_MAX_HD], vq[CB_FLASH_MAX_HD];
        for (int64_t p = 0; p < cap; p++) {
            cache_ks[p] = cb_kv8_quantize_row(kf + p * hd, hd, t, kc);
            cache_vs[p] = cb_kv8_quantize_row(vf + p * hd, hd, t, vq);
            for (int d = 0; d < hd; d++) {
                ((uint8_t *)k)[cb_kv_k_offset(p, d, hd, cap, t)] = kc[d];
                ((uint8_t *)v)[cb_kv_v_offset(p, d, hd, cap, t)] = vq[d];
                kf[p * hd + d] = cache_ks[p] * cb_kv8_code_value(kc[d], t);
                vf[p * hd + d] = cache_vs[p] * cb_kv8_code_value(vq[d], t);
            }
        }
        *vout = v;
        return k;
    }
    for (int64_t p = 0; p < cap; p++)
        for (int d = 0; d < hd; d++) {
            int64_t ko = cb_kv_k_offset(p, d, hd, cap, t), vo = p * hd + d;
            float *ks = &kf[p * hd + d], *vs = &vf[p * hd + d];
            if (t == CB_F32) ((float *)k)[ko] = *ks, ((float *)v)[vo] = *vs;
            else if (t == CB_BF16) {
                ((uint16_t *)k)[ko] = cb_f32_to_bf16(*ks), *ks = cb_bf16_to_f32(((uint16_t *)k)[ko]);
                ((uint16_t *)v)[vo] = cb_f32_to_bf16(*vs), *vs = cb_bf16_to_f32(((uint16_t *)v)[vo]);
            } else {
                ((uint16_t *)k)[ko] = cb_f32_to_f16(*ks), *ks = cb_f16_to_f32(((uint16_t *)k)[ko]);
                ((uint16_t *)v)[vo] = cb_f32_to_f16(*vs), *vs = cb_f16_to_f32(((uint16_t *)v)[vo]);
            }
        }
    *vout = v;
    return k;
}

/* cb_attn_flash_fast instead of cb_attn_flash in kernel_case (fast mode's attention) */
static bool case_fast;

/* R rows: G heads × nq tokens at positions depth..depth+nq-1, keys [0, depth+nq); run the flash kernel
 * (current path) and the naive double softmax; return the max relative error. */
static float q_scale = 0.3f; /* the queries' range: larger makes peaked score rows */
static double kernel_case(int G, int nq, int64_t depth, int hd, cb_dtype t, int64_t cap_extra) {
    int R = G * nq;
    int64_t nk = depth + nq, cap = nk + cap_extra;
    float *kf = malloc(sizeof(float) * cap * hd), *vf = malloc(sizeof(float) * cap * hd);
    float *Q = malloc(sizeof(float) * R * hd), *O = calloc((size_t)R * hd, sizeof(float));
    double *ref = calloc((size_t)R * hd, sizeof(double));
    fill(kf, (size_t)cap * hd, 11 + hd, 1.7f);
    fill(vf, (size_t)cap * hd, 12 + hd, 1.0f);
    fill(Q, (size_t)R * hd, 13 + nq, q_scale);
    void *vc, *kc = make_cache(cap, hd, t, kf, vf, &vc);
    float m[CB_FLASH_MAX_ROWS], l[CB_FLASH_MAX_ROWS];
    int64_t qp[CB_FLASH_MAX_ROWS];
    for (int r = 0; r < R; r++) m[r] = -INFINITY, l[r] = 0, qp[r] = depth + r % nq;
    cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = t, .hd = hd, .cap = cap };
    (case_fast ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 0, nk, m, l, O);
    for (int r = 0; r < R; r++) {
        for (int d = 0; d < hd; d++) O[r * hd + d] /= l[r];
        int64_t n = qp[r] + 1;
        double *s = malloc(sizeof(double) * n), mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; j++) {
            double a = 0;
            for (int d = 0; d < hd; d++) a += (double)Q[r * hd + d] * kf[j * hd + d];
            s[j] = a, mx = fmax(mx, a);
        }
        for (int64_t j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
        for (int64_t j = 0; j < n; j++)
            for (int d = 0; d < hd; d++) ref[r * hd + d] += s[j] / sum * vf[j * hd + d];
        free(s);
    }
    double e = max_rel_err(O, ref, (size_t)R * hd);
    free(kf), free(vf), free(Q), free(O), free(ref), free(kc), free(vc), free(cache_ks), free(cache_vs);
    return e;
}

static void kernel_sweep(cb_kpath path) {
    cr_assert_eq(cb_kernels_set_path(path), 0);
    const int lens[] = { 1, 7, 64, 65, 200, 511 };
    const int hds[] = { 64, 128 };
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 6; i++)
            for (int depth = 0; depth <= 77; depth += 77) {
                int G = lens[i] >= 64 ? 1 : 4, nq = CB_MIN(lens[i], CB_FLASH_MAX_ROWS / G);
                /* keys = depth + len; query rows are the last nq tokens */
                double e = kernel_case(G, nq, depth + lens[i] - nq, hds[h], CB_F32, 3);
                cr_assert_lt(e, 2e-6, "path %s hd %d len %d depth %d: rel err %g", cb_kpath_name(path), hds[h],
                             lens[i], depth, e);
            }
    cb_kernels_set_path(cb_kernels_best_path());
}

Test(attention_kernel, portable_vs_naive_double) { kernel_sweep(CB_PATH_PORTABLE); }

Test(attention_kernel, avx512_vs_naive_double) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip("no AVX-512");
    kernel_sweep(CB_PATH_AVX512);
}

Test(attention_kernel, low_precision_kv_and_narrow_last_tile) {
    /* cap not a multiple of 16 (narrow last tile) and keys up to the capacity; bf16 / f16 storage: the
     * naive reference sees the rounded values, so the kernels must still agree to fp32 accuracy. */
    const cb_dtype ts[] = { CB_BF16, CB_F16, CB_F32, CB_F8_E4M3, CB_I8 };
    for (int p = CB_PATH_PORTABLE; p <= (int)CB_MIN(cb_kernels_best_path(), CB_PATH_AVX512); p++) {
        cb_kernels_set_path((cb_kpath)p);
        for (int i = 0; i < 5; i++) {
            double e = kernel_case(8, 8, 93, 64, ts[i], 0);
            cr_assert_lt(e, 2e-6, "path %d dtype %s: %g", p, cb_dtype_name(ts[i]), e);
            e = kernel_case(2, 5, 0, 16, ts[i], 0);
            cr_assert_lt(e, 2e-6, "path %d dtype %s hd 16: %g", p, cb_dtype_name(ts[i]), e);
            /* decode-like: few rows, capacity well past the keys (AVX-512 reads K/V straight from the cache) */
            e = kernel_case(8, 1, 300, 128, ts[i], 100);
            cr_assert_lt(e, 2e-6, "path %d dtype %s decode 8 rows: %g", p, cb_dtype_name(ts[i]), e);
            e = kernel_case(1, 3, 250, 64, ts[i], 77);
            cr_assert_lt(e, 2e-6, "path %d dtype %s decode 3 rows: %g", p, cb_dtype_name(ts[i]), e);
            e = kernel_case(1, 1, 128, 16, ts[i], 64);
            cr_assert_lt(e, 2e-6, "path %d dtype %s decode hd 16: %g", p, cb_dtype_name(ts[i]), e);
        }
    }
    cb_kernels_set_path(cb_kernels_best_path());
}

/* The AMX kernel (prefill-sized blocks over a bf16 cache, hd % 32 == 0, through the dispatcher): against the
 * naive double softmax on awkward shapes — rows not multiples of 16 (16..64), head sizes 32..256, depths off
 * the 64-key blocks, a narrow last tile (capacity = keys), a capacity past the keys. */
Test(attention_kernel, amx_prefill_rows_vs_naive_double) {
    if (cb_kernels_best_path() < CB_PATH_AMX) cr_skip_test("no AMX here: %s", cb_cpu()->amx_why);
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AMX), 0);
    const int hds[] = { 32, 64, 96, 128, 256 };
    const int cases[][4] = { /* G, nq, depth, cap_extra */
                             { 1, 16, 0, 0 },   { 4, 5, 77, 0 },  { 2, 17, 130, 3 }, { 8, 8, 93, 0 },
                             { 1, 64, 511, 1 }, { 4, 16, 1000, 0 }, { 3, 11, 200, 50 } };
    for (int h = 0; h < 5; h++)
        for (int c = 0; c < 7; c++) {
            double e = kernel_case(cases[c][0], cases[c][1], cases[c][2], hds[h], CB_BF16, cases[c][3]);
            cr_assert_lt(e, 3e-6, "amx hd %d G %d nq %d depth %d: rel err %g", hds[h], cases[c][0], cases[c][1],
                         cases[c][2], e);
        }
    cb_kernels_set_path(cb_kernels_best_path());
}

/* Peaked score rows (queries ×100 the usual range: scores spread over hundreds, so most exp(s − max) underflow to
 * subnormals or zero) on every path and cache dtype the CPU runs: the dispatcher flushes subnormals for the
 * call (kernels.h) and must still match the naive double softmax, and hand the caller's MXCSR back unchanged.
 * The bar is fp32's conditioning of scores |s| ~ 10²–10³, not the flush: it is the same with the flush off. */
Test(attention_kernel, peaked_scores_every_path) {
    const cb_dtype dts[] = { CB_F32, CB_BF16, CB_I8, CB_F8_E4M3 };
    q_scale = 30.0f;
    for (int p = CB_PATH_PORTABLE; p <= (int)cb_kernels_best_path(); p++) {
        cr_assert_eq(cb_kernels_set_path((cb_kpath)p), 0);
        for (int t = 0; t < 4; t++)
            for (int hd = 64; hd <= 128; hd += 64) {
                const unsigned before = _mm_getcsr();
                const int G = p == CB_PATH_AMX ? 2 : 4, nq = p == CB_PATH_AMX ? 32 : 8;
                double e = kernel_case(G, nq, 1000, hd, dts[t], 0);
                cr_assert_eq(_mm_getcsr() & ~0x3fu, before & ~0x3fu, "path %s left MXCSR %#x (was %#x)",
                             cb_kpath_name((cb_kpath)p), _mm_getcsr(), before);
                cr_assert_lt(e, 2e-4, "path %s %s hd %d: rel err %g", cb_kpath_name((cb_kpath)p),
                             cb_dtype_name(dts[t]), hd, e);
                cr_log_info("peaked path %s %s hd %d: %.2g", cb_kpath_name((cb_kpath)p), cb_dtype_name(dts[t]), hd, e);
            }
    }
    q_scale = 0.3f;
    cb_kernels_set_path(cb_kernels_best_path());
}

/* Fast mode's attention on the tiles (Q and P rounded to bf16) on the same shapes: close to the double
 * softmax at bf16 accuracy, and really rounded (further from it than the exact kernel); on the other paths
 * it is the exact kernel. */
Test(attention_kernel, amx_fast_mode_rows_vs_naive_double) {
    if (cb_kernels_best_path() < CB_PATH_AMX) cr_skip_test("no AMX here: %s", cb_cpu()->amx_why);
    const int hds[] = { 32, 64, 128, 256 };
    const int cases[][4] = { { 1, 16, 0, 0 }, { 4, 5, 77, 0 }, { 2, 17, 130, 3 }, { 1, 64, 511, 1 }, { 4, 16, 1000, 0 },
                             { 3, 11, 200, 50 } };
    double worst = 0, least = 1;
    for (int h = 0; h < 4; h++)
        for (int c = 0; c < 6; c++) {
            cr_assert_eq(cb_kernels_set_path(CB_PATH_AMX), 0);
            case_fast = true;
            const double e = kernel_case(cases[c][0], cases[c][1], cases[c][2], hds[h], CB_BF16, cases[c][3]);
            cb_kernels_set_path(CB_PATH_AVX512);
            const double e_avx = kernel_case(cases[c][0], cases[c][1], cases[c][2], hds[h], CB_BF16, cases[c][3]);
            case_fast = false;
            cr_assert_lt(e, 2e-2, "amx fast hd %d G %d nq %d depth %d: rel err %g", hds[h], cases[c][0], cases[c][1],
                         cases[c][2], e);
            cr_assert_lt(e_avx, 1e-5, "avx512 under cb_attn_flash_fast is exact: rel err %g", e_avx);
            worst = fmax(worst, e), least = fmin(least, e);
        }
    cb_kernels_set_path(cb_kernels_best_path());
    cr_assert_gt(least, 1e-5, "fast mode should round Q and P (least rel err %g)", least);
    cr_log_info("amx fast mode: rel err %.3g .. %.3g", least, worst);
}

/* The AMX kernel and its AVX-512 twin fold the same key range [64, 333) into the same running state (left
 * by [0, 64)): m, l and O agree to fp32 rounding. */
Test(attention_kernel, amx_continues_a_running_state_like_avx512) {
    if (cb_kernels_best_path() < CB_PATH_AMX) cr_skip_test("no AMX here: %s", cb_cpu()->amx_why);
    const int R = 37, hd = 64;
    const int64_t cap = 340, nk = 333;
    float *kf = malloc(sizeof(float) * cap * hd), *vf = malloc(sizeof(float) * cap * hd);
    float *Q = malloc(sizeof(float) * R * hd), *Oa = calloc((size_t)R * hd, sizeof(float)),
          *Ob = calloc((size_t)R * hd, sizeof(float));
    fill(kf, (size_t)cap * hd, 21, 1.3f);
    fill(vf, (size_t)cap * hd, 22, 1.0f);
    fill(Q, (size_t)R * hd, 23, 0.4f);
    void *vc, *kc = make_cache(cap, hd, CB_BF16, kf, vf, &vc);
    cb_kv_view kv = { .k = kc, .v = vc, .dtype = CB_BF16, .hd = hd, .cap = cap };
    float ma[64], la[64], mb[64], lb[64];
    int64_t qp[64];
    for (int r = 0; r < R; r++) ma[r] = -INFINITY, la[r] = 0, qp[r] = 40 + 8 * r;
    cb_attn_flash_avx512(R, Q, qp, &kv, 0, 64, ma, la, Oa);
    memcpy(mb, ma, sizeof ma), memcpy(lb, la, sizeof la), memcpy(Ob, Oa, sizeof(float) * (size_t)R * hd);
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AMX), 0);
    cb_attn_flash_amx(R, Q, qp, &kv, 64, nk, ma, la, Oa, false);
    cb_attn_flash_avx512(R, Q, qp, &kv, 64, nk, mb, lb, Ob);
    cb_kernels_set_path(cb_kernels_best_path());
    for (int r = 0; r < R; r++) {
        cr_assert_float_eq(ma[r], mb[r], 1e-5f * fmaxf(1.0f, fabsf(mb[r])), "m[%d]", r);
        cr_assert_float_eq(la[r], lb[r], 1e-5f * lb[r], "l[%d]", r);
    }
    cr_assert_lt(max_diff(Oa, Ob, (size_t)R * hd), 1e-5, "O differs");
    free(kf), free(vf), free(Q), free(Oa), free(Ob), free(kc), free(vc);
}

/* The bf16 decode loop (R <= 8 rows, hd % 32 == 0: pair widening, split-order O) for every row count and
 * the head sizes it handles differently (one, two, three or four 32-column pairs per 128-column pass, two
 * passes at 160 and 256), over several blocks with a partial last one, at a split like flash-decoding's. */
Test(attention_kernel, bf16_decode_rows_and_head_dims) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip("no AVX-512");
    const int hds[] = { 32, 64, 96, 128, 160, 256 };
    for (int h = 0; h < 6; h++)
        for (int R = 1; R <= 8; R++) {
            double e = kernel_case(R, 1, 200 + 13 * R, hds[h], CB_BF16, 70);
            cr_assert_lt(e, 2e-6, "hd %d rows %d: rel err %g", hds[h], R, e);
        }
}

/* The 8-bit decode loop (R <= 8 rows, codes widened in registers, K scales on the scores, V scales in the
 * weights) for every row count and the head sizes whose P·V passes differ, over several full blocks, a
 * partial one and a narrow last tile; against the naive softmax over the dequantised values. */
Test(attention_kernel, q8_decode_rows_and_head_dims) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip("no AVX-512");
    const int hds[] = { 16, 48, 64, 128, 256 };
    const cb_dtype ts[] = { CB_F8_E4M3, CB_I8 };
    /* int8 twice: the VNNI integer loop (where the CPU has it) and the fp32 loop */
    const bool vnni = cb_cpu()->avx512vnni;
    for (int t = 0; t < 3; t++) {
        cb_kernels_set_vnni(t == 1 && vnni);
        for (int h = 0; h < 5; h++)
            for (int R = 1; R <= 8; R++) {
                double e = kernel_case(R, 1, 200 + 13 * R, hds[h], ts[CB_MIN(t, 1)], 70 + R);
                cr_assert_lt(e, 2e-6, "%s%s hd %d rows %d: rel err %g", cb_dtype_name(ts[CB_MIN(t, 1)]),
                             t == 1 && vnni ? " (VNNI)" : "", hds[h], R, e);
            }
    }
    cb_kernels_set_vnni(true);
}

/* The int8 VNNI loop against the fp32 loop on the same cache: many full blocks, a split call (k0 > 0),
 * a partial last block and the narrow tile after them (the permuted O goes back before the fallback),
 * rows that see none of a call's keys, and query rows of large and of tiny magnitude (24-bit fixed
 * point is relative to each row's largest element). Both loops round in fp32, differently: the running
 * max and sum agree to 1e-5, the outputs to 5e-6 of the row's largest (each is within 2e-6 of the double
 * reference in the tests above). */
Test(attention_kernel, int8_vnni_matches_fp32_loop) {
    if (cb_kernels_best_path() < CB_PATH_AVX512 || !cb_cpu()->avx512vnni) cr_skip("no AVX-512 VNNI on this CPU");
    const int hd = 128, R = 8;
    const int64_t nk = 1000, cap = 1003;
    float *kf = malloc(sizeof(float) * cap * hd), *vf = malloc(sizeof(float) * cap * hd);
    float Q[8 * 128], O[2][8 * 128], m[2][8], l[2][8];
    fill(kf, (size_t)cap * hd, 5, 2.0f), fill(vf, (size_t)cap * hd, 6, 1.0f), fill(Q, sizeof Q / sizeof *Q, 7, 0.4f);
    for (int d = 0; d < hd; d++) Q[6 * hd + d] *= 30.0f, Q[7 * hd + d] *= 1e-6f;
    void *vc, *kc = make_cache(cap, hd, CB_I8, kf, vf, &vc);
    cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = CB_I8, .hd = hd, .cap = cap };
    int64_t qp[8];
    for (int r = 0; r < R; r++) qp[r] = r == 5 ? 100 : nk - 1 - r; /* row 5 sees none of the second call */
    for (int v = 0; v < 2; v++) {
        cb_kernels_set_vnni(v == 1);
        for (int r = 0; r < R; r++) m[v][r] = -INFINITY, l[v][r] = 0;
        memset(O[v], 0, sizeof O[v]);
        cb_attn_flash(R, Q, qp, &kv, 0, 512, m[v], l[v], O[v]);
        cb_attn_flash(R, Q, qp, &kv, 512, nk, m[v], l[v], O[v]);
    }
    cb_kernels_set_vnni(true);
    for (int r = 0; r < R; r++) {
        cr_assert(fabsf(m[1][r] - m[0][r]) <= 1e-5f * fmaxf(1.0f, fabsf(m[0][r])), "row %d max %g vs %g", r, m[1][r], m[0][r]);
        cr_assert(fabsf(l[1][r] - l[0][r]) <= 1e-5f * l[0][r], "row %d sum %g vs %g", r, l[1][r], l[0][r]);
        float mag = 0;
        for (int d = 0; d < hd; d++) mag = fmaxf(mag, fabsf(O[0][r * hd + d] / l[0][r]));
        for (int d = 0; d < hd; d++) {
            const float a = O[1][r * hd + d] / l[1][r], b = O[0][r * hd + d] / l[0][r];
            cr_assert(fabsf(a - b) <= 5e-6f * mag, "row %d dim %d: %g vs %g", r, d, a, b);
        }
    }
    free(kf), free(vf), free(kc), free(vc), free(cache_ks), free(cache_vs);
}

/* Fast mode over an int8 cache on VNNI: Q and the softmax weights in 16-bit fixed point (two byte planes).
 * Against the fp32 loop on the same cache (as above): within 1e-3 of the row's largest output and 1e-3 in
 * the running max and sum (16-bit rounding of the row's largest element: ~2^-16 relative per term), and not
 * bit-identical to exact mode's three planes, so the fast loop is the one that ran. */
Test(attention_kernel, int8_vnni_fast_mode_two_planes_within_bound) {
    if (cb_kernels_best_path() < CB_PATH_AVX512 || !cb_cpu()->avx512vnni) cr_skip("no AVX-512 VNNI on this CPU");
    const int hd = 128, R = 8;
    const int64_t nk = 1000, cap = 1003;
    float *kf = malloc(sizeof(float) * cap * hd), *vf = malloc(sizeof(float) * cap * hd);
    float Q[8 * 128], O[3][8 * 128], m[3][8], l[3][8];
    fill(kf, (size_t)cap * hd, 5, 2.0f), fill(vf, (size_t)cap * hd, 6, 1.0f), fill(Q, sizeof Q / sizeof *Q, 7, 0.4f);
    for (int d = 0; d < hd; d++) Q[6 * hd + d] *= 30.0f, Q[7 * hd + d] *= 1e-6f;
    void *vc, *kc = make_cache(cap, hd, CB_I8, kf, vf, &vc);
    cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = CB_I8, .hd = hd, .cap = cap };
    int64_t qp[8];
    for (int r = 0; r < R; r++) qp[r] = r == 5 ? 100 : nk - 1 - r;
    for (int v = 0; v < 3; v++) { /* 0: fp32 loop, 1: VNNI exact, 2: VNNI fast */
        cb_kernels_set_vnni(v > 0);
        for (int r = 0; r < R; r++) m[v][r] = -INFINITY, l[v][r] = 0;
        memset(O[v], 0, sizeof O[v]);
        (v == 2 ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 0, 512, m[v], l[v], O[v]);
        (v == 2 ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 512, nk, m[v], l[v], O[v]);
    }
    cb_kernels_set_vnni(true);
    double worst = 0;
    for (int r = 0; r < R; r++) {
        cr_assert(fabsf(m[2][r] - m[0][r]) <= 1e-3f * fmaxf(1.0f, fabsf(m[0][r])), "row %d max %g vs %g", r, m[2][r], m[0][r]);
        cr_assert(fabsf(l[2][r] - l[0][r]) <= 1e-3f * l[0][r], "row %d sum %g vs %g", r, l[2][r], l[0][r]);
        float mag = 0;
        for (int d = 0; d < hd; d++) mag = fmaxf(mag, fabsf(O[0][r * hd + d] / l[0][r]));
        for (int d = 0; d < hd; d++) {
            const float a = O[2][r * hd + d] / l[2][r], b = O[0][r * hd + d] / l[0][r];
            cr_assert(fabsf(a - b) <= 1e-3f * mag, "row %d dim %d: %g vs %g", r, d, a, b);
        }
    }
    for (size_t i = 0; i < (size_t)R * hd; i++) worst = fmax(worst, fabs((double)O[2][i] - (double)O[1][i]));
    cr_assert_gt(worst, 0.0, "fast mode gave exact mode's bits: the two-plane loop did not run");
    free(kf), free(vf), free(kc), free(vc), free(cache_ks), free(cache_vs);
}

/* ---------- layer level ---------- */

typedef struct {
    cb_config cfg;
    cb_attn_weights w;
    float *buf[8];
    cb_engine_opts o;
} model;

static cb_weight mat(float **keep, int64_t rows, int64_t cols, uint64_t seed) {
    *keep = malloc(sizeof(float) * rows * cols);
    fill(*keep, (size_t)(rows * cols), seed, 1.0f / sqrtf((float)cols) * 1.7f);
    return (cb_weight){ .data = *keep, .dtype = CB_F32, .rows = rows, .cols = cols };
}

static void make_model(model *m, int d, int H, int KV, int hd, int rot, bool bias, cb_dtype kv_dtype, int64_t ctx,
                       int batch, int chunk) {
    memset(m, 0, sizeof *m);
    m->cfg.d_model = d, m->cfg.n_heads = H, m->cfg.n_kv_heads = KV, m->cfg.head_dim = hd;
    m->cfg.attn_bias = bias;
    m->cfg.rope = (cb_rope){ .type = CB_ROPE_DEFAULT, .theta = 10000.0, .rot_dim = rot };
    m->w.q = mat(&m->buf[0], (int64_t)H * hd, d, 1);
    m->w.k = mat(&m->buf[1], (int64_t)KV * hd, d, 2);
    m->w.v = mat(&m->buf[2], (int64_t)KV * hd, d, 3);
    m->w.o = mat(&m->buf[3], d, (int64_t)H * hd, 4);
    if (bias) {
        m->w.q_b = mat(&m->buf[4], 1, (int64_t)H * hd, 5), m->w.q_b.cols = (int64_t)H * hd;
        m->w.k_b = mat(&m->buf[5], 1, (int64_t)KV * hd, 6);
        m->w.v_b = mat(&m->buf[6], 1, (int64_t)KV * hd, 7);
        m->w.o_b = mat(&m->buf[7], 1, d, 8);
    }
    cb_engine_opts_default(&m->o);
    m->o.kv_dtype = kv_dtype, m->o.max_context = ctx, m->o.max_batch = batch, m->o.prefill_chunk = chunk;
}
static void free_model(model *m) {
    for (int i = 0; i < 8; i++) free(m->buf[i]);
}

static cb_attn_layer *layer(const model *m) {
    cb_attn_layer *l;
    cb_err err;
    cr_assert_eq(cb_attn_create(&m->cfg, &m->w, &m->o, &l, &err), 0, "%s", err.msg);
    return l;
}

/* Naive double-precision layer over the whole sequence x [T][d] -> y [T][d]. RoPE inv_freq computed
 * here from the default formula (fp32-rounded base values, as HF). */
static void naive_layer(const model *m, int T, const float *x, double *y) {
    const int d = m->cfg.d_model, H = m->cfg.n_heads, KV = m->cfg.n_kv_heads, hd = m->cfg.head_dim;
    const int rot = m->cfg.rope.rot_dim, G = H / KV;
    double *q = calloc((size_t)T * H * hd, sizeof(double)), *k = calloc((size_t)T * KV * hd, sizeof(double));
    double *v = calloc((size_t)T * KV * hd, sizeof(double)), *a = calloc((size_t)T * H * hd, sizeof(double));
    const float *W[3] = { m->w.q.data, m->w.k.data, m->w.v.data }, *B[3] = { m->w.q_b.data, m->w.k_b.data, m->w.v_b.data };
    double *dst[3] = { q, k, v };
    int nout[3] = { H * hd, KV * hd, KV * hd };
    for (int p = 0; p < 3; p++)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < nout[p]; o++) {
                double s = B[p] ? B[p][o] : 0;
                for (int i = 0; i < d; i++) s += (double)x[t * d + i] * W[p][(size_t)o * d + i];
                dst[p][(size_t)t * nout[p] + o] = s;
            }
    for (int t = 0; t < T; t++)
        for (int p = 0; p < 2; p++)
            for (int h = 0; h < (p ? KV : H); h++) {
                double *z = dst[p] + (size_t)t * nout[p] + (size_t)h * hd;
                for (int i = 0; i < rot / 2; i++) {
                    double f = (float)(1.0 / pow(10000.0, 2.0 * i / rot)), ang = t * f;
                    double u = z[i], w = z[i + rot / 2];
                    z[i] = u * cos(ang) - w * sin(ang);
                    z[i + rot / 2] = w * cos(ang) + u * sin(ang);
                }
            }
    double *s = malloc(sizeof(double) * T);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            int kh = h / G;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= t; j++) {
                double acc = 0;
                for (int i = 0; i < hd; i++) acc += q[((size_t)t * H + h) * hd + i] * k[((size_t)j * KV + kh) * hd + i];
                s[j] = acc / sqrt(hd), mx = fmax(mx, s[j]);
            }
            for (int j = 0; j <= t; j++) sum += (s[j] = exp(s[j] - mx));
            for (int j = 0; j <= t; j++)
                for (int i = 0; i < hd; i++)
                    a[((size_t)t * H + h) * hd + i] += s[j] / sum * v[((size_t)j * KV + kh) * hd + i];
        }
    const float *Wo = m->w.o.data, *Bo = m->w.o_b.data;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < d; o++) {
            double acc = Bo ? Bo[o] : 0;
            for (int i = 0; i < H * hd; i++) acc += a[(size_t)t * H * hd + i] * Wo[(size_t)o * H * hd + i];
            y[(size_t)t * d + o] = acc;
        }
    free(q), free(k), free(v), free(a), free(s);
}

/* prefill in chunks of `chunk` tokens, then decode the rest one by one; y [T][d]. The layer keeps no
 * lengths: position t is passed in (the engine's stack tracks them). */
static void run_layer(cb_attn_layer *l, int seq, int d, int T, int first, int chunk, const float *x, float *y) {
    int t = 0;
    while (t < first) {
        int n = CB_MIN(chunk, first - t);
        cb_attn_prefill(l, seq, t, x + (size_t)t * d, n, y + (size_t)t * d);
        t += n;
    }
    for (int64_t pos; t < T; t++) {
        pos = t;
        cb_attn_decode(l, 1, &seq, &pos, x + (size_t)t * d, y + (size_t)t * d);
    }
}

static void layer_vs_naive(int H, int KV, int hd, int rot, bool bias, int T, int first, int chunk, double tol) {
    model m;
    const int d = 48;
    make_model(&m, d, H, KV, hd, rot, bias, CB_F32, T + 5, 1, chunk);
    float *x = malloc(sizeof(float) * T * d), *y = malloc(sizeof(float) * T * d);
    double *ref = malloc(sizeof(double) * T * d);
    fill(x, (size_t)T * d, 99, 1.0f);
    naive_layer(&m, T, x, ref);
    cb_attn_layer *l = layer(&m);
    run_layer(l, 0, d, T, first, chunk, x, y);
    double e = max_rel_err(y, ref, (size_t)T * d);
    cr_assert_lt(e, tol, "H %d KV %d hd %d rot %d T %d first %d chunk %d: rel err %g", H, KV, hd, rot, T, first, chunk, e);
    cb_attn_destroy(l);
    free(x), free(y), free(ref), free_model(&m);
}

Test(attention_layer, prefill_gqa_ratios_vs_naive) {
    layer_vs_naive(8, 8, 16, 16, false, 70, 70, 512, 1e-5);  /* MHA */
    layer_vs_naive(8, 2, 16, 16, true, 70, 70, 512, 1e-5);   /* GQA 4, biases */
    layer_vs_naive(8, 1, 64, 64, false, 70, 70, 512, 1e-5);  /* MQA / GQA 8 */
    layer_vs_naive(4, 1, 128, 128, false, 33, 33, 512, 1e-5); /* transformer-xs head shape */
}

Test(attention_layer, chunked_prefill_at_depth_and_decode_vs_naive) {
    layer_vs_naive(8, 2, 16, 16, false, 150, 150, 37, 1e-5); /* chunks of 37: prefill at depth */
    layer_vs_naive(8, 2, 16, 16, false, 150, 20, 512, 1e-5); /* decode 130 tokens */
}

Test(attention_layer, partial_rope_vs_naive) {
    layer_vs_naive(8, 2, 16, 8, false, 60, 40, 512, 1e-5);
    layer_vs_naive(4, 2, 64, 32, true, 60, 60, 16, 1e-5);
}

Test(attention_layer, prefill_equals_prefill_then_decode) {
    model m;
    const int d = 64, T = 120;
    make_model(&m, d, 8, 2, 32, 32, false, CB_F32, 256, 2, 512);
    float *x = malloc(sizeof(float) * T * d), *a = malloc(sizeof(float) * T * d), *b = malloc(sizeof(float) * T * d);
    fill(x, (size_t)T * d, 5, 1.0f);
    cb_attn_layer *l = layer(&m);
    run_layer(l, 0, d, T, T, 512, x, a);
    run_layer(l, 1, d, T, 45, 512, x, b);
    double e = max_diff(b, a, (size_t)T * d);
    cr_assert_lt(e, 1e-5, "rel diff %g", e);
    cb_attn_destroy(l);
    free(x), free(a), free(b), free_model(&m);
}

/* Batched decode of 3 sequences of different lengths (more than one 1024-key partition, several waves)
 * equals each decoded alone; 1 and 2 threads agree. */
static void batched(int threads, float *out, const float *x, int d, model *m) {
    omp_set_num_threads(threads);
    cb_attn_layer *l = layer(m);
    const int lens[3] = { 2100, 700, 1030 };
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < lens[s]; t += 512) cb_attn_prefill(l, s, t, x + (size_t)t * d, CB_MIN(512, lens[s] - t), out);
    int seqs[3] = { 2, 0, 1 };
    for (int step = 0; step < 3; step++) {
        int64_t pos[3];
        for (int i = 0; i < 3; i++) pos[i] = lens[seqs[i]] + step;
        cb_attn_decode(l, 3, seqs, pos, x + (size_t)step * 3 * d, out + (size_t)step * 3 * d);
    }
    /* alone: redo sequence by sequence from position 0 (the cache is overwritten) */
    float *alone = out + 9 * (size_t)d;
    for (int s = 0; s < 3; s++) {
        for (int t = 0; t < lens[s]; t += 512)
            cb_attn_prefill(l, s, t, x + (size_t)t * d, CB_MIN(512, lens[s] - t), alone);
    }
    for (int step = 0; step < 3; step++)
        for (int i = 0; i < 3; i++) {
            int64_t pos = lens[seqs[i]] + step;
            cb_attn_decode(l, 1, &seqs[i], &pos, x + (size_t)(step * 3 + i) * d, alone + (size_t)(step * 3 + i) * d);
        }
    cb_attn_destroy(l);
    omp_set_num_threads(omp_get_num_procs());
}

Test(attention_layer, batched_decode_equals_alone_and_threads_agree) {
    model m;
    const int d = 32;
    make_model(&m, d, 16, 8, 16, 16, false, CB_BF16, 2200, 3, 512);
    float *x = malloc(sizeof(float) * 2200 * d);
    fill(x, (size_t)2200 * d, 17, 1.0f);
    float *o1 = calloc(18 * (size_t)d + 512 * d, sizeof(float)), *o2 = calloc(18 * (size_t)d + 512 * d, sizeof(float));
    batched(1, o1, x, d, &m);
    batched(2, o2, x, d, &m);
    double e = max_diff(o1, o1 + 9 * d, 9 * (size_t)d);
    cr_assert_lt(e, 1e-6, "batched vs alone: %g", e);
    e = max_diff(o1, o2, 18 * (size_t)d);
    cr_assert_lt(e, 1e-6, "1 vs 2 threads: %g", e);
    free(x), free(o1), free(o2), free_model(&m);
}

Test(attention_layer, prefill_threads_agree) {
    model m;
    const int d = 64, T = 300;
    make_model(&m, d, 4, 1, 128, 128, false, CB_BF16, 400, 1, 512);
    float *x = malloc(sizeof(float) * T * d), *a = malloc(sizeof(float) * T * d), *b = malloc(sizeof(float) * T * d);
    fill(x, (size_t)T * d, 3, 1.0f);
    float *outs[2] = { a, b };
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        cb_attn_layer *l = layer(&m);
        run_layer(l, 0, d, T, 250, 100, x, outs[th - 1]);
        cb_attn_destroy(l);
    }
    omp_set_num_threads(omp_get_num_procs());
    double e = max_diff(a, b, (size_t)T * d);
    cr_assert_lt(e, 1e-6, "1 vs 2 threads: %g", e);
    free(x), free(a), free(b), free_model(&m);
}

Test(attention_layer, bf16_kv_close_to_f32) {
    model m;
    const int d = 48, T = 90;
    make_model(&m, d, 8, 2, 16, 16, false, CB_BF16, 128, 1, 512);
    float *x = malloc(sizeof(float) * T * d), *y = malloc(sizeof(float) * T * d);
    double *ref = malloc(sizeof(double) * T * d);
    fill(x, (size_t)T * d, 7, 1.0f);
    naive_layer(&m, T, x, ref);
    cb_attn_layer *l = layer(&m);
    run_layer(l, 0, d, T, 50, 512, x, y);
    double e = max_rel_err(y, ref, (size_t)T * d);
    cr_assert_lt(e, 2e-2, "bf16 KV rel err %g", e);
    cr_assert_gt(e, 1e-6, "bf16 KV should round (err %g)", e); /* it really is stored as bf16 */
    cb_attn_destroy(l);
    free(x), free(y), free(ref), free_model(&m);
}

/* A reduced cache (8-bit, bf16, f16; prefill then decode, hd 128 so the AVX-512 decode loop runs) equals
 * the same layer whose f32 cache holds each row as that cache stores it (kv_round) to fp32 accuracy, and
 * is within its rounding error of the f32 cache (but not equal to it: the rows really are reduced). */
Test(attention_layer, reduced_kv_equals_rounded_twin) {
    const cb_dtype ts[] = { CB_F8_E4M3, CB_I8, CB_BF16, CB_F16 };
    const int d = 64, T = 300;
    for (int i = 0; i < 4; i++) {
        model m;
        make_model(&m, d, 4, 1, 128, 64, false, ts[i], 320, 1, 128);
        float *x = malloc(sizeof(float) * T * d), *y = malloc(sizeof(float) * T * d);
        float *y_twin = malloc(sizeof(float) * T * d), *y_f32 = malloc(sizeof(float) * T * d);
        fill(x, (size_t)T * d, 17, 1.0f);
        cb_attn_layer *l = layer(&m);
        run_layer(l, 0, d, T, 200, 128, x, y);
        cb_attn_destroy(l);
        m.o.kv_dtype = CB_F32, m.o.kv_round = ts[i];
        l = layer(&m);
        run_layer(l, 0, d, T, 200, 128, x, y_twin);
        cb_attn_destroy(l);
        m.o.kv_round = CB_F32;
        l = layer(&m);
        run_layer(l, 0, d, T, 200, 128, x, y_f32);
        cb_attn_destroy(l);
        double e_twin = max_diff(y, y_twin, (size_t)T * d), e_f32 = max_diff(y, y_f32, (size_t)T * d);
        const double lo = ts[i] == CB_F16 ? 1e-6 : 1e-4; /* f16 keeps 11 bits */
        cr_assert_lt(e_twin, 1e-5, "%s vs rounded twin: rel diff %g", cb_dtype_name(ts[i]), e_twin);
        cr_assert(e_f32 > lo && e_f32 < 0.1, "%s vs f32 cache: rel diff %g", cb_dtype_name(ts[i]), e_f32);
        free(x), free(y), free(y_twin), free(y_f32), free_model(&m);
    }
}

/* kv_round is only meaningful on an f32 cache, with a reduced format. */
Test(attention_layer, kv_round_needs_f32_and_a_reduced_dtype) {
    model m;
    make_model(&m, 32, 4, 1, 32, 32, false, CB_BF16, 64, 1, 16);
    m.o.kv_round = CB_I8;
    cb_attn_layer *l = NULL;
    cb_err err = { "" };
    cr_assert_eq(cb_attn_create(&m.cfg, &m.w, &m.o, &l, &err), -1);
    cr_assert(strstr(err.msg, "kv_round"), "%s", err.msg);
    m.o.kv_dtype = CB_F16, m.o.kv_round = CB_BF16;
    cr_assert_eq(cb_attn_create(&m.cfg, &m.w, &m.o, &l, &err), -1);
    cr_assert(strstr(err.msg, "kv_round"), "%s", err.msg);
    m.o.kv_dtype = CB_F32, m.o.kv_round = CB_I32;
    cr_assert_eq(cb_attn_create(&m.cfg, &m.w, &m.o, &l, &err), -1);
    free_model(&m);
}

Test(attention_layer, llama3_inv_freq_matches_formula) {
    cb_rope r = { .type = CB_ROPE_LLAMA3, .theta = 500000.0, .rot_dim = 128, .factor = 8, .low_freq_factor = 1,
                  .high_freq_factor = 4, .original_max_pos = 8192 };
    double got[64];
    cb_rope_inv_freq(&r, got);
    int low = 0, high = 0, mid = 0;
    for (int i = 0; i < 64; i++) {
        double f = (float)(1.0 / pow(500000.0, 2.0 * i / 128)), wl = 2 * M_PI / f, want;
        if (wl > 8192.0 / 1) want = f / 8, low++;
        else if (wl < 8192.0 / 4) want = f, high++;
        else {
            double s = (8192.0 / wl - 1) / (4 - 1);
            want = (1 - s) * f / 8 + s * f, mid++;
        }
        cr_assert_lt(fabs(got[i] - want) / want, 1e-6, "i %d got %g want %g", i, got[i], want);
    }
    cr_assert(low && high && mid, "all three regimes exercised (%d %d %d)", low, high, mid);
}

Test(attention_layer, plan_equals_memory_to_the_byte) {
    const cb_dtype ts[] = { CB_BF16, CB_F16, CB_F32 };
    for (int i = 0; i < 3; i++)
        for (int64_t ctx = 1; ctx < 5000; ctx = ctx * 7 + 3) {
            model m;
            make_model(&m, 32, 8, 2, 16, 16, false, ts[i], ctx, 3, 64);
            size_t kv, sc, pkv, psc;
            cb_attn_layer *l = layer(&m);
            cb_attn_memory(l, &kv, &sc);
            cb_attn_plan(&m.cfg, &m.o, ctx, 3, &pkv, &psc);
            cr_assert_eq(kv, pkv);
            cr_assert_eq(sc, psc);
            cr_assert_eq(kv, (size_t)3 * 2 * 2 * 16 * (size_t)ctx * cb_dtype_size(ts[i]));
            cb_attn_destroy(l);
            free_model(&m);
        }
    /* scratch does not grow with context */
    cb_config cfg = { .d_model = 4096, .n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .rope = { .rot_dim = 128 } };
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    size_t kv1, sc1, kv2, sc2;
    cb_attn_plan(&cfg, &o, 4096, 1, &kv1, &sc1);
    cb_attn_plan(&cfg, &o, 1 << 20, 1, &kv2, &sc2);
    cr_assert_eq(sc1, sc2);
    cr_assert_eq(kv2, (size_t)2 * 8 * 128 * (1 << 20) * 2);
}

/* An impossible KV cache is refused at create, naming the bytes. (Sequence, batch and length errors are
 * the stack's, checked once at the engine's entry: tests/test_stack.c.) */
Test(attention_layer, impossible_kv_cache_is_a_clean_error) {
    model m;
    const int d = 32;
    cb_err err = { 0 };
    make_model(&m, d, 4, 2, 16, 16, false, CB_F32, (int64_t)1 << 42, 1, 64);
    cb_attn_layer *big = NULL;
    cr_assert_eq(cb_attn_create(&m.cfg, &m.w, &m.o, &big, &err), -1);
    cr_assert(strstr(err.msg, "bytes"), "%s", err.msg);
    cr_assert_null(big);
    free_model(&m);
}

Test(attention_layer, synthetic_fill_then_decode_and_counters) {
    model m;
    const int d = 32;
    make_model(&m, d, 4, 1, 128, 128, false, CB_BF16, 5000, 1, 64);
    cb_attn_layer *l = layer(&m);
    cb_rng rng = { 42 };
    cb_attn_fill_synthetic(l, 0, 4100, &rng);
    float x[32], y[32];
    fill(x, 32, 9, 1.0f);
    cb_counters before = cb_ctr;
    int s = 0;
    int64_t pos = 4100;
    cb_attn_decode(l, 1, &s, &pos, x, y);
    for (int i = 0; i < d; i++) cr_assert(isfinite(y[i]));
    long long ctx = 4101, proj = 2LL * d * (4 + 2) * 128 + 2LL * 4 * 128 * d;
    cr_assert_eq(cb_ctr.kv_bytes_read - before.kv_bytes_read, ctx * 2 * 128 * 2);
    cr_assert_eq(cb_ctr.kv_bytes_written - before.kv_bytes_written, 2 * 128 * 2);
    cr_assert_eq(cb_ctr.flops - before.flops, proj + 4LL * 128 * 4 * ctx);
    cr_assert_eq(cb_ctr.weight_bytes - before.weight_bytes, (long long)(proj / 2) * 4);
    cb_attn_destroy(l);
    free_model(&m);
}

/* Synthetic fill of 8-bit caches: codes and scales written like appended tokens (decode finite), and the
 * counters count the codes and the two scales per position. */
Test(attention_layer, synthetic_fill_8bit_and_counters) {
    const cb_dtype ts[] = { CB_F8_E4M3, CB_I8 };
    for (int i = 0; i < 2; i++) {
        model m;
        const int d = 32;
        make_model(&m, d, 4, 1, 128, 128, false, ts[i], 5000, 1, 64);
        cb_attn_layer *l = layer(&m);
        cb_rng rng = { 42 };
        cb_attn_fill_synthetic(l, 0, 4100, &rng);
        float x[32], y[32];
        fill(x, 32, 9, 1.0f);
        cb_counters before = cb_ctr;
        int s = 0;
        int64_t pos = 4100;
        cb_attn_decode(l, 1, &s, &pos, x, y);
        double mag = 0;
        for (int k = 0; k < d; k++) {
            cr_assert(isfinite(y[k]));
            mag += fabs(y[k]);
        }
        cr_assert_gt(mag, 0.0);
        cr_assert_eq(cb_ctr.kv_bytes_read - before.kv_bytes_read, 4101LL * (2 * 128 + 8));
        cr_assert_eq(cb_ctr.kv_bytes_written - before.kv_bytes_written, 2 * 128 + 8);
        cb_attn_destroy(l);
        free_model(&m);
    }
}

/* The AVX-512 kernel against its portable twin on identical inputs (prefill-sized and decode-sized rows,
 * all KV dtypes, a narrow last tile, online state carried across two calls). */
Test(attention_kernel, avx512_matches_portable_twin) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip("no AVX-512");
    const cb_dtype ts[] = { CB_F32, CB_F16, CB_BF16, CB_F8_E4M3, CB_I8 };
    const int rows[] = { 64, 4, 1 };
    const int hd = 128;
    const int64_t cap = 1000, split = 512, nk = 999;
    float *kf = malloc(sizeof(float) * cap * hd), *vf = malloc(sizeof(float) * cap * hd);
    fill(kf, (size_t)cap * hd, 21, 1.7f);
    fill(vf, (size_t)cap * hd, 22, 1.0f);
    float Q[64 * 128], O[2][64 * 128], m[2][64], l[2][64];
    int64_t qp[64];
    fill(Q, 64 * 128, 23, 0.3f);
    for (int ti = 0; ti < 5; ti++)
        for (int ri = 0; ri < 3; ri++) {
            int R = rows[ri];
            void *vc, *kc = make_cache(cap, hd, ts[ti], kf, vf, &vc);
            cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = ts[ti], .hd = hd, .cap = cap };
            for (int p = 0; p < 2; p++) {
                cb_kernels_set_path(p ? CB_PATH_AVX512 : CB_PATH_PORTABLE);
                memset(O[p], 0, sizeof O[p]);
                for (int r = 0; r < R; r++) m[p][r] = -INFINITY, l[p][r] = 0, qp[r] = nk - 1 - (R - 1 - r);
                cb_attn_flash(R, Q, qp, &kv, 0, split, m[p], l[p], O[p]);
                cb_attn_flash(R, Q, qp, &kv, split, nk, m[p], l[p], O[p]);
            }
            for (int r = 0; r < R; r++) {
                cr_assert_lt(fabsf(m[0][r] - m[1][r]), 1e-5f * fmaxf(1.0f, fabsf(m[0][r])));
                cr_assert_lt(fabsf(l[0][r] - l[1][r]) / l[0][r], 1e-5f, "dtype %s R %d row %d l %g vs %g",
                             cb_dtype_name(ts[ti]), R, r, (double)l[0][r], (double)l[1][r]);
            }
            double e = max_diff(O[1], O[0], (size_t)R * hd);
            cr_assert_lt(e, 1e-5, "dtype %s R %d: rel diff %g", cb_dtype_name(ts[ti]), R, e);
            free(kc), free(vc), free(cache_ks), free(cache_vs);
        }
    cb_kernels_set_path(cb_kernels_best_path());
    free(kf), free(vf);
}

/* fp8 caches with E4M3 subnormal codes (docs/quantization.md, "Subnormal codes"). A cache of raw codes:
 * K tiles and V rows from code(p, d), scales ks/vs. */
static void raw_fp8_cache(int64_t cap, int hd, uint8_t (*code)(int64_t, int, bool, void *), void *arg, float sk,
                          uint8_t **k, uint8_t **v, float **ks, float **vs) {
    *k = calloc((size_t)cap * hd, 1), *v = calloc((size_t)cap * hd, 1);
    *ks = malloc(sizeof(float) * cap), *vs = malloc(sizeof(float) * cap);
    for (int64_t p = 0; p < cap; p++) {
        (*ks)[p] = sk * (0.002f + 0.00001f * (float)(p % 97)), (*vs)[p] = sk * (0.003f + 0.00001f * (float)(p % 89));
        for (int d = 0; d < hd; d++) {
            (*k)[cb_kv_k_offset(p, d, hd, cap, CB_F8_E4M3)] = code(p, d, true, arg);
            (*v)[cb_kv_v_offset(p, d, hd, cap, CB_F8_E4M3)] = code(p, d, false, arg);
        }
    }
}

/* Blocks of 64 positions: block % 4 == 0 about 1 code in 3 subnormal, == 1 none, == 2 a single one in V,
 * == 3 a single one in K (K and V choose their decode apart); the other codes normal with exponent 1..8
 * (so that 2^6 times each is a code). */
static uint8_t sub_code(int64_t p, int d, bool isk, void *arg) {
    uint64_t h = (uint64_t)(p * 1315423911u + d * 2654435761u + (isk ? 7 : 0)) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    const int b = (int)((p / 64) % 4);
    uint8_t s = (uint8_t)(h >> 40 & 0x80);
    bool sub = b == 0 ? h % 3 == 0 : (b == 2 && !isk && p % 64 == 5 && d == 3) || (b == 3 && isk && p % 64 == 9 && d == 7);
    uint8_t c = sub ? (uint8_t)(s | (1 + (h >> 8) % 7)) : (uint8_t)(s | (8 + (h >> 8) % 64));
    if (arg) { /* the twin: 2^6 times the value, always a normal code */
        float x = cb_fp8_to_f32(c) * 0x1p6f;
        c = cb_f32_to_fp8(x);
        cr_assert(cb_fp8_to_f32(c) == x && (c & 0x78));
    }
    return c;
}
/* Every one of the 256 codes (NaN codes as 0) in turn along K and V. */
static uint8_t every_code(int64_t p, int d, bool isk, void *arg) {
    (void)arg;
    uint8_t c = (uint8_t)(p * 131 + d * 7 + (isk ? 0 : 91));
    return (c & 0x7f) == 0x7f ? 0 : c;
}

/* The subnormal-safe decode gives the same bits as the clean one: a cache with subnormal codes against its
 * twin of codes worth 2^6 times as much with scales / 2^6 (every product and sum equal), 1..8 rows, split
 * calls; both also against the portable twin. And all 256 codes against the portable twin. */
Test(attention_kernel, fp8_subnormal_codes_bit_identical) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip("no AVX-512");
    const int hds[] = { 64, 128 };
    const int64_t cap = 1000, split = 448, nk = 990;
    float Q[8 * 128], O[3][8 * 128], m[3][8], l[3][8];
    int64_t qp[8];
    fill(Q, 8 * 128, 31, 0.5f);
    for (int hi = 0; hi < 2; hi++) {
        const int hd = hds[hi];
        uint8_t *k[3], *v[3];
        float *ks[3], *vs[3];
        raw_fp8_cache(cap, hd, sub_code, NULL, 1.0f, &k[0], &v[0], &ks[0], &vs[0]);
        raw_fp8_cache(cap, hd, sub_code, (void *)1, 0x1p-6f, &k[1], &v[1], &ks[1], &vs[1]);
        raw_fp8_cache(cap, hd, every_code, NULL, 1.0f, &k[2], &v[2], &ks[2], &vs[2]);
        for (int R = 1; R <= 8; R += (R < 2 ? 1 : 3)) {
            for (int c = 0; c < 3; c++) {
                cb_kv_view kv = { .k = k[c], .v = v[c], .ks = ks[c], .vs = vs[c], .dtype = CB_F8_E4M3, .hd = hd, .cap = cap };
                float Op[8 * 128], mp[8], lp[8];
                for (int p = 0; p < 2; p++) {
                    float *o = p ? O[c] : Op, *mm = p ? m[c] : mp, *ll = p ? l[c] : lp;
                    cb_kernels_set_path(p ? cb_kernels_best_path() : CB_PATH_PORTABLE);
                    memset(o, 0, sizeof(float) * 8 * 128);
                    for (int r = 0; r < R; r++) mm[r] = -INFINITY, ll[r] = 0, qp[r] = nk - 1 - (R - 1 - r);
                    cb_attn_flash(R, Q, qp, &kv, 0, split, mm, ll, o);
                    cb_attn_flash(R, Q, qp, &kv, split, nk, mm, ll, o);
                }
                double e = max_diff(O[c], Op, (size_t)R * hd);
                cr_assert_lt(e, 1e-5, "cache %d hd %d R %d: vs portable %g", c, hd, R, e);
            }
            cr_assert_eq(memcmp(m[0], m[1], sizeof(float) * R), 0, "hd %d R %d: running max differs", hd, R);
            cr_assert_eq(memcmp(l[0], l[1], sizeof(float) * R), 0, "hd %d R %d: running sum differs", hd, R);
            cr_assert_eq(memcmp(O[0], O[1], sizeof(float) * R * hd), 0, "hd %d R %d: outputs differ", hd, R);
        }
        for (int c = 0; c < 3; c++) free(k[c]), free(v[c]), free(ks[c]), free(vs[c]);
    }
    cb_kernels_set_path(cb_kernels_best_path());
}

/* Where the decode loops prefetch (L1 or L2, kernels.h cb_kernels_prefetch_l2) must not move a bit: every
 * decode loop (bf16 pairs, fp8, int8 on VNNI and without) at every row count, over a split call whose blocks
 * include a partial one and a narrow last tile, both ways. */
Test(attention_kernel, decode_prefetch_target_changes_no_bit) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip("no AVX-512");
    const int hd = 128;
    const int64_t cap = 1003, nk = 1000, split = 448;
    const cb_dtype ts[] = { CB_BF16, CB_F8_E4M3, CB_I8, CB_I8 };
    float *kf = malloc(sizeof(float) * cap * hd), *vf = malloc(sizeof(float) * cap * hd);
    float Q[8 * 128], O[2][8 * 128], m[2][8], l[2][8];
    int64_t qp[8];
    fill(Q, sizeof Q / sizeof *Q, 17, 0.5f);
    for (int c = 0; c < 4; c++) {
        cb_kernels_set_vnni(c != 3); /* the last case: int8 through the fp32 loop */
        fill(kf, (size_t)cap * hd, 18 + c, 2.0f), fill(vf, (size_t)cap * hd, 22 + c, 1.0f);
        void *vc, *kc = make_cache(cap, hd, ts[c], kf, vf, &vc);
        cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = ts[c], .hd = hd, .cap = cap };
        for (int R = 1; R <= 8; R++) {
            for (int p = 0; p < 2; p++) {
                cb_kernels_set_prefetch_l2(p);
                memset(O[p], 0, sizeof O[p]);
                for (int r = 0; r < R; r++) m[p][r] = -INFINITY, l[p][r] = 0, qp[r] = nk - 1 - r;
                cb_attn_flash(R, Q, qp, &kv, 0, split, m[p], l[p], O[p]);
                cb_attn_flash(R, Q, qp, &kv, split, nk, m[p], l[p], O[p]);
            }
            cr_assert_eq(memcmp(m[0], m[1], sizeof(float) * R), 0, "%s case %d R %d: running max differs", cb_dtype_name(ts[c]), c, R);
            cr_assert_eq(memcmp(l[0], l[1], sizeof(float) * R), 0, "%s case %d R %d: running sum differs", cb_dtype_name(ts[c]), c, R);
            cr_assert_eq(memcmp(O[0], O[1], sizeof(float) * R * hd), 0, "%s case %d R %d: outputs differ", cb_dtype_name(ts[c]), c, R);
        }
        free(kc), free(vc), free(cache_ks), free(cache_vs);
    }
    cb_kernels_set_prefetch_l2(-1);
    cb_kernels_set_vnni(true);
    free(kf), free(vf);
}

/* A call over keys [k0, k1) reads nothing of the cache at k1 or after (the positions a decode has not
 * written yet, or that an earlier sequence left): with those positions poisoned (NaN and huge scales, NaN
 * values, arbitrary codes) every path gives the bits it gives over a zeroed tail, in exact and fast mode, for
 * decode row counts and a prefill-sized one, a last block of 40 keys and one of 1. */
static void poison_tail(const cb_kv_view *kv, int64_t from) {
    const int hd = kv->hd;
    float *ks = (float *)kv->ks, *vs = (float *)kv->vs; /* the test's own calloc'd scales */
    char *kc = (char *)kv->k, *vc = (char *)kv->v;
    cb_rng g = { 99 };
    for (int64_t p = from; p < kv->cap; p++) {
        if (cb_kv_is_q8(kv->dtype)) ks[p] = vs[p] = p & 1 ? 1e30f : NAN; /* huge: a max taken over them shows */
        for (int d = 0; d < hd; d++) {
            const int64_t ko = cb_kv_k_offset(p, d, hd, kv->cap, kv->dtype), vo = cb_kv_v_offset(p, d, hd, kv->cap, kv->dtype);
            switch (kv->dtype) {
            case CB_F32: ((float *)kc)[ko] = ((float *)vc)[vo] = NAN; break;
            case CB_BF16: case CB_F16: ((uint16_t *)kc)[ko] = ((uint16_t *)vc)[vo] = 0x7FFF; break;
            default: /* 8-bit: any code, NaN codes of fp8 included */
                ((uint8_t *)kc)[ko] = (uint8_t)(cb_rng_next(&g) >> 24), ((uint8_t *)vc)[vo] = (uint8_t)(cb_rng_next(&g) >> 24);
            }
        }
    }
}
Test(attention_kernel, keys_past_the_call_never_read) {
    enum { HD = 128, NR = 5 };
    const int Rs[NR] = { 1, 2, 4, 8, 17 };
    const int64_t cap = 1088, ends[] = { 1000, 961 };
    const cb_dtype ts[] = { CB_F32, CB_BF16, CB_F16, CB_F8_E4M3, CB_I8 };
    float *kf = malloc(sizeof(float) * cap * HD), *vf = malloc(sizeof(float) * cap * HD);
    static float Q[17 * HD], O[2][NR][17 * HD], m[2][NR][17], l[2][NR][17];
    int64_t qp[17];
    fill(Q, sizeof Q / sizeof *Q, 31, 0.5f);
    int runs = 0;
    for (cb_kpath path = CB_PATH_PORTABLE; path <= CB_PATH_AMX; path++) {
        if (cb_kernels_set_path(path) != 0) continue;
        for (int t = 0; t < 5; t++)
            for (int novnni = 0; novnni < 2; novnni++) {
                if (novnni && (ts[t] != CB_I8 || path < CB_PATH_AVX512)) continue;
                cb_kernels_set_vnni(!novnni);
                for (int e = 0; e < 2; e++) {
                    const int64_t nk = ends[e];
                    fill(kf, (size_t)cap * HD, 32 + t, 2.0f), fill(vf, (size_t)cap * HD, 37 + t, 1.0f);
                    for (int64_t p = nk; p < cap; p++)
                        for (int d = 0; d < HD; d++) kf[p * HD + d] = vf[p * HD + d] = 0.0f;
                    void *vc, *kc = make_cache(cap, HD, ts[t], kf, vf, &vc);
                    cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = ts[t], .hd = HD, .cap = cap };
                    for (int fast = 0; fast < 2; fast++) {
                        for (int v = 0; v < 2; v++) { /* v = 0: the zeroed tail; 1: poisoned (kept for the next mode) */
                            if (v) poison_tail(&kv, nk);
                            for (int ri = 0; ri < NR; ri++) {
                                const int R = Rs[ri];
                                memset(O[v][ri], 0, sizeof O[v][ri]);
                                for (int r = 0; r < R; r++) m[v][ri][r] = -INFINITY, l[v][ri][r] = 0, qp[r] = nk - 1 - r % 3;
                                (fast ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 0, 448, m[v][ri], l[v][ri], O[v][ri]);
                                (fast ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 448, nk, m[v][ri], l[v][ri], O[v][ri]);
                            }
                            if (v && fast == 0) { /* fast mode's clean run needs the zeroed tail back */
                                free(kc), free(vc), free(cache_ks), free(cache_vs);
                                fill(kf, (size_t)cap * HD, 32 + t, 2.0f), fill(vf, (size_t)cap * HD, 37 + t, 1.0f);
                                for (int64_t p = nk; p < cap; p++)
                                    for (int d = 0; d < HD; d++) kf[p * HD + d] = vf[p * HD + d] = 0.0f;
                                kc = make_cache(cap, HD, ts[t], kf, vf, &vc);
                                kv = (cb_kv_view){ .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = ts[t], .hd = HD, .cap = cap };
                            }
                        }
                        for (int ri = 0; ri < NR; ri++) {
                            const int R = Rs[ri];
                            const char *at = cb_kpath_name(path), *dt = cb_dtype_name(ts[t]), *md = fast ? "fast" : "exact";
                            const char *nv = novnni ? " (VNNI off)" : "";
                            cr_assert_eq(memcmp(m[0][ri], m[1][ri], sizeof(float) * R), 0, "%s %s%s %s R %d k1 %lld: running max differs", at, dt, nv, md, R, (long long)nk);
                            cr_assert_eq(memcmp(l[0][ri], l[1][ri], sizeof(float) * R), 0, "%s %s%s %s R %d k1 %lld: running sum differs", at, dt, nv, md, R, (long long)nk);
                            cr_assert_eq(memcmp(O[0][ri], O[1][ri], sizeof(float) * R * HD), 0, "%s %s%s %s R %d k1 %lld: outputs differ", at, dt, nv, md, R, (long long)nk);
                            for (int i = 0; i < R * HD; i++)
                                cr_assert(isfinite(O[0][ri][i]), "%s %s%s %s R %d: a non-finite output", at, dt, nv, md, R);
                            runs++;
                        }
                    }
                    free(kc), free(vc), free(cache_ks), free(cache_vs);
                }
            }
    }
    cb_kernels_set_vnni(true);
    cb_kernels_set_path(cb_kernels_best_path());
    cr_assert_gt(runs, 0);
    free(kf), free(vf);
}

/* An infinite V scale among the keys a row sees (an 8-bit cache written from a row holding inf) reaches
 * that row's output on every path and in both modes, as the portable kernel's scale · value does: no
 * path drops the block silently. */
Test(attention_kernel, infinite_v_scale_reaches_the_output) {
    enum { HD = 128 };
    const int64_t cap = 1024, nk = 1000, bad = 700;
    const cb_dtype ts[] = { CB_F8_E4M3, CB_I8 };
    float *kf = malloc(sizeof(float) * cap * HD), *vf = malloc(sizeof(float) * cap * HD);
    static float Q[8 * HD], O[8 * HD];
    float m[8], l[8];
    int64_t qp[8];
    fill(Q, sizeof Q / sizeof *Q, 41, 0.5f);
    int runs = 0;
    for (cb_kpath path = CB_PATH_PORTABLE; path <= CB_PATH_AMX; path++) {
        if (cb_kernels_set_path(path) != 0) continue;
        for (int t = 0; t < 2; t++) {
            fill(kf, (size_t)cap * HD, 42 + t, 2.0f), fill(vf, (size_t)cap * HD, 44 + t, 1.0f);
            void *vc, *kc = make_cache(cap, HD, ts[t], kf, vf, &vc);
            cache_vs[bad] = INFINITY;
            cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = ts[t], .hd = HD, .cap = cap };
            for (int fast = 0; fast < 2; fast++)
                for (int R = 1; R <= 8; R *= 2) {
                    memset(O, 0, sizeof O);
                    for (int r = 0; r < R; r++) m[r] = -INFINITY, l[r] = 0, qp[r] = nk - 1 - r;
                    (fast ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 0, nk, m, l, O);
                    for (int r = 0; r < R; r++) {
                        bool nonfinite = false;
                        for (int d = 0; d < HD; d++) nonfinite |= !isfinite(O[r * HD + d]);
                        cr_assert(nonfinite, "%s %s %s R %d: row %d's output is finite", cb_kpath_name(path),
                                  cb_dtype_name(ts[t]), fast ? "fast" : "exact", R, r);
                    }
                    runs++;
                }
            free(kc), free(vc), free(cache_ks), free(cache_vs);
        }
    }
    cb_kernels_set_path(cb_kernels_best_path());
    cr_assert_gt(runs, 0);
    free(kf), free(vf);
}

/* ---------- AVX2 kernel (CPUs without AVX-512) ---------- */

/* Every cache dtype against the naive double softmax on the AVX2 path: decode row counts (1, 3, 8) and
 * prefill-sized ones (17, 20), head sizes with hd % 16 == 8 (40, 72) beside 64 and 128, key counts off the
 * 16-key tiles, capacities past the keys and equal to them (narrow last tile, int8's narrow last group). */
Test(attention_avx2, every_dtype_vs_naive_double) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("no AVX2 on this CPU");
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX2), 0);
    const cb_dtype ts[] = { CB_F32, CB_F16, CB_BF16, CB_F8_E4M3, CB_I8 };
    const int hds[] = { 64, 128, 72, 40 };
    const int cases[][4] = { /* G, nq, depth, cap_extra */
                             { 1, 1, 213, 70 }, { 3, 1, 250, 0 },  { 8, 1, 301, 13 }, { 1, 17, 130, 3 },
                             { 4, 5, 77, 0 },   { 17, 1, 90, 40 }, { 2, 3, 0, 0 },    { 1, 1, 0, 5 } };
    for (int t = 0; t < 5; t++)
        for (int h = 0; h < 4; h++)
            for (int c = 0; c < 8; c++) {
                double e = kernel_case(cases[c][0], cases[c][1], cases[c][2], hds[h], ts[t], cases[c][3]);
                cr_assert_lt(e, 2e-6, "avx2 %s hd %d G %d nq %d depth %d: rel err %g", cb_dtype_name(ts[t]), hds[h],
                             cases[c][0], cases[c][1], cases[c][2], e);
            }
    cb_kernels_set_path(cb_kernels_best_path());
}

/* Decode over many blocks (the in-place loops with their prefetches) for every row count up to 8. Over
 * 3000 keys fp32's own error is ~2e-6 (the portable twin's too): held to the portable twin's, with slack. */
Test(attention_avx2, long_decode_rows_vs_naive_double) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("no AVX2 on this CPU");
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX2), 0);
    const cb_dtype ts[] = { CB_F32, CB_F16, CB_BF16, CB_F8_E4M3, CB_I8 };
    for (int t = 0; t < 5; t++)
        for (int R = 1; R <= 8; R++) {
            double e = kernel_case(R, 1, 3000 + 7 * R, 128, ts[t], 9);
            cb_kernels_set_path(CB_PATH_PORTABLE);
            double ep = kernel_case(R, 1, 3000 + 7 * R, 128, ts[t], 9);
            cb_kernels_set_path(CB_PATH_AVX2);
            cr_assert_lt(e, fmax(2e-6, 1.5 * ep), "avx2 %s rows %d: rel err %g (portable %g)", cb_dtype_name(ts[t]), R, e, ep);
        }
    cb_kernels_set_path(cb_kernels_best_path());
}

/* The AVX2 kernel against its portable twin on identical inputs, the online state carried across two
 * calls split at a multiple of 16 that is not one of 64 (so the second call's blocks straddle the first's),
 * the first call starting past 0, the last key off the tiles, a capacity off the tiles, causal rows of
 * which some see none of the second call's keys and one none of either call's (m, l, O untouched: the
 * portable twin's bits). Fast mode is the exact kernel on this path (the same bits) except over an int8
 * cache at decode row counts, where the 16-bit integer loop runs: held within 1e-3 of the row's largest
 * output (m and l 1e-3) and required to differ from exact mode's bits, so that it is the loop that ran. */
Test(attention_avx2, matches_portable_twin_across_split_calls) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("no AVX2 on this CPU");
    const cb_dtype ts[] = { CB_F32, CB_F16, CB_BF16, CB_F8_E4M3, CB_I8 };
    const int rows[] = { 1, 3, 8, 17 };
    const int hds[] = { 64, 128, 72 };
    const int64_t cap = 1003, first = 112, split = 592, nk = 999;
    float *kf = malloc(sizeof(float) * cap * 128), *vf = malloc(sizeof(float) * cap * 128);
    static float Q[17 * 128], O[3][17 * 128];
    float m[3][17], l[3][17];
    int64_t qp[17];
    fill(Q, 17 * 128, 23, 0.3f);
    for (int hi = 0; hi < 3; hi++)
        for (int ti = 0; ti < 5; ti++)
            for (int ri = 0; ri < 4; ri++) {
                const int R = rows[ri], hd = hds[hi];
                fill(kf, (size_t)cap * hd, 21 + hi, 1.7f);
                fill(vf, (size_t)cap * hd, 22 + hi, 1.0f);
                void *vc, *kc = make_cache(cap, hd, ts[ti], kf, vf, &vc);
                cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = ts[ti], .hd = hd, .cap = cap };
                for (int r = 0; r < R; r++) /* the last rows see everything; row 1 sees only the first call; row 2 none */
                    qp[r] = r == 2 && R > 2 ? first - 1 : r == 1 ? split - 40 : nk - 1 - (R - 1 - r);
                for (int p = 0; p < 3; p++) { /* 0: portable, 1: avx2, 2: avx2 fast */
                    cb_kernels_set_path(p ? CB_PATH_AVX2 : CB_PATH_PORTABLE);
                    for (int i = 0; i < R * hd; i++) O[p][i] = 0.25f;
                    for (int r = 0; r < R; r++) m[p][r] = -INFINITY, l[p][r] = 0;
                    void (*f)(int, const float *, const int64_t *, const cb_kv_view *, int64_t, int64_t, float *, float *,
                              float *) = p == 2 ? cb_attn_flash_fast : cb_attn_flash;
                    f(R, Q, qp, &kv, first, split, m[p], l[p], O[p]);
                    f(R, Q, qp, &kv, split, nk, m[p], l[p], O[p]);
                }
                for (int r = 0; r < R; r++) {
                    if (l[0][r] == 0) {
                        cr_assert(l[1][r] == 0 && m[1][r] == -INFINITY, "%s hd %d R %d row %d: touched", cb_dtype_name(ts[ti]), hd, R, r);
                        cr_assert_eq(memcmp(O[0] + r * hd, O[1] + r * hd, sizeof(float) * hd), 0, "row %d: O touched", r);
                        continue;
                    }
                    cr_assert_lt(fabsf(m[0][r] - m[1][r]), 1e-5f * fmaxf(1.0f, fabsf(m[0][r])), "%s hd %d R %d row %d: m",
                                 cb_dtype_name(ts[ti]), hd, R, r);
                    cr_assert_lt(fabsf(l[0][r] - l[1][r]) / l[0][r], 1e-5f, "%s hd %d R %d row %d: l %g vs %g",
                                 cb_dtype_name(ts[ti]), hd, R, r, (double)l[0][r], (double)l[1][r]);
                }
                double e = max_diff(O[1], O[0], (size_t)R * hd);
                cr_assert_lt(e, 1e-5, "%s hd %d R %d: rel diff %g", cb_dtype_name(ts[ti]), hd, R, e);
                if (ts[ti] == CB_I8 && R <= 8) {
                    for (int r = 0; r < R; r++) {
                        if (l[1][r] == 0) {
                            cr_assert(l[2][r] == 0 && m[2][r] == -INFINITY, "int8 fast hd %d R %d row %d: touched", hd, R, r);
                            cr_assert_eq(memcmp(O[2] + r * hd, O[1] + r * hd, sizeof(float) * hd), 0, "int8 fast row %d: O touched", r);
                            continue;
                        }
                        cr_assert_leq(fabsf(m[2][r] - m[1][r]), 1e-3f * fmaxf(1.0f, fabsf(m[1][r])), "int8 fast hd %d R %d row %d: m", hd, R, r);
                        cr_assert_leq(fabsf(l[2][r] - l[1][r]), 1e-3f * l[1][r], "int8 fast hd %d R %d row %d: l", hd, R, r);
                        float mag = 0;
                        for (int d = 0; d < hd; d++) mag = fmaxf(mag, fabsf(O[1][r * hd + d] / l[1][r]));
                        for (int d = 0; d < hd; d++)
                            cr_assert_leq(fabsf(O[2][r * hd + d] / l[2][r] - O[1][r * hd + d] / l[1][r]), 1e-3f * mag,
                                          "int8 fast hd %d R %d row %d dim %d", hd, R, r, d);
                    }
                    cr_assert_neq(memcmp(O[1], O[2], sizeof(float) * R * hd), 0, "int8 hd %d R %d: fast gave exact bits", hd, R);
                    free(kc), free(vc), free(cache_ks), free(cache_vs);
                    continue;
                }
                cr_assert_eq(memcmp(m[1], m[2], sizeof(float) * R), 0, "%s hd %d R %d: fast m differs", cb_dtype_name(ts[ti]), hd, R);
                cr_assert_eq(memcmp(l[1], l[2], sizeof(float) * R), 0, "%s hd %d R %d: fast l differs", cb_dtype_name(ts[ti]), hd, R);
                cr_assert_eq(memcmp(O[1], O[2], sizeof(float) * R * hd), 0, "%s hd %d R %d: fast O differs", cb_dtype_name(ts[ti]), hd, R);
                free(kc), free(vc), free(cache_ks), free(cache_vs);
            }
    cb_kernels_set_path(cb_kernels_best_path());
    free(kf), free(vf);
}

/* fp8 on the AVX2 path has two decodes of the cache: through f16, and (where subnormal FMA inputs cost
 * nothing, DAZ off for the call) by bit placement against Q · 2^96. Forced either way they give the same bits:
 * caches of subnormal-heavy codes, of every code, and of quantised values, 1..8 rows, calls split at a
 * multiple of 16 that is not one of 64 (blocks of fewer than 64 keys read in place), a row that sees none of
 * the second call's keys and one that sees none of either (O untouched); both against the portable twin;
 * the caller's MXCSR (DAZ and FTZ on, as every kernel call runs) comes back unchanged; the placed route
 * ran (its call count) when forced, and not when the test is forced on. */
Test(attention_avx2, fp8_placed_decode_same_bits_as_f16_route) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("no AVX2 on this CPU");
    const int hds[] = { 64, 128 };
    const int64_t cap = 1000, split = 592, nk = 990;
    float Q[8 * 128], O[2][8 * 128], m[2][8], l[2][8], Op[8 * 128], mp[8], lp[8];
    int64_t qp[8];
    fill(Q, 8 * 128, 31, 0.5f);
    float *kf = malloc(sizeof(float) * cap * 128), *vf = malloc(sizeof(float) * cap * 128);
    for (int hi = 0; hi < 2; hi++) {
        const int hd = hds[hi];
        uint8_t *k[3], *v[3];
        float *ks[3], *vs[3];
        raw_fp8_cache(cap, hd, sub_code, NULL, 1.0f, &k[0], &v[0], &ks[0], &vs[0]);
        raw_fp8_cache(cap, hd, every_code, NULL, 1.0f, &k[1], &v[1], &ks[1], &vs[1]);
        fill(kf, (size_t)cap * hd, 41 + hi, 1.7f), fill(vf, (size_t)cap * hd, 43 + hi, 1.0f);
        void *vc, *kc = make_cache(cap, hd, CB_F8_E4M3, kf, vf, &vc);
        k[2] = kc, v[2] = vc, ks[2] = cache_ks, vs[2] = cache_vs;
        for (int c = 0; c < 3; c++)
            for (int R = 1; R <= 8; R++) {
                cb_kv_view kv = { .k = k[c], .v = v[c], .ks = ks[c], .vs = vs[c], .dtype = CB_F8_E4M3, .hd = hd, .cap = cap };
                for (int r = 0; r < R; r++) /* row 1: not the second call's keys; row 2: no key at all */
                    qp[r] = r == 1 ? split - 40 : r == 2 && R > 3 ? -1 : nk - 1 - (R - 1 - r);
                for (int f = 0; f < 3; f++) { /* 0: placed, 1: through f16, 2: portable */
                    float *o = f < 2 ? O[f] : Op, *mm = f < 2 ? m[f] : mp, *ll = f < 2 ? l[f] : lp;
                    cb_kernels_set_path(f < 2 ? CB_PATH_AVX2 : CB_PATH_PORTABLE);
                    cb_q8_avx2_force_fp8_subnormal_test(f == 1);
                    for (int i = 0; i < 8 * 128; i++) o[i] = 0.25f;
                    for (int r = 0; r < R; r++) mm[r] = -INFINITY, ll[r] = 0;
                    const uint64_t calls = cb_attn_avx2_fp8_placed_calls();
                    const unsigned csr = _mm_getcsr();
                    _mm_setcsr(csr | 0x8040u);
                    const unsigned before = _mm_getcsr() & ~0x3fu;
                    cb_attn_flash(R, Q, qp, &kv, 0, split, mm, ll, o);
                    cb_attn_flash(R, Q, qp, &kv, split, nk, mm, ll, o);
                    const unsigned after = _mm_getcsr() & ~0x3fu;
                    _mm_setcsr(csr);
                    cr_assert_eq(after, before, "cache %d hd %d R %d decode %d: MXCSR %#x -> %#x", c, hd, R, f, before, after);
                    if (f < 2)
                        cr_assert_eq(cb_attn_avx2_fp8_placed_calls() - calls, f == 0 ? 2u : 0u, "cache %d hd %d R %d decode %d: placed calls", c, hd, R, f);
                }
                if (R > 3)
                    for (int d = 0; d < hd; d++) cr_assert(O[0][2 * hd + d] == 0.25f, "cache %d hd %d R %d: unseen row touched", c, hd, R);
                cb_q8_avx2_force_fp8_subnormal_test(-1);
                cr_assert_eq(memcmp(m[0], m[1], sizeof(float) * R), 0, "cache %d hd %d R %d: running max differs", c, hd, R);
                cr_assert_eq(memcmp(l[0], l[1], sizeof(float) * R), 0, "cache %d hd %d R %d: running sum differs", c, hd, R);
                cr_assert_eq(memcmp(O[0], O[1], sizeof(float) * R * hd), 0, "cache %d hd %d R %d: outputs differ", c, hd, R);
                double e = max_diff(O[0], Op, (size_t)R * hd);
                cr_assert_lt(e, 1e-5, "cache %d hd %d R %d: vs portable %g", c, hd, R, e);
            }
        for (int c = 0; c < 3; c++) free(k[c]), free(v[c]), free(ks[c]), free(vs[c]);
    }
    free(kf), free(vf);
    cb_kernels_set_path(cb_kernels_best_path());
}

/* Rows decoded together give each row's bits alone, on the AVX2 path: every output is the same chain of
 * products in the same order whatever the row grouping, while the loops differ (one row: each K load serves
 * every dim it holds; int8 from 2 rows: Q pre-broadcast and memory-operand FMAs). Every cache dtype, R = 2..8,
 * a split call with a partial block and a narrow last tile. */
Test(attention_avx2, rows_together_same_bits_as_each_row_alone) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("no AVX2 on this CPU");
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AVX2), 0);
    const int hd = 128;
    const int64_t cap = 1003, nk = 1000, split = 448;
    const cb_dtype ts[] = { CB_F32, CB_F16, CB_BF16, CB_F8_E4M3, CB_I8 };
    float *kf = malloc(sizeof(float) * cap * hd), *vf = malloc(sizeof(float) * cap * hd);
    float Q[8 * 128], O[8 * 128], O1[128], m[8], l[8], m1, l1;
    int64_t qp[8];
    fill(Q, sizeof Q / sizeof *Q, 31, 0.5f);
    for (int c = 0; c < 5; c++) {
        fill(kf, (size_t)cap * hd, 32 + c, 2.0f), fill(vf, (size_t)cap * hd, 37 + c, 1.0f);
        void *vc, *kc = make_cache(cap, hd, ts[c], kf, vf, &vc);
        cb_kv_view kv = { .k = kc, .v = vc, .ks = cache_ks, .vs = cache_vs, .dtype = ts[c], .hd = hd, .cap = cap };
        for (int R = 2; R <= 8; R++) {
            memset(O, 0, sizeof O);
            for (int r = 0; r < R; r++) m[r] = -INFINITY, l[r] = 0, qp[r] = nk - 1 - 5 * r;
            cb_attn_flash(R, Q, qp, &kv, 0, split, m, l, O);
            cb_attn_flash(R, Q, qp, &kv, split, nk, m, l, O);
            for (int r = 0; r < R; r++) {
                memset(O1, 0, sizeof O1);
                m1 = -INFINITY, l1 = 0;
                cb_attn_flash(1, Q + r * hd, &qp[r], &kv, 0, split, &m1, &l1, O1);
                cb_attn_flash(1, Q + r * hd, &qp[r], &kv, split, nk, &m1, &l1, O1);
                cr_assert(m1 == m[r] && l1 == l[r], "%s R %d row %d: m %g / %g, l %g / %g", cb_dtype_name(ts[c]), R, r,
                          (double)m[r], (double)m1, (double)l[r], (double)l1);
                cr_assert_eq(memcmp(O + r * hd, O1, sizeof O1), 0, "%s R %d row %d: output differs from the row alone",
                             cb_dtype_name(ts[c]), R, r);
            }
        }
        free(kc), free(vc), free(cache_ks), free(cache_vs);
    }
    cb_kernels_set_path(cb_kernels_best_path());
    free(kf), free(vf);
}

/* fp8 codes widened through f16 on the AVX2 path: caches with E4M3 subnormal codes and with all 256 codes
 * (NaN codes as 0), decode and prefill row counts, split calls, against the portable twin. */
Test(attention_avx2, fp8_subnormal_and_every_code_vs_portable) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("no AVX2 on this CPU");
    const int64_t cap = 1000, split = 448, nk = 990;
    static float Q[17 * 128], O[2][17 * 128];
    float m[2][17], l[2][17];
    int64_t qp[17];
    fill(Q, 17 * 128, 31, 0.5f);
    for (int hd = 64; hd <= 128; hd += 64)
        for (int c = 0; c < 2; c++) {
            uint8_t *k, *v;
            float *ks, *vs;
            raw_fp8_cache(cap, hd, c ? every_code : sub_code, NULL, 1.0f, &k, &v, &ks, &vs);
            cb_kv_view kv = { .k = k, .v = v, .ks = ks, .vs = vs, .dtype = CB_F8_E4M3, .hd = hd, .cap = cap };
            for (int R = 1; R <= 17; R += 8) {
                for (int p = 0; p < 2; p++) {
                    cb_kernels_set_path(p ? CB_PATH_AVX2 : CB_PATH_PORTABLE);
                    memset(O[p], 0, sizeof O[p]);
                    for (int r = 0; r < R; r++) m[p][r] = -INFINITY, l[p][r] = 0, qp[r] = nk - 1 - (R - 1 - r);
                    cb_attn_flash(R, Q, qp, &kv, 0, split, m[p], l[p], O[p]);
                    cb_attn_flash(R, Q, qp, &kv, split, nk, m[p], l[p], O[p]);
                }
                double e = max_diff(O[1], O[0], (size_t)R * hd);
                cr_assert_lt(e, 1e-5, "cache %d hd %d R %d: vs portable %g", c, hd, R, e);
                for (int r = 0; r < R; r++)
                    cr_assert_lt(fabsf(l[0][r] - l[1][r]) / l[0][r], 1e-5f, "cache %d hd %d R %d row %d: l", c, hd, R, r);
            }
            free(k), free(v), free(ks), free(vs);
        }
    cb_kernels_set_path(cb_kernels_best_path());
}
