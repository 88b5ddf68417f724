/* `attn-prefill` section: the flash-attention kernel as a 512-token prefill chunk at depth calls it
 * (engines/layers/attention_layer.c): one KV head of a bf16 cache holding depth + 512 positions, GQA 4 (the
 * xs / s presets), so 32 calls of 64 rows (16 tokens × 4 query heads), each over keys [0, its last
 * visible key]. Per point: ms for the 32 calls (median of round-robin rounds over the paths), useful
 * GFLOP/s (4·hd flops per visible (row, key): Q·Kᵀ and P·V), and on the amx path the % of the tile-loop
 * peak (harness/measure/roofs_amx.c) sampled in the same rounds; amx-fast: cb_attn_flash_fast (fast mode).
 * docs/performance.md, "AMX attention prefill". */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/attention.h"
#include "../engines/kernels/kernels.h"
#include "../harness/measure/roofs.h"
#include "../harness/measure/workload.h"
#include "bench.h"

#define CHUNK 512
#define GQA 4
#define ROUNDS_MAX 15

typedef struct {
    int hd, threads;
    bool fast; /* cb_attn_flash_fast (fast mode) instead of cb_attn_flash */
    int64_t depth, cap;
    uint16_t *k, *v;
    float *Q; /* [CHUNK][GQA][hd], already scaled */
} ap_args;

static void ap_run(void *p) {
    const ap_args *a = p;
    const int bq = CB_FLASH_MAX_ROWS / GQA, items = CHUNK / bq;
#pragma omp parallel for schedule(dynamic, 1) num_threads(a->threads)
    for (int it = 0; it < items; it++) {
        const int i0 = it * bq, R = GQA * bq;
        float Q[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
        float O[CB_FLASH_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
        float m[CB_FLASH_MAX_ROWS], l[CB_FLASH_MAX_ROWS];
        int64_t qp[CB_FLASH_MAX_ROWS];
        for (int g = 0; g < GQA; g++)
            for (int i = 0; i < bq; i++) {
                const int r = g * bq + i;
                memcpy(Q + (size_t)r * a->hd, a->Q + ((size_t)(i0 + i) * GQA + g) * a->hd, sizeof(float) * (size_t)a->hd);
                qp[r] = a->depth + i0 + i, m[r] = -INFINITY, l[r] = 0;
            }
        memset(O, 0, sizeof(float) * (size_t)R * a->hd);
        cb_kv_view kv = { .k = a->k, .v = a->v, .dtype = CB_BF16, .hd = a->hd, .cap = a->cap };
        (a->fast ? cb_attn_flash_fast : cb_attn_flash)(R, Q, qp, &kv, 0, a->depth + i0 + bq, m, l, O);
    }
}


static int parse_list(const char *s, int64_t *out, int max) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *t = strtok(buf, ","); t && n < max; t = strtok(NULL, ","))
        if (cb_parse_size(t, &out[n++])) return -1;
    return n;
}

static int run_attn_prefill(int argc, char **argv) {
    int64_t depths[8] = { 4096, 16384, 65536 }, hds[4] = { 64, 128 };
    int nd = 3, nh = 2, threads = 1, portable_max = 4096;
    double budget = 2.0;
    const char *paths = "portable,avx512,amx,amx-fast";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--depths") && i + 1 < argc) nd = parse_list(argv[++i], depths, 8);
        else if (!strcmp(argv[i], "--hd") && i + 1 < argc) nh = parse_list(argv[++i], hds, 4);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--paths") && i + 1 < argc) paths = argv[++i];
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = atof(argv[++i]);
        else if (!strcmp(argv[i], "--portable-max") && i + 1 < argc) portable_max = atoi(argv[++i]);
        else {
            printf("ctxbench-bench attn-prefill [--depths 4K,16K,64K] [--hd 64,128] [--threads 1] "
                   "[--paths portable,avx512,amx,amx-fast] [--budget S (2)] [--portable-max DEPTH (4K)]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (nd <= 0 || nh <= 0 || threads < 1) { fprintf(stderr, "attn-prefill: bad --depths, --hd or --threads\n"); return 2; }
    for (int h = 0; h < nh; h++)
        if (hds[h] < 32 || hds[h] > CB_FLASH_MAX_HD || hds[h] % 32) { fprintf(stderr, "attn-prefill: --hd must be a multiple of 32 in [32, %d]\n", CB_FLASH_MAX_HD); return 2; }
    /* columns: exact mode on each path, then fast mode on the amx path (the only one where it differs) */
    const cb_kpath all[4] = { CB_PATH_PORTABLE, CB_PATH_AVX512, CB_PATH_AMX, CB_PATH_AMX };
    const char *const name[4] = { "portable", "avx512", "amx", "amx-fast" };
    cb_kpath use[4];
    bool fast[4];
    int np = 0;
    char want[128];
    snprintf(want, sizeof want, ",%s,", paths);
    for (int p = 0; p < 4; p++) {
        char key[16];
        snprintf(key, sizeof key, ",%s,", name[p]);
        if (strstr(want, key) && all[p] <= cb_kernels_best_path()) fast[np] = p == 3, use[np++] = all[p];
    }
    if (!np) { fprintf(stderr, "attn-prefill: no path of --paths %s runs here\n", paths); return 2; }
    const bool amx = use[np - 1] == CB_PATH_AMX;
    printf("ctxbench attn-prefill benchmark — one KV head, bf16 cache, %d-token chunk, GQA %d: %d calls of %d rows, "
           "%d thread%s; ms per chunk (median of round-robin rounds), useful GFLOP/s (4·hd per visible row·key)%s\n",
           CHUNK, GQA, CHUNK * GQA / CB_FLASH_MAX_ROWS, CB_FLASH_MAX_ROWS, threads, threads > 1 ? "s" : "",
           amx ? ", % of the tile-loop peak pk sampled in each round" : "");
    printf("   hd  depth |");
    for (int p = 0; p < np; p++) printf(" %16s ms  GF/s%s", fast[p] ? "amx-fast" : cb_kpath_name(use[p]),
                                       use[p] == CB_PATH_AMX ? "   %pk" : "");
    printf("%s | rounds\n", amx ? "     pk" : "");
    for (int h = 0; h < nh; h++)
        for (int di = 0; di < nd; di++) {
            ap_args a = { .hd = (int)hds[h], .threads = threads, .depth = depths[di], .cap = depths[di] + CHUNK };
            const size_t n = (size_t)a.cap * a.hd;
            a.k = cb_calloc(n * 2, NULL), a.v = cb_calloc(n * 2, NULL);
            a.Q = malloc(sizeof(float) * CHUNK * GQA * (size_t)a.hd);
            if (!a.k || !a.v || !a.Q) { fprintf(stderr, "attn-prefill: out of memory\n"); return 1; }
            cb_rng r = { 7 };
            for (size_t j = 0; j < n; j++) a.k[j] = cb_f32_to_bf16(1.7f * cb_rng_uniform(&r)), a.v[j] = cb_f32_to_bf16(cb_rng_uniform(&r));
            const float sc = 1.0f / sqrtf((float)a.hd);
            for (size_t j = 0; j < (size_t)CHUNK * GQA * a.hd; j++) a.Q[j] = sc * 1.5f * cb_rng_uniform(&r);
            double flops = 0; /* visible (row, key) pairs × 4 hd */
            for (int i = 0; i < CHUNK; i++) flops += (double)GQA * (double)(a.depth + i + 1) * 4.0 * a.hd;
            double t[4][ROUNDS_MAX], pk[ROUNDS_MAX];
            bool on[4];
            for (int p = 0; p < np; p++) {
                on[p] = use[p] != CB_PATH_PORTABLE || a.depth <= portable_max;
                if (!on[p]) continue;
                cb_kernels_set_path(use[p]);
                a.fast = fast[p];
                ap_run(&a); /* warm-up */
            }
            int rounds = 0;
            const double start = cb_bench_now();
            while (rounds < ROUNDS_MAX && (rounds < 3 || cb_bench_now() - start < budget)) {
                for (int p = 0; p < np; p++) {
                    if (!on[p]) continue;
                    cb_kernels_set_path(use[p]);
                    a.fast = fast[p];
                    const double t0 = cb_bench_now();
                    ap_run(&a);
                    t[p][rounds] = cb_bench_now() - t0;
                }
                if (amx) pk[rounds] = cb_bench_tile_peak_sample(false, threads);
                rounds++;
            }
            printf("%5d %6lld |", a.hd, (long long)a.depth);
            const double peak = amx ? cb_bench_median_of(pk, rounds) : 0;
            for (int p = 0; p < np; p++) {
                if (!on[p]) { printf(" %19s %5s", "-", "-"); continue; }
                const double s = cb_bench_median_of(t[p], rounds), gf = flops / s * 1e-9;
                printf(" %19.2f %5.0f", 1e3 * s, gf);
                if (use[p] == CB_PATH_AMX) printf(" %5.1f", 100 * gf / peak);
            }
            if (amx) printf(" %6.0f", peak);
            printf(" | %d\n", rounds);
            fflush(stdout);
            cb_free(a.k), cb_free(a.v), free(a.Q);
        }
    cb_kernels_set_path(cb_kernels_best_path());
    return 0;
}

static const cb_bench_section attn_prefill_section = {
    "attn-prefill", "prefill attention kernel: 512-token chunk at depth, per path [--depths --hd --threads --paths]",
    run_attn_prefill };
CB_REGISTER_BENCH(attn_prefill_section)
