/* int8 weights on AMX-INT8 (fast mode): the TDPBSSD GEMM bit for bit against the portable twin and the VNNI
 * kernels on awkward shapes (M = 1..33 and beyond one 32-row block, K and N off the 64/16 grid, row strides,
 * accumulate, 1 and 2 threads, with and without the weight's tile copy), the VNNI-4 tile layout, the
 * vectorised activation quantiser against the portable one, and whole engines whose int8 GEMMs run on the
 * tiles giving the same logits as on VNNI. On a CPU without AMX-INT8 the AMX tests are skipped with the reason. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engines/engine.h"
#include "../engines/kernels/gemm8.h"
#include "../engines/kernels/kernels_amx.h"
#include "../engines/kernels/tiles.h"
#include "../engines/model/model.h"
#include "../engines/model/presets.h"

static void need_amx8(void) {
    if (cb_kernels_best_path() < CB_PATH_AMX) cr_skip_test("no AMX here: %s", cb_cpu()->amx_why);
    if (!cb_cpu()->amx_int8) cr_skip_test("AMX without AMX-INT8 here: %s", cb_cpu()->amx_why);
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AMX), 0);
}

static float frand(cb_rng *r) { return (float)((cb_rng_next(r) >> 40) * 0x1p-24) * 2.0f - 1.0f; }

typedef void (*gemm_fn)(int, const float *, int64_t, const cb_weight *, float *, int64_t, bool);

typedef struct {
    int M;
    int64_t N, K, ldx, ldy;
    int8_t *q;
    float *s, *x, *y0;
    cb_weight W;
} case8;

static case8 make8(int M, int64_t N, int64_t K, uint64_t seed) {
    case8 c = { .M = M, .N = N, .K = K, .ldx = K + 3, .ldy = N + 5 };
    cb_rng r = { seed };
    c.q = malloc((size_t)(N * K) + 64);
    c.s = malloc((size_t)N * sizeof(float));
    for (int64_t i = 0; i < N * K; i++) c.q[i] = (int8_t)((int)(cb_rng_next(&r) % 255) - 127);
    for (int64_t n = 0; n < N; n++) c.s[n] = (0.5f + (float)n / 7.0f) * 0x1p-7f;
    c.x = malloc((size_t)(M * c.ldx + 1) * sizeof(float));
    for (int64_t i = 0; i < M * c.ldx + 1; i++) c.x[i] = frand(&r) * (i % 11 == 0 ? 40.0f : 1.0f);
    if (M > 2) /* an all-zero row (scale 0) */
        for (int64_t k = 0; k < K; k++) c.x[1 + 2 * c.ldx + k] = 0.0f;
    c.y0 = malloc((size_t)(M * c.ldy + 1) * sizeof(float));
    for (int64_t i = 0; i < M * c.ldy + 1; i++) c.y0[i] = frand(&r);
    c.W = (cb_weight){ .data = c.q, .dtype = CB_I8, .rows = N, .cols = K, .scale = c.s };
    return c;
}
static void free8(case8 *c) {
    free(c->q);
    free(c->s);
    free(c->x);
    free(c->y0);
}

/* Y (one float past an aligned start, like X) after f on a copy of y0. */
static float *run8(gemm_fn f, const case8 *c, const cb_weight *W, int threads, bool acc) {
    size_t n = (size_t)(c->M * c->ldy + 1);
    float *y = malloc(n * sizeof(float));
    memcpy(y, c->y0, n * sizeof(float));
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    f(c->M, c->x + 1, c->ldx, W, y + 1, c->ldy, acc);
    omp_set_num_threads(saved);
    return y;
}

static void same_bits(const case8 *c, const float *a, const float *b, const char *what, bool acc) {
    size_t n = (size_t)(c->M * c->ldy + 1);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)))
            cr_assert_fail("%s: M=%d N=%ld K=%ld acc=%d at [%ld,%ld]: %.9g vs %.9g", what, c->M, (long)c->N,
                           (long)c->K, acc, (long)((i - 1) / (size_t)c->ldy), (long)((i - 1) % (size_t)c->ldy),
                           (double)a[i], (double)b[i]);
}

/* The AMX kernel (1 and 2 threads; per-call packing and the tile copy) against the twin and the VNNI kernels. */
static void check8(int M, int64_t N, int64_t K, bool acc) {
    case8 c = make8(M, N, K, 1000 + (uint64_t)(M * 131 + N * 17 + K));
    uint32_t *tiles = aligned_alloc(64, (cb_tiles_bytes_of(CB_I8, N, K) + 63) & ~(size_t)63);
    cb_tiles_pack_i8(&c.W, tiles);
    cb_weight Wt = c.W;
    Wt.tiles = tiles;
    float *ref = run8(cb_matmul_q8_fast_ref, &c, &c.W, 2, acc);
    float *vnni = run8(cb_matmul_q8_fast_avx512, &c, &c.W, 2, acc);
    float *a1 = run8(cb_matmul_q8_fast_amx, &c, &c.W, 1, acc);
    float *a2 = run8(cb_matmul_q8_fast_amx, &c, &c.W, 2, acc);
    float *t2 = run8(cb_matmul_q8_fast_amx, &c, &Wt, 2, acc);
    same_bits(&c, vnni, ref, "vnni vs twin", acc);
    same_bits(&c, a1, ref, "amx 1 thread vs twin", acc);
    same_bits(&c, a2, ref, "amx 2 threads vs twin", acc);
    same_bits(&c, t2, ref, "amx tile copy vs twin", acc);
    free(ref), free(vnni), free(a1), free(a2), free(t2);
    if (N > 16) { /* a row view from the second tile group carries its part of the copy */
        cb_weight v = c.W, vt;
        v.data = c.q + 16 * K, v.rows = N - 16, v.scale = c.s + 16;
        vt = v;
        vt.tiles = tiles + cb_tiles_i8_group_u32(K);
        float *r = run8(cb_matmul_q8_fast_ref, &c, &v, 2, acc), *t = run8(cb_matmul_q8_fast_amx, &c, &vt, 2, acc);
        same_bits(&c, t, r, "amx row view of the tile copy vs twin", acc);
        free(r), free(t);
    }
    free(tiles);
    free8(&c);
}

static const int64_t NS[] = { 1, 15, 16, 17, 31, 33, 47, 65 };
static const int64_t KS[] = { 1, 2, 63, 64, 65, 130, 257 };

Test(amx_gemm8, bit_identical_to_twin_and_vnni_awkward_shapes) {
    need_amx8();
    for (int M = 1; M <= 33; M++)
        for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++)
            for (size_t b = 0; b < sizeof KS / sizeof KS[0]; b++)
                if ((M + a + b) % 4 == 0 || M == 1 || M == 16 || M == 17 || M == 32 || M == 33)
                    check8(M, NS[a], KS[b], (M + a + b) % 2);
}

/* Across the K block (1024), the N slice (256) and several 32-row blocks. */
Test(amx_gemm8, bit_identical_across_blocks) {
    need_amx8();
    check8(100, 291, 1100, false);
    check8(100, 291, 1100, true);
    check8(37, 545, 2049, true);
    check8(129, 33, 1600, false);
    check8(64, 512, 4096, false);
    check8(512, 200, 1100, true); /* a whole prefill chunk */
    check8(512, 64, 64, false);
}

/* The public entry point sends int8 weights in fast mode to the tiles from the crossover up (same bits). */
Test(amx_gemm8, dispatch_from_the_crossover) {
    need_amx8();
    const int M = cb_matmul_q8_amx_min_m(0);
    case8 c = make8(M, 100, 200, 9);
    float *d = run8(cb_matmul_bf16, &c, &c.W, 2, false), *a = run8(cb_matmul_q8_fast_amx, &c, &c.W, 2, false);
    same_bits(&c, d, a, "dispatch vs amx", false);
    free(d), free(a);
    free8(&c);
}

/* The VNNI-4 layout (portable: runs everywhere): every byte where tiles.h says, zeros past N and K. */
Test(tiles8, pack_layout_awkward_shapes) {
    const int64_t ns[] = { 1, 15, 16, 17, 33 }, ks[] = { 1, 3, 63, 64, 65, 130 };
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 6; b++) {
            const int64_t N = ns[a], K = ks[b], S = cb_tiles_i8_ksteps(K), G = (N + 15) / 16;
            uint8_t *w = malloc((size_t)(N * K));
            for (int64_t i = 0; i < N * K; i++) w[i] = (uint8_t)(i * 151u + 7);
            cb_weight W = { .data = w, .dtype = CB_I8, .rows = N, .cols = K };
            const size_t bytes = cb_tiles_bytes_of(CB_I8, N, K);
            cr_assert_eq(bytes, (size_t)(G * S) * 1024);
            uint8_t *t = aligned_alloc(64, bytes);
            memset(t, 0xab, bytes);
            cb_tiles_pack_i8(&W, (uint32_t *)t);
            for (int64_t g = 0; g < G; g++)
                for (int64_t s = 0; s < S; s++)
                    for (int r = 0; r < 16; r++)
                        for (int c = 0; c < 16; c++)
                            for (int i = 0; i < 4; i++) {
                                const int64_t n = 16 * g + c, k = 64 * s + 4 * r + i;
                                const uint8_t want = n < N && k < K ? w[n * K + k] : 0;
                                cr_assert_eq(t[((g * S + s) * 256 + r * 16 + c) * 4 + i], want,
                                             "N=%ld K=%ld g=%ld s=%ld r=%d c=%d i=%d", (long)N, (long)K, (long)g,
                                             (long)s, r, c, i);
                            }
            cb_weight v = W;
            v.tiles = (uint32_t *)t;
            if (N > 16) cr_assert_eq(cb_weight_rows(&v, 16, N - 16).tiles, (uint32_t *)t + cb_tiles_i8_group_u32(K));
            cr_assert_null(cb_weight_rows(&v, 1, N > 1 ? N - 1 : 0).tiles, "a view off the 16-row grid keeps no copy");
            free(t);
            free(w);
        }
}

/* The AVX-512 and AVX2 row quantisers are cb_q8_quantize_activations bit for bit: ragged K, an all-zero row, ±0, NaN,
 * ±inf, subnormals, values that round to ±127.5 before the clamp, ties (x / sx = k + 0.5). */
static void row_quantiser_vs_portable(void (*row)(const float *, int64_t, int8_t *, float *)) {
    cb_rng r = { 3 };
    const int64_t ks[] = { 1, 15, 16, 17, 63, 64, 65, 333 };
    for (size_t a = 0; a < 8; a++)
        for (int kind = 0; kind < 6; kind++) {
            const int64_t K = ks[a];
            float *x = malloc((size_t)K * sizeof(float));
            for (int64_t k = 0; k < K; k++) {
                float v = frand(&r);
                switch (kind) {
                case 0: break;
                case 1: v = 0.0f * (k % 2 ? -1.0f : 1.0f); break;       /* all zero (some -0) */
                case 2: v = k % 5 == 0 ? NAN : v; break;                /* NaN inside */
                case 3: v = k % 7 == 3 ? (k % 2 ? INFINITY : -INFINITY) : v; break;
                case 4: v *= 0x1p-140f; break;                           /* subnormals */
                default: v = (float)((int)(v * 20.0f)) + 0.5f; break;    /* ties */
                }
                x[k] = v;
            }
            if (kind == 5) x[K / 2] = 127.0f; /* sx = 1: the ties stay ties */
            int8_t *q0 = malloc((size_t)K), *q1 = malloc((size_t)K + 1);
            float s0, s1;
            q1[K] = 0x55;
            cb_q8_quantize_activations(1, x, K, K, q0, &s0);
            row(x, K, q1, &s1);
            cr_assert_eq(memcmp(&s0, &s1, sizeof s0), 0, "K=%ld kind %d: scale %g vs %g", (long)K, kind, (double)s0,
                         (double)s1);
            cr_assert_eq(memcmp(q0, q1, (size_t)K), 0, "K=%ld kind %d: codes differ", (long)K, kind);
            cr_assert_eq(q1[K], 0x55, "wrote past K");
            free(x), free(q0), free(q1);
        }
}
Test(quant_row, avx512_bit_identical_to_portable) {
    if (cb_kernels_best_path() < CB_PATH_AVX512) cr_skip_test("CPU lacks AVX-512");
    row_quantiser_vs_portable(cb_q8_quantize_row_avx512);
}
Test(quant_row, avx2_bit_identical_to_portable) {
    if (cb_kernels_best_path() < CB_PATH_AVX2) cr_skip_test("CPU lacks AVX2");
    row_quantiser_vs_portable(cb_q8_quantize_row_avx2);
}

/* Whole engines, int8 weights, fast mode, amx path: every int8 GEMM on the tiles (crossover 1, with the
 * engine's tile copies and without) gives the same logits, bit for bit, as with every int8 GEMM on VNNI. */
static float *prefill_logits(const char *preset, int threads, bool tiles, int n) {
    cb_model m;
    cb_err err = { "" };
    cr_assert_eq(cb_preset_create(preset, 5, CB_I8, &m, &err), 0, "%s", err.msg);
    const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.mode = CB_MODE_FAST;
    o.max_context = 256;
    o.max_batch = 1;
    o.threads = threads;
    o.prefill_chunk = 64;
    o.tile_weights = tiles;
    cb_engine *e;
    cr_assert_eq(ops->create(&m, &o, &e, &err), 0, "%s", err.msg);
    int32_t *tok = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) tok[i] = (int32_t)((i * 7919 + 13) % m.cfg.vocab);
    float *lg = malloc((size_t)n * (size_t)m.cfg.vocab * sizeof(float));
    cr_assert_eq(ops->prefill(e, 0, tok, n, lg, true, &err), 0, "%s", err.msg);
    ops->destroy(e);
    cb_model_free(&m);
    free(tok);
    return lg;
}
Test(amx_gemm8_engine, int8_fast_logits_same_on_tiles_and_vnni) {
    need_amx8();
    const char *presets[] = { "transformer-tiny", "bamba-tiny", "mamba2-tiny", "granite-tiny" };
    for (int i = 0; i < 4; i++) {
        cb_model m;
        cb_err err = { "" };
        cr_assert_eq(cb_preset_create(presets[i], 5, CB_I8, &m, &err), 0, "%s", err.msg);
        const size_t n = 150 * (size_t)m.cfg.vocab;
        cb_model_free(&m);
        cb_matmul_q8_amx_min_m(1 << 30);
        float *vnni = prefill_logits(presets[i], 2, false, 150);
        cb_matmul_q8_amx_min_m(1);
        float *amx = prefill_logits(presets[i], 2, true, 150);
        float *amx1 = prefill_logits(presets[i], 1, false, 150);
        cb_matmul_q8_amx_min_m(CB_AMX8_MIN_M_DEFAULT);
        cr_assert_eq(memcmp(vnni, amx, n * sizeof(float)), 0, "%s: tiles (tile copies) vs VNNI logits differ", presets[i]);
        cr_assert_eq(memcmp(vnni, amx1, n * sizeof(float)), 0, "%s: tiles (packed per call, 1 thread) vs VNNI differ",
                     presets[i]);
        free(vnni), free(amx), free(amx1);
    }
}

/* The fixtures through the CLI: `ctxbench ppl` with int8 weights in fast mode prints the same numbers with
 * every int8 GEMM on the tiles (CTXBENCH_AMX8_MIN_M=1; with and without tile copies) as with every int8
 * GEMM on VNNI (CTXBENCH_AMX8_MIN_M out of reach), 600 tokens, one 512-token prefill chunk and a second. */
static void ppl_output(const char *fixture, const char *tokens, const char *env, char *out, size_t cap) {
    const char *bin = getenv("CTXBENCH_BIN");
    if (!bin) bin = "build/ctxbench";
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "CTXBENCH_KERNELS=amx %s %s ppl --model %s --tokens %s --context 512 --weights-dtype int8 --mode fast "
             "--threads 2 2>&1",
             env, bin, fixture, tokens);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    cr_assert_eq(pclose(p), 0, "`%s` failed: %s", cmd, out);
}
Test(amx_gemm8_engine, fixtures_ppl_same_on_tiles_and_vnni) {
    need_amx8();
    char tokens[] = "/tmp/ctxbench-amx8-tokens-XXXXXX.bin"; /* other suites may run at the same time */
    int fd = mkstemps(tokens, 4);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 600; i++) {
        int32_t t = (int32_t)((i * 7919 + 13) % 384); /* the fixtures' vocabulary */
        fwrite(&t, sizeof t, 1, f);
    }
    fclose(f);
    const char *fx[] = { "tests/fixtures/llama-tiny", "tests/fixtures/bamba-tiny", "tests/fixtures/mamba2-tiny",
                         "tests/fixtures/granite-tiny" };
    static char a[8192], b[8192], c[8192];
    for (int i = 0; i < 4; i++) {
        ppl_output(fx[i], tokens, "CTXBENCH_AMX8_MIN_M=1000000", a, sizeof a);
        ppl_output(fx[i], tokens, "CTXBENCH_AMX8_MIN_M=1", b, sizeof b);
        ppl_output(fx[i], tokens, "CTXBENCH_AMX8_MIN_M=1 CTXBENCH_AMX_PACK=0", c, sizeof c);
        cr_assert(strstr(a, "all") != NULL, "%s: no ppl table: %s", fx[i], a);
        cr_assert_str_eq(a, b, "%s: tiles vs VNNI", fx[i]);
        cr_assert_str_eq(a, c, "%s: tiles packed per call vs VNNI", fx[i]);
    }
    remove(tokens);
}
