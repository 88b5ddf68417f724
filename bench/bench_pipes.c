/* `pipes` section: what the decode loops' widening and integer instructions cost next to FMAs on this core.
 * Each loop issues 8 independent register FMAs (the accumulator count of the AVX2 flash-decode and GEMV
 * loops) plus 4 instructions of one kind, or one widening recipe per 4 FMAs as the loops use them; the time
 * is given against the FMA-only loop (clock-free), and as FMA slots lost per added instruction (0: it runs
 * on a pipe the FMAs do not use; 1: it takes an FMA slot). The loops are asm, so the compiler decides
 * nothing; they need AVX2 + FMA (CPUID). docs/performance.md, "What bounds 8-bit KV decode on AVX2". */
#include <stdio.h>
#include <string.h>

#include "../engines/kernels/kernels.h"
#include "bench.h"

#define F8 "vfmadd231ps %%ymm14,%%ymm15,%%ymm0\n vfmadd231ps %%ymm14,%%ymm15,%%ymm1\n vfmadd231ps %%ymm14,%%ymm15,%%ymm2\n" \
           "vfmadd231ps %%ymm14,%%ymm15,%%ymm3\n vfmadd231ps %%ymm14,%%ymm15,%%ymm4\n vfmadd231ps %%ymm14,%%ymm15,%%ymm5\n" \
           "vfmadd231ps %%ymm14,%%ymm15,%%ymm6\n vfmadd231ps %%ymm14,%%ymm15,%%ymm7\n"
#define F4(a, b, c, d) "vfmadd231ps %%ymm14,%%ymm13,%%ymm" #a "\n vfmadd231ps %%ymm14,%%ymm13,%%ymm" #b "\n" \
                       "vfmadd231ps %%ymm14,%%ymm13,%%ymm" #c "\n vfmadd231ps %%ymm14,%%ymm13,%%ymm" #d "\n"
#define X4(op) op "\n" op "\n" op "\n" op "\n"
/* one widening (its result in ymm13) and the 4 FMAs that use it, twice: 8 FMAs */
#define W2(w) w F4(0, 1, 2, 3) w F4(4, 5, 6, 7)

#define LOOP(fn, body)                                                                                             \
    static void fn(long n, const void *buf) {                                                                      \
        __asm__ volatile("vxorps %%ymm0,%%ymm0,%%ymm0\n vmovaps %%ymm0,%%ymm1\n vmovaps %%ymm0,%%ymm2\n"           \
                         "vmovaps %%ymm0,%%ymm3\n vmovaps %%ymm0,%%ymm4\n vmovaps %%ymm0,%%ymm5\n"                  \
                         "vmovaps %%ymm0,%%ymm6\n vmovaps %%ymm0,%%ymm7\n vmovaps %%ymm0,%%ymm13\n"                 \
                         "vmovaps %%ymm0,%%ymm14\n vmovaps %%ymm0,%%ymm15\n vpcmpeqd %%ymm12,%%ymm12,%%ymm12\n"     \
                         "mov %0,%%rcx\n 1:\n" body "dec %%rcx\n jnz 1b\n"                                        \
                         :                                                                                          \
                         : "r"(n), "r"(buf)                                                                         \
                         : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",   \
                           "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");                         \
    }

LOOP(fma_only, F8)
LOOP(x_slli, F8 X4("vpslld $8,%%ymm12,%%ymm8"))
LOOP(x_srai16, F8 X4("vpsraw $8,%%ymm12,%%ymm8"))
LOOP(x_and, F8 X4("vpand %%ymm12,%%ymm12,%%ymm8"))
LOOP(x_cvt, F8 X4("vcvtdq2ps %%ymm12,%%ymm8"))
LOOP(x_movsx, F8 X4("vpmovsxbd (%1),%%ymm8"))
LOOP(x_shufb, F8 X4("vpshufb %%ymm12,%%ymm12,%%ymm8"))
LOOP(x_bcast, F8 X4("vbroadcastss (%1),%%ymm8"))
LOOP(x_maddwd, F8 X4("vpmaddwd %%ymm12,%%ymm12,%%ymm8"))
LOOP(x_paddd, F8 X4("vpaddd %%ymm12,%%ymm12,%%ymm8"))
LOOP(x_addps, F8 X4("vaddps %%ymm12,%%ymm12,%%ymm8"))
LOOP(x_mulps, F8 X4("vmulps %%ymm12,%%ymm12,%%ymm8"))
/* the recipes (attention_avx2.c, gemm8_avx2.c): an int8 byte lane of a 4-byte group (shift, mask, convert),
 * a placed fp8 code (sign-extend, shift, mask), a bf16 half (shift) */
LOOP(w_int8, W2("vmovdqu (%1),%%ymm9\n vpslld $16,%%ymm9,%%ymm13\n vpand %%ymm12,%%ymm13,%%ymm13\n vcvtdq2ps %%ymm13,%%ymm13\n"))
LOOP(w_fp8, W2("vpmovsxbd (%1),%%ymm13\n vpslld $20,%%ymm13,%%ymm13\n vpand %%ymm12,%%ymm13,%%ymm13\n"))
LOOP(w_bf16, W2("vmovdqu (%1),%%ymm9\n vpslld $16,%%ymm9,%%ymm13\n"))
LOOP(w_top, W2("vpand (%1),%%ymm12,%%ymm13\n vcvtdq2ps %%ymm13,%%ymm13\n"))

typedef struct {
    const char *name, *what;
    void (*fn)(long, const void *);
    int added; /* instructions added per 8 FMAs */
} pipe_loop;

static const pipe_loop LOOPS[] = {
    { "fma", "8 FMAs alone (the reference)", fma_only, 0 },
    { "vpslld", "a dword shift (int8 lanes, fp8 placement)", x_slli, 4 },
    { "vpsraw", "a word shift (int8 fast: even / odd bytes)", x_srai16, 4 },
    { "vpand", "a bitwise and (masks)", x_and, 4 },
    { "vcvtdq2ps", "int32 -> fp32", x_cvt, 4 },
    { "vpmovsxbd m", "sign-extend 8 bytes from memory (fp8)", x_movsx, 4 },
    { "vpshufb", "a byte shuffle", x_shufb, 4 },
    { "vbroadcastss m", "a broadcast from memory (q, p)", x_bcast, 4 },
    { "vpmaddwd", "16-bit pair products (int8 fast)", x_maddwd, 4 },
    { "vpaddd", "an int32 add (int8 fast's sums)", x_paddd, 4 },
    { "vaddps", "an fp32 add", x_addps, 4 },
    { "vmulps", "an fp32 multiply", x_mulps, 4 },
    { "int8 lane", "load, shift, and, convert per 4 FMAs", w_int8, 8 },
    { "fp8 placed", "sign-extend, shift, and per 4 FMAs", w_fp8, 6 },
    { "bf16 half", "load, shift per 4 FMAs", w_bf16, 4 },
    { "int8 top lane", "and (memory), convert per 4 FMAs", w_top, 4 },
};

static double best_of(void (*fn)(long, const void *), long n, const void *buf) {
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        const double t = cb_bench_now();
        fn(n, buf);
        const double dt = cb_bench_now() - t;
        if (dt < best) best = dt;
    }
    return best;
}

static int run_pipes(int argc, char **argv) {
    (void)argc, (void)argv;
    if (cb_kernels_best_path() < CB_PATH_AVX2) {
        printf("pipes: this CPU has no AVX2 + FMA; nothing to measure\n");
        return 0;
    }
    static char buf[256] __attribute__((aligned(64)));
    memset(buf, 1, sizeof buf);
    const long n = 20000000;
    const int nl = (int)(sizeof LOOPS / sizeof *LOOPS);
    double t[sizeof LOOPS / sizeof *LOOPS];
    for (int i = 0; i < nl; i++) t[i] = 1e30;
    for (int pass = 0; pass < 3; pass++) /* passes over all loops: a shared VM's slow moments hit each alike */
        for (int i = 0; i < nl; i++) {
            const double x = best_of(LOOPS[i].fn, n, buf);
            if (x < t[i]) t[i] = x;
        }
    printf("ctxbench pipes — one thread, 8 independent FMA chains per iteration plus the instructions named; best of 3 passes x 5 x %ld iterations\n", n);
    printf("%-16s %-44s %9s %9s %14s\n", "added", "what", "ns/iter", "x FMAs", "FMA slots/op");
    for (int i = 0; i < nl; i++) {
        const double ratio = t[i] / t[0];
        /* 8 FMAs fill the reference iteration; each added instruction that lengthens it took this many */
        const double slots = LOOPS[i].added ? (ratio - 1.0) * 8.0 / LOOPS[i].added : 0.0;
        printf("%-16s %-44s %9.3f %9.2f %14.2f\n", LOOPS[i].name, LOOPS[i].what, t[i] / n * 1e9, ratio, slots);
    }
    printf("FMA rate of the reference: %.2f FMA/ns (8 lanes each)\n", 8.0 * n / t[0] / 1e9);
    return 0;
}

static const cb_bench_section pipes_section = {
    "pipes", "decode loops' widening and integer instructions beside FMAs on this core (clock-free)", run_pipes
};
CB_REGISTER_BENCH(pipes_section)
