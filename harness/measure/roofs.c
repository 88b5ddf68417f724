/* Roof measurement (see roofs.h): the FMA loop of the kernel path (AVX-512, AVX2 or the portable twin) on 1 and
 * on N threads, then the triad on 1 and on N threads, each repeated until its share of the time budget is
 * spent; the best repetition is the roof. */
#include "roofs.h"

#include <omp.h>
#include <stdlib.h>

#include "../../engines/kernels/kernels.h"

#define AMX_ITERS 1000000L   /* ≈ 25 ms per repetition at 2.6 TFLOP/s per core (thread start-up negligible) */
#define FMA_ITERS 4000000L   /* ≈ 3.5 ms per repetition at 220 GFLOP/s per core: many repetitions */
#define TRIAD_N (32L << 20) /* floats per array: 3 × 128 MiB (CB_ROOFS_TRIAD_BYTES), far beyond any L3 */
_Static_assert(3 * TRIAD_N * (long)sizeof(float) == CB_ROOFS_TRIAD_BYTES, "roofs.h states the triad's bytes");

typedef struct {
    int threads;
    bool avx512, avx2;
    float *a, *b, *c;
    long n;      /* triad elements */
    double work; /* flops or bytes of one repetition */
} roof_job;

static void run_fma(roof_job *j) {
    double f = 0;
    const bool avx512 = j->avx512, avx2 = j->avx2;
#pragma omp parallel num_threads(j->threads) reduction(+ : f)
    {
        float s;
        f += avx512 ? cb_roofs_fma_avx512(FMA_ITERS, &s)
             : avx2 ? cb_roofs_fma_avx2(FMA_ITERS, &s)
                    : cb_roofs_fma_ref(FMA_ITERS, &s);
    }
    j->work = f;
}

static void run_amx(roof_job *j) {
    double f = 0;
#pragma omp parallel num_threads(j->threads) reduction(+ : f)
    {
        float s;
        f += cb_roofs_amx_bf16(AMX_ITERS, &s);
    }
    j->work = f;
}

static void run_triad(roof_job *j) {
    float *restrict a = j->a;
    const float *restrict b = j->b, *restrict c = j->c;
    const long n = j->n;
#pragma omp parallel for schedule(static) num_threads(j->threads)
    for (long i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
    j->work = 12.0 * (double)n;
}

/* Best rate (work / time, in units of 1e9 per second) over ≥ 3 repetitions after one warm-up, until
 * `budget` seconds are spent. */
static double best_rate(void (*fn)(roof_job *), roof_job *j, double budget) {
    fn(j);
    double best = 0, start = cb_now_seconds();
    for (int n = 0; n < 3 || cb_now_seconds() - start < budget; n++) {
        double t0 = cb_now_seconds();
        fn(j);
        double dt = cb_now_seconds() - t0;
        if (dt > 0 && j->work / dt > best) best = j->work / dt;
        if (n > 10000) break;
    }
    return best * 1e-9;
}

/* The triad arrays, first touched by the threads that will stream them; -1 with err (naming `who`). */
static int triad_arrays(roof_job *j, int threads, const char *who, cb_err *err) {
    j->n = TRIAD_N;
    j->a = malloc(sizeof(float) * (size_t)TRIAD_N);
    j->b = malloc(sizeof(float) * (size_t)TRIAD_N);
    j->c = malloc(sizeof(float) * (size_t)TRIAD_N);
    if (!j->a || !j->b || !j->c) {
        free(j->a), free(j->b), free(j->c);
        cb_err_set(err, "%s: cannot allocate the triad arrays (3 x %ld MiB)", who, TRIAD_N * 4 >> 20);
        return -1;
    }
    float *a = j->a, *b = j->b, *c = j->c;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long i = 0; i < TRIAD_N; i++) a[i] = 0, b[i] = 1, c[i] = 2;
    return 0;
}

int cb_roofs_measure(int threads, double seconds, cb_roofs *out, cb_err *err) {
    double t0 = cb_now_seconds();
    if (threads <= 0) threads = omp_get_max_threads();
    roof_job j = { .avx512 = cb_kernels_path() >= CB_PATH_AVX512, .avx2 = cb_kernels_path() == CB_PATH_AVX2 };
    out->threads = threads;
    out->loop = j.avx512 ? "avx512" : j.avx2 ? "avx2" : "portable";
    if (triad_arrays(&j, threads, "roofs", err)) return -1;
    const bool amx = cb_kernels_path() == CB_PATH_AMX;
    double share = seconds / (amx ? 6 : 4);
    j.threads = 1;
    out->fma_gflops_1t = best_rate(run_fma, &j, share);
    j.threads = threads;
    out->fma_gflops = best_rate(run_fma, &j, share);
    out->amx_gflops_1t = out->amx_gflops = 0;
    if (amx) {
        j.threads = 1;
        out->amx_gflops_1t = best_rate(run_amx, &j, share);
        j.threads = threads;
        out->amx_gflops = best_rate(run_amx, &j, share);
    }
    j.threads = 1;
    out->triad_gbps_1t = best_rate(run_triad, &j, share);
    j.threads = threads;
    out->triad_gbps = best_rate(run_triad, &j, share);
    free(j.a), free(j.b), free(j.c);
    out->seconds = cb_now_seconds() - t0;
    return 0;
}

double cb_roofs_triad_probe(int threads, double seconds, cb_err *err) {
    roof_job j = { .threads = threads > 0 ? threads : omp_get_max_threads() };
    if (triad_arrays(&j, j.threads, "bandwidth probe", err)) return -1;
    double gbps = best_rate(run_triad, &j, seconds);
    free(j.a), free(j.b), free(j.c);
    return gbps;
}
