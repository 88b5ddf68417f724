/* ctxbench-bench entry: runs the registered benchmark sections named on the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engines/common.h"
#include "bench.h"

#define MAX_SECTIONS 16
static const cb_bench_section *sections[MAX_SECTIONS];
static int n_sections;

void cb_bench_register(const cb_bench_section *s) {
    if (n_sections < MAX_SECTIONS) sections[n_sections++] = s;
}

double cb_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cb_bench_median(void (*fn)(void *), void *arg, int min_reps, int max_reps, double min_time) {
    double t[256];
    if (max_reps > 256) max_reps = 256;
    fn(arg); /* warm-up */
    int n = 0;
    double start = cb_bench_now();
    while (n < max_reps && (n < min_reps || cb_bench_now() - start < min_time)) {
        double t0 = cb_bench_now();
        fn(arg);
        t[n++] = cb_bench_now() - t0;
    }
    return cb_bench_median_of(t, n);
}

double cb_bench_median_of(double *t, int n) {
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

const cb_bench_gemm_shape CB_BENCH_PREFILL_SHAPES[] = {
    { "xs q/o", 512, 512 },      { "xs gate/up", 1792, 512 }, { "xs down", 512, 1792 },     { "s q/o", 1024, 1024 },
    { "s gate/up", 3584, 1024 }, { "s down", 1024, 3584 },    { "9b in_proj", 16768, 4096 }, { "9b gate/up", 14336, 4096 },
    { "9b down", 4096, 14336 },
};
const int CB_BENCH_N_PREFILL_SHAPES = (int)(sizeof CB_BENCH_PREFILL_SHAPES / sizeof CB_BENCH_PREFILL_SHAPES[0]);

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench-bench [--list] [SECTION [ARGS...]]   (default section: kernels)\nsections:\n");
    for (int i = 0; i < n_sections; i++) fprintf(f, "  %-10s %s\n", sections[i]->name, sections[i]->help);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "kernels";
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "--list")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < n_sections; i++)
        if (!strcmp(sections[i]->name, name)) return sections[i]->run(argc > 1 ? argc - 1 : 0, argv + (argc > 1));
    fprintf(stderr, "ctxbench-bench: unknown section '%s'\n", name);
    usage(stderr);
    return 2;
}

void cb_bench_weights(size_t n, uint16_t **bf16, float **f32) {
    *bf16 = malloc(n * 2);
    *f32 = malloc(n * 4);
    cb_rng r = { 42 };
    for (size_t i = 0; i < n; i++) {
        (*bf16)[i] = cb_f32_to_bf16((float)((int)(cb_rng_next(&r) >> 54) - 512) * (1.0f / 4096.0f));
        (*f32)[i] = cb_bf16_to_f32((*bf16)[i]);
    }
}

float *cb_bench_activations(int M, int K) {
    float *x = malloc((size_t)M * K * 4);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = (float)((int)(i * 2654435761u % 1000) - 500) * 1e-3f;
    return x;
}
