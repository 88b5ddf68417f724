/* `chunk` section: a 512-token prefill chunk appended at a synthetic depth (the prefill_chunk phase), exact
 * mode, bf16 weights and KV, the same preset model and process under each kernel path side by side: the
 * AVX-512 path, the amx path packing weights per call (CTXBENCH_AMX_PACK=0's engines) and the amx path on
 * the engine's tile copies, interleaved round-robin. Tokens/s, medians of the repetitions after one warm-up
 * round, each repetition from the same synthetic state. docs/performance.md "AMX". Without AMX only the AVX-512 column runs.
 * --int8: int8 weights in fast mode instead (docs/performance.md "int8 weights on AMX"): the AVX-512 path
 * (VNNI), the amx path with the int8 GEMMs kept on VNNI (crossover out of reach: isolates the int8 GEMM from
 * the other kernels the amx path changes) and the amx path with the int8 GEMMs on AMX-INT8 (tile copies).
 * --fast: bf16 weights in fast mode (docs/performance.md "Mamba2 SSD on the tiles").
 * --profile: after each point, ms per chunk in each part of the layers (counters.h cb_prof_part), per path. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/counters.h"
#include "../engines/engine.h"
#include "../engines/kernels/kernels.h"
#include "../engines/kernels/kernels_amx.h"
#include "../engines/model/presets.h"
#include "bench.h"

enum { P_AVX512, P_PERCALL, P_TILES, NP };
static const char *const PNAME_BF16[NP] = { "avx512", "amx per-call", "amx tiles" };
static const char *const PNAME_INT8[NP] = { "avx512", "amx int8-on-vnni", "amx-int8 tiles" };
static const char *const *PNAME = PNAME_BF16;
static bool int8_fast; /* --int8 */
static bool bf16_fast; /* --fast: bf16 weights in fast mode */
static bool profile;   /* --profile */
static double prof_ms[NP][CB_PROF_N]; /* the last point's mean ms per chunk per part */
static double peak_pk;                /* the last point's 1-thread tile-loop peak, median of one sample per round */



static void set_path(int p) {
    cb_kernels_set_path(p == P_AVX512 ? CB_PATH_AVX512 : CB_PATH_AMX);
    if (int8_fast && cb_kernels_best_path() == CB_PATH_AMX)
        cb_matmul_q8_amx_min_m(p == P_PERCALL ? 1 << 30 : CB_AMX8_MIN_M_DEFAULT);
}

/* A chunk of n tokens at depth on each path in use, the paths interleaved round-robin (one warm-up round,
 * then reps rounds, every repetition from the same synthetic state), so a drift of the machine hits all
 * paths alike. sec[p]: median seconds (0: not run or failed); ms[p][0] / ms[p][1]: mean wall ms per chunk
 * in the flash attention / the chunked SSD (the engines' timers, counters.h). */
static void time_chunks(const cb_model *m, const bool *use, int64_t depth, int n, int threads, int reps,
                        double sec[NP], double ms[NP][2]) {
    const cb_engine_ops *ops = cb_engine_for_config(&m->cfg);
    cb_engine *e[NP] = { 0 };
    cb_err err = { 0 };
    for (int p = 0; p < NP; p++) {
        sec[p] = ms[p][0] = ms[p][1] = 0;
        memset(prof_ms[p], 0, sizeof prof_ms[p]);
        if (!use[p]) continue;
        set_path(p);
        cb_engine_opts o;
        cb_engine_opts_default(&o);
        o.threads = threads;
        o.max_context = depth + n;
        o.tile_weights = p == P_TILES;
        if (int8_fast || bf16_fast) o.mode = CB_MODE_FAST;
        if (ops->create(m, &o, &e[p], &err)) {
            fprintf(stderr, "chunk: %s (%s): %s\n", m->name, PNAME[p], err.msg);
            e[p] = NULL;
        }
    }
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) tok[i] = (int32_t)((i * 7919u + 13u) % (unsigned)m->cfg.vocab);
    double t[NP][16], pk[16];
    int got[NP] = { 0 }, npk = 0;
    for (int r = 0; r <= reps && r < 16; r++) {
        if (cb_kernels_best_path() == CB_PATH_AMX) pk[npk++] = cb_bench_tile_peak_sample(false, 1);
        for (int p = 0; p < NP; p++) {
            if (!e[p]) continue;
            set_path(p);
            if (ops->fill_synthetic(e[p], 0, depth, 1, &err)) goto fail;
            long long a0 = cb_ctr.attention_ns, s0 = cb_ctr.ssd_ns, pf0[CB_PROF_N];
            memcpy(pf0, cb_prof_ns, sizeof pf0);
            double t0 = cb_bench_now();
            if (ops->prefill(e[p], 0, tok, n, NULL, false, &err)) goto fail;
            if (r == 0) continue; /* warm-up */
            t[p][got[p]++] = cb_bench_now() - t0;
            ms[p][0] += (double)(cb_ctr.attention_ns - a0) * 1e-6, ms[p][1] += (double)(cb_ctr.ssd_ns - s0) * 1e-6;
            for (int k = 0; k < CB_PROF_N; k++) prof_ms[p][k] += (double)(cb_prof_ns[k] - pf0[k]) * 1e-6;
            continue;
        fail:
            fprintf(stderr, "chunk: %s (%s): %s\n", m->name, PNAME[p], err.msg);
            ops->destroy(e[p]);
            e[p] = NULL;
        }
    }
    peak_pk = npk ? cb_bench_median_of(pk, npk) : 0;
    for (int p = 0; p < NP; p++) {
        if (e[p] && got[p]) {
            sec[p] = cb_bench_median_of(t[p], got[p]), ms[p][0] /= got[p], ms[p][1] /= got[p];
            for (int k = 0; k < CB_PROF_N; k++) prof_ms[p][k] /= got[p];
        }
        if (e[p]) ops->destroy(e[p]);
    }
    free(tok);
}

/* One line per path that ran: ms per chunk in each part with a non-zero time, then the sum of the parts
 * (the split is inside the GEMM parts, so it is not added) against the chunk's median wall time. */
static void print_profile(const bool *use, const double sec[NP]) {
    for (int p = 0; p < NP; p++) {
        if (!use[p] || sec[p] <= 0) continue;
        double sum = 0;
        printf("  %-16s", PNAME[p]);
        for (int k = 0; k < CB_PROF_N; k++) {
            if (prof_ms[p][k] < 0.05) continue;
            printf(" %s %.1f", cb_prof_name[k], prof_ms[p][k]);
            if (k != CB_PROF_SPLIT) sum += prof_ms[p][k];
        }
        printf(" | parts %.1f of %.1f ms\n", sum, sec[p] * 1e3);
    }
}

static int parse_list(const char *s, char out[][32], int cap) {
    int n = 0;
    while (*s && n < cap) {
        const char *c = strchr(s, ',');
        size_t len = c ? (size_t)(c - s) : strlen(s);
        if (len == 0 || len >= 32) return -1;
        memcpy(out[n], s, len);
        out[n++][len] = 0;
        if (!c) break;
        s = c + 1;
    }
    return n;
}

static int64_t parse_depth(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end == 'K' || *end == 'k') v *= 1024, end++;
    return *end || v < 0 ? -1 : v;
}

static int run_chunk(int argc, char **argv) {
    char models[16][32], depths[8][32], thr[8][32];
    int nm = parse_list("transformer-xs,bamba-xs,mamba2-xs", models, 16), nd = parse_list("4K", depths, 8),
        nt = parse_list("2", thr, 8), reps = 2;
    bool paths[NP] = { true, true, true };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc) nm = parse_list(argv[++i], models, 16);
        else if (!strcmp(argv[i], "--depths") && i + 1 < argc) nd = parse_list(argv[++i], depths, 8);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nt = parse_list(argv[++i], thr, 8);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-per-call")) paths[P_PERCALL] = false;
        else if (!strcmp(argv[i], "--int8")) int8_fast = true, PNAME = PNAME_INT8;
        else if (!strcmp(argv[i], "--fast")) bf16_fast = true;
        else if (!strcmp(argv[i], "--profile")) profile = true;
        else {
            printf("ctxbench-bench chunk [--models a,b] [--depths 4K,16K] [--threads 2,16] [--reps N] [--no-per-call]"
                   " [--int8 | --fast] [--profile]\n  (defaults: transformer-xs,bamba-xs,mamba2-xs; 4K; 2 threads; 2 repetitions; bf16 weights,"
                   " exact mode;\n   --int8: int8 weights, fast mode; --fast: bf16 weights, fast mode)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (nm <= 0 || nd <= 0 || nt <= 0 || reps < 1 || reps > 15) {
        fprintf(stderr, "ctxbench-bench chunk: bad --models / --depths / --threads / --reps\n");
        return 2;
    }
    if (cb_kernels_best_path() < CB_PATH_AMX) { /* the AVX-512 column alone, said so */
        printf("chunk: no amx path here (%s): the avx512 column only\n", cb_cpu()->amx_why);
        paths[P_PERCALL] = paths[P_TILES] = false;
    }
    printf("512-token chunk at synthetic depth, %s, bf16 KV: tokens/s (median of %d rounds after a "
           "warm-up round, paths interleaved);\nattn / ssd: ms per chunk in the flash attention / the chunked SSD (mean); pk: 1-thread AMX-BF16 tile-loop peak, GFLOP/s\n"
           "%-15s %6s %3s | %8s %11s | %12s %5s | %9s %5s %11s\n",
           int8_fast ? "fast mode, int8 weights" : bf16_fast ? "fast mode, bf16 weights" : "exact mode, bf16 weights", reps, "model", "depth", "thr", PNAME[0], "attn / ssd", PNAME[1], "x", PNAME[2], "x", "attn / ssd");
    for (int a = 0; a < nm; a++) {
        cb_model m;
        cb_err err = { 0 };
        if (cb_preset_create(models[a], 1, int8_fast ? CB_I8 : CB_BF16, &m, &err)) {
            fprintf(stderr, "chunk: %s\n", err.msg);
            return 1;
        }
        for (int b = 0; b < nd; b++)
            for (int c = 0; c < nt; c++) {
                int64_t depth = parse_depth(depths[b]);
                int threads = atoi(thr[c]);
                if (depth < 0 || threads < 1) {
                    fprintf(stderr, "chunk: bad depth '%s' or threads '%s'\n", depths[b], thr[c]);
                    return 2;
                }
                double t[NP], ms[NP][2];
                time_chunks(&m, paths, depth, 512, threads, reps, t, ms);
#define TPS(p) (t[p] > 0 ? 512.0 / t[p] : 0)
#define RATIO(p) (t[p] > 0 && t[P_AVX512] > 0 ? t[P_AVX512] / t[p] : 0)
                printf("%-15s %6s %3d | %8.1f %5.0f/%5.0f | %12.1f %5.2f | %9.1f %5.2f %5.0f/%5.0f | pk %.0f\n", models[a], depths[b],
                       threads, TPS(P_AVX512), ms[P_AVX512][0], ms[P_AVX512][1], TPS(P_PERCALL), RATIO(P_PERCALL),
                       TPS(P_TILES), RATIO(P_TILES), ms[P_TILES][0], ms[P_TILES][1], peak_pk);
#undef TPS
#undef RATIO
                if (profile) print_profile(paths, t);
                fflush(stdout);
            }
        cb_model_free(&m);
    }
    cb_kernels_set_path(cb_kernels_best_path());
    if (int8_fast && cb_kernels_best_path() == CB_PATH_AMX) cb_matmul_q8_amx_min_m(CB_AMX8_MIN_M_DEFAULT);
    return 0;
}

static const cb_bench_section chunk_section = {
    "chunk", "512-token prefill chunk at depth: avx512 vs amx (per-call packing, tile copies)", run_chunk
};
CB_REGISTER_BENCH(chunk_section)
