/* AMX kernels against their portable twins and double-precision references on awkward shapes (M = 1..33,
 * N and K off the 16/32-multiples, K across the packed block, row strides, accumulate), 1 vs 2 threads,
 * and the fixtures through the amx path. On a CPU (or OS) without AMX every test here is skipped with the
 * reason cpu.c found. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "../engines/kernels/kernels_amx.h"
#include "../engines/kernels/tiles.h"
#include "../engines/model/model.h"

static void need_amx(void) {
    if (cb_kernels_best_path() < CB_PATH_AMX) cr_skip_test("no AMX here: %s", cb_cpu()->amx_why);
    cr_assert_eq(cb_kernels_set_path(CB_PATH_AMX), 0);
}

static float frand(cb_rng *r) { return (float)((cb_rng_next(r) >> 40) * 0x1p-24) * 2.0f - 1.0f; }
static inline float rbf(float x) { return cb_bf16_to_f32(cb_f32_to_bf16(x)); }

typedef void (*matmul_fn)(int, const float *, int64_t, const cb_weight *, float *, int64_t, bool);

typedef struct {
    int M;
    int64_t N, K, ldx, ldy;
    uint16_t *w;
    float *xbuf, *y0, *y, *yt; /* X at xbuf + 1 (misaligned), Y at y + 1 */
} gcase;

static gcase make_case(int M, int64_t N, int64_t K, uint64_t seed) {
    gcase c = { .M = M, .N = N, .K = K, .ldx = K + 3, .ldy = N + 5 };
    cb_rng r = { seed };
    c.w = malloc((size_t)(N * K) * 2 + 64);
    for (int64_t i = 0; i < N * K; i++) c.w[i] = cb_f32_to_bf16(frand(&r));
    size_t nx = (size_t)(M * c.ldx) + 1, ny = (size_t)(M * c.ldy) + 1;
    c.xbuf = malloc(nx * sizeof(float));
    for (size_t i = 0; i < nx; i++) c.xbuf[i] = frand(&r) * (i % 7 == 0 ? 1e3f : 1.0f); /* mixed magnitudes */
    c.y0 = malloc(ny * sizeof(float));
    c.y = malloc(ny * sizeof(float));
    c.yt = malloc(ny * sizeof(float));
    for (size_t i = 0; i < ny; i++) c.y0[i] = frand(&r);
    return c;
}
static void free_case(gcase *c) {
    free(c->w);
    free(c->xbuf);
    free(c->y0);
    free(c->y);
    free(c->yt);
}

/* Y vs a double-precision product. Exact mode: x is carried as 3 bf16 parts (all of it; 2 parts under
 * CTXBENCH_AMX_SPLIT=2: ≤ 2⁻¹⁷ relative) and each fp32 sum adds up to 3K rounding steps; fast mode: operands
 * rounded to bf16, then K steps. */
static void check(const char *what, const gcase *c, const float *Y, bool fast, bool acc) {
    const float *X = c->xbuf + 1;
    for (int m = 0; m < c->M; m++)
        for (int64_t n = 0; n < c->N; n++) {
            double s = 0, sa = 0;
            for (int64_t k = 0; k < c->K; k++) {
                double x = fast ? rbf(X[m * c->ldx + k]) : X[m * c->ldx + k];
                double p = x * cb_bf16_to_f32(c->w[n * c->K + k]);
                s += p;
                sa += fabs(p);
            }
            double y0 = acc ? c->y0[1 + m * c->ldy + n] : 0, want = y0 + s;
            double split = fast ? 0 : cb_matmul_amx_split(0) == 2 ? 0x1p-16 : 0x1p-23;
            double tol = (6.0 * (double)(c->K + 2) * 0x1p-24 + split) * (sa + fabs(y0)) + 1e-30;
            double got = Y[m * c->ldy + n];
            if (!(fabs(got - want) <= tol))
                cr_assert_fail("%s: M=%d N=%ld K=%ld acc=%d at [%d,%ld]: got %.9g want %.9g (tol %.3g)", what, c->M,
                               (long)c->N, (long)c->K, acc, m, (long)n, got, want, tol);
        }
    for (int m = 0; m < c->M; m++) /* the padding between rows is untouched */
        for (int64_t n = c->N; n < c->ldy && m * c->ldy + n < c->M * c->ldy; n++)
            cr_assert_eq(Y[m * c->ldy + n], c->y0[1 + m * c->ldy + n], "%s wrote outside its rows", what);
}

/* The AMX kernel and its portable twin on one case: each checked against double, and each other. */
static void run_pair(bool fast, int M, int64_t N, int64_t K, bool acc) {
    gcase c = make_case(M, N, K, 77 + (uint64_t)(M * 1009 + N * 31 + K));
    cb_weight W = { .data = c.w, .dtype = CB_BF16, .rows = N, .cols = K };
    size_t ny = ((size_t)(M * c.ldy) + 1) * sizeof(float);
    memcpy(c.y, c.y0, ny);
    memcpy(c.yt, c.y0, ny);
    (fast ? cb_matmul_bf16_amx : cb_matmul_amx)(M, c.xbuf + 1, c.ldx, &W, c.y + 1, c.ldy, acc);
    (fast ? cb_matmul_bf16_ref : cb_matmul_ref)(M, c.xbuf + 1, c.ldx, &W, c.yt + 1, c.ldy, acc);
    check(fast ? "amx fast" : "amx exact", &c, c.y + 1, fast, acc);
    check(fast ? "bf16 ref" : "ref", &c, c.yt + 1, fast, acc);
    free_case(&c);
}

/* The same case with the weight's tile copy (kernels/tiles.h): checked against double, and bit-identical to the
 * per-call packing (the K order is the same). */
static void run_tiled(bool fast, int M, int64_t N, int64_t K, bool acc) {
    gcase c = make_case(M, N, K, 91 + (uint64_t)(M * 7 + N * 13 + K));
    uint32_t *tiles = aligned_alloc(64, (cb_tiles_bytes(N, K) + 63) & ~(size_t)63);
    cb_weight W = { .data = c.w, .dtype = CB_BF16, .rows = N, .cols = K }, Wt = W;
    cb_tiles_pack(&W, tiles);
    Wt.tiles = tiles;
    size_t ny = ((size_t)(M * c.ldy) + 1) * sizeof(float);
    memcpy(c.y, c.y0, ny);
    memcpy(c.yt, c.y0, ny);
    matmul_fn f = fast ? cb_matmul_bf16_amx : cb_matmul_amx;
    f(M, c.xbuf + 1, c.ldx, &Wt, c.y + 1, c.ldy, acc);
    f(M, c.xbuf + 1, c.ldx, &W, c.yt + 1, c.ldy, acc);
    check(fast ? "amx fast, tile copy" : "amx exact, tile copy", &c, c.y + 1, fast, acc);
    cr_assert_eq(memcmp(c.y, c.yt, ny), 0, "tile copy vs per-call packing differ: M=%d N=%ld K=%ld", M, (long)N,
                 (long)K);
    if (N > 16) { /* a row view from the second tile group carries its part of the copy */
        cb_weight v = cb_weight_rows(&Wt, 16, N - 16), vp = cb_weight_rows(&W, 16, N - 16);
        cr_assert_eq(v.tiles, tiles + cb_tiles_group_u32(K));
        f(M, c.xbuf + 1, c.ldx, &v, c.y + 1, c.ldy, false);
        f(M, c.xbuf + 1, c.ldx, &vp, c.yt + 1, c.ldy, false);
        cr_assert_eq(memcmp(c.y, c.yt, ny), 0, "row view of the tile copy differs: M=%d N=%ld K=%ld", M, (long)N,
                     (long)K);
    }
    free(tiles);
    free_case(&c);
}

static const int64_t NS[] = { 1, 15, 16, 17, 31, 33, 47, 65 };
static const int64_t KS[] = { 1, 2, 15, 31, 32, 33, 63, 65 };

static void sweep(bool fast) {
    need_amx();
    for (int M = 1; M <= 33; M++)
        for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++)
            for (size_t b = 0; b < sizeof KS / sizeof KS[0]; b++)
                if ((M + a + b) % 3 == 0 || M == 1 || M == 16 || M == 17 || M == 33)
                    run_pair(fast, M, NS[a], KS[b], (M + a + b) % 2);
    /* K across the packed KC block, N across the NC block, M across several 32-row blocks */
    run_pair(fast, 37, 545, 1027, false);
    run_pair(fast, 70, 291, 513, true);
    run_pair(fast, 129, 33, 1600, true);
}

Test(amx_gemm, exact_vs_twin_awkward_shapes) { sweep(false); }
Test(amx_gemm, fast_vs_twin_awkward_shapes) { sweep(true); }

static void sweep_tiled(bool fast) {
    need_amx();
    for (int M = 1; M <= 33; M += 4)
        for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++)
            for (size_t b = 0; b < sizeof KS / sizeof KS[0]; b += 3) run_tiled(fast, M, NS[a], KS[b], (M + a) % 2);
    run_tiled(fast, 37, 545, 1027, false); /* across the K and N blocks */
    run_tiled(fast, 70, 291, 513, true);
    run_tiled(fast, 129, 33, 1600, true);
}
Test(amx_gemm, exact_with_tile_copy) { sweep_tiled(false); }
Test(amx_gemm, fast_with_tile_copy) { sweep_tiled(true); }

/* The tile layout itself (portable: runs everywhere): every element where tiles.h says, zeros past N and K. */
Test(tiles, pack_layout_awkward_shapes) {
    const int64_t ns[] = { 1, 15, 16, 17, 33 }, ks[] = { 1, 2, 31, 32, 33, 65 };
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 6; b++) {
            const int64_t N = ns[a], K = ks[b], S = cb_tiles_ksteps(K), G = (N + 15) / 16;
            uint16_t *w = malloc((size_t)(N * K) * 2);
            for (int64_t i = 0; i < N * K; i++) w[i] = (uint16_t)(i * 40503u + 1);
            cb_weight W = { .data = w, .dtype = CB_BF16, .rows = N, .cols = K };
            size_t bytes = cb_tiles_bytes(N, K);
            cr_assert_eq(bytes, (size_t)(G * S) * 1024);
            uint32_t *t = aligned_alloc(64, bytes);
            memset(t, 0xab, bytes);
            cb_tiles_pack(&W, t);
            for (int64_t g = 0; g < G; g++)
                for (int64_t s = 0; s < S; s++)
                    for (int r = 0; r < 16; r++)
                        for (int c = 0; c < 16; c++) {
                            int64_t n = 16 * g + c, k = 32 * s + 2 * r;
                            uint32_t lo = n < N && k < K ? w[n * K + k] : 0, hi = n < N && k + 1 < K ? w[n * K + k + 1] : 0;
                            cr_assert_eq(t[(g * S + s) * 256 + r * 16 + c], lo | hi << 16, "N=%ld K=%ld g=%ld s=%ld r=%d c=%d",
                                         (long)N, (long)K, (long)g, (long)s, r, c);
                        }
            cb_weight v = W;
            v.tiles = t;
            cr_assert_null(cb_weight_rows(&v, 1, N > 1 ? N - 1 : 0).tiles, "a view off the 16-row grid keeps no copy");
            free(t);
            free(w);
        }
}

/* Same bits whatever the thread count (the K order does not depend on the split). */
static void threads_same(bool fast, int M, int64_t N, int64_t K) {
    gcase c = make_case(M, N, K, 5);
    cb_weight W = { .data = c.w, .dtype = CB_BF16, .rows = N, .cols = K };
    matmul_fn f = fast ? cb_matmul_bf16_amx : cb_matmul_amx;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    f(M, c.xbuf + 1, c.ldx, &W, c.y + 1, c.ldy, false);
    omp_set_num_threads(2);
    f(M, c.xbuf + 1, c.ldx, &W, c.yt + 1, c.ldy, false);
    omp_set_num_threads(saved);
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++)
            cr_assert_eq(c.y[1 + m * c.ldy + n], c.yt[1 + m * c.ldy + n], "1 vs 2 threads differ at [%d,%ld] M=%d N=%ld",
                         m, (long)n, M, (long)N);
    free_case(&c);
}
Test(amx_gemm, one_and_two_threads_identical) {
    need_amx();
    threads_same(false, 200, 300, 700);
    threads_same(true, 200, 300, 700);
    threads_same(false, 64, 40, 300); /* narrow N: threads split M */
}

/* The public entry points route prefill-sized M on bf16 weights to the tiles on the amx path. */
Test(amx_gemm, dispatch_takes_tiles_from_the_crossover) {
    need_amx();
    int M = cb_matmul_amx_min_m(0);
    gcase c = make_case(M, 100, 200, 9);
    cb_weight W = { .data = c.w, .dtype = CB_BF16, .rows = 100, .cols = 200 };
    cb_matmul(M, c.xbuf + 1, c.ldx, &W, c.y + 1, c.ldy, false);
    cb_matmul_amx(M, c.xbuf + 1, c.ldx, &W, c.yt + 1, c.ldy, false);
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < 100; n++) cr_assert_eq(c.y[1 + m * c.ldy + n], c.yt[1 + m * c.ldy + n]);
    free_case(&c);
}

/* Several projections of one X (q/k/v, gate/up): one split and one region, the same bits as one call per
 * weight, on awkward shapes, a weight with and one without a tile copy, 1 and 2 threads. */
static void multi_same(bool fast, int M, int64_t K, int threads) {
    const int64_t Ns[3] = { 47, 16, 130 };
    gcase c[3];
    cb_weight W[3];
    uint32_t *tiles = NULL;
    for (int i = 0; i < 3; i++) {
        c[i] = make_case(M, Ns[i], K, 20 + (uint64_t)i);
        W[i] = (cb_weight){ .data = c[i].w, .dtype = CB_BF16, .rows = Ns[i], .cols = K };
    }
    tiles = aligned_alloc(64, cb_tiles_bytes(Ns[2], K));
    cb_tiles_pack(&W[2], tiles);
    W[2].tiles = tiles;
    const float *X = c[0].xbuf + 1; /* the same X for all three */
    const cb_weight *Wp[3] = { &W[0], &W[1], &W[2] };
    float *Y[3];
    int64_t ld[3];
    for (int i = 0; i < 3; i++) Y[i] = c[i].yt + 1, ld[i] = c[i].ldy;
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    (fast ? cb_matmul_bf16_amx_multi : cb_matmul_amx_multi)(M, X, c[0].ldx, 3, Wp, Y, ld);
    for (int i = 0; i < 3; i++) (fast ? cb_matmul_bf16_amx : cb_matmul_amx)(M, X, c[0].ldx, &W[i], c[i].y + 1, c[i].ldy, false);
    omp_set_num_threads(saved);
    for (int i = 0; i < 3; i++)
        for (int m = 0; m < M; m++)
            for (int64_t n = 0; n < Ns[i]; n++)
                cr_assert_eq(c[i].y[1 + m * c[i].ldy + n], c[i].yt[1 + m * c[i].ldy + n],
                             "multi vs single differ: weight %d [%d,%ld] M=%d K=%ld threads %d", i, m, (long)n, M, (long)K, threads);
    free(tiles);
    for (int i = 0; i < 3; i++) free_case(&c[i]);
}
Test(amx_gemm, multi_equals_single_calls) {
    need_amx();
    const int Ms[] = { 1, 33, 200 };
    const int64_t Ks[] = { 31, 65, 700 };
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int t = 1; t <= 2; t++) {
                multi_same(false, Ms[a], Ks[b], t);
                multi_same(true, Ms[a], Ks[b], t);
            }
}

/* The fixtures through the amx path (crossover at M = 1 so every GEMM of the tiny models takes the tiles):
 * prefill and decode, batch 3, 1 and 2 threads, within the exact-mode bar. */
static void verify_amx(const char *args) {
    const char *bin = getenv("CTXBENCH_BIN");
    if (!bin) bin = "build/ctxbench";
    char cmd[1024], line[1024], last[1024] = "";
    snprintf(cmd, sizeof cmd, "CTXBENCH_KERNELS=amx CTXBENCH_AMX_MIN_M=1 %s verify %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "verify: model_type=", 19)) snprintf(last, sizeof last, "%s", line);
    int st = pclose(p);
    cr_assert(strstr(last, "result=PASS") != NULL, "`%s` did not pass: '%s'", cmd, last);
    cr_assert_eq(st, 0, "`%s` exited with status %d", cmd, st);
}
Test(amx_verify, fixtures_exact_through_tiles) {
    need_amx();
    const char *fx[] = { "tests/fixtures/llama-tiny", "tests/fixtures/mamba2-tiny", "tests/fixtures/bamba-tiny" };
    char a[256];
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s --threads 1 --prefill 37", fx[i]);
        verify_amx(a);
        snprintf(a, sizeof a, "%s --threads 2 --batch 3 --prefill 100", fx[i]);
        verify_amx(a);
        snprintf(a, sizeof a, "%s --threads 2 --prefill 150 --prefill-chunk 33", fx[i]);
        verify_amx(a);
    }
}
/* The same fixtures with per-call packing (engines keep no tile copy). */
Test(amx_verify, fixtures_exact_packed_per_call) {
    need_amx();
    setenv("CTXBENCH_AMX_PACK", "0", 1);
    verify_amx("tests/fixtures/llama-tiny --threads 2 --batch 3 --prefill 100");
    verify_amx("tests/fixtures/bamba-tiny --threads 2 --prefill 150 --prefill-chunk 33");
    unsetenv("CTXBENCH_AMX_PACK");
}
Test(amx_verify, fixtures_fast_through_tiles) {
    need_amx();
    verify_amx("tests/fixtures/llama-tiny --mode fast --threads 2 --tol 0.06"); /* see verify_llama::fast_mode */
    verify_amx("tests/fixtures/mamba2-tiny --mode fast --threads 2 --batch 3 --prefill 100");
}
