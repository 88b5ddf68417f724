/* The machine's roofs, measured at the start of every run: the fp32 FMA peak (a register-resident loop,
 * no memory traffic) and the stream triad bandwidth (a = b + s·c over arrays far larger than the caches),
 * each at 1 thread and at the run's thread count. A roof is an upper bound, so each figure is the best of
 * its repetitions (noise from other processes only lowers a rate). Used by the sweep (runs.roof_*) and by
 * ctxbench-bench. */
#ifndef CB_ROOFS_H
#define CB_ROOFS_H

#include "../../engines/common.h"

typedef struct {
    int threads;                       /* thread count of the "all" figures */
    double fma_gflops_1t, fma_gflops;  /* GFLOP/s: 1 thread, `threads` threads */
    double triad_gbps_1t, triad_gbps;  /* GB/s (12 bytes per element, the STREAM convention) */
    double amx_gflops_1t, amx_gflops;  /* AMX-BF16 tile peak, GFLOP/s; 0 unless the kernel path is amx */
    double seconds;                    /* wall time the measurement took */
    const char *loop;                  /* "avx512" | "avx2" | "portable": the FMA loop that ran */
} cb_roofs;

/* Measure, spending about `seconds` (at least 3 repetitions of each of the four figures — six on the amx
 * path, which adds the tile peak — plus the first touch of the 3 × 128 MiB triad arrays). -1 with err set when the arrays cannot be allocated. */
int cb_roofs_measure(int threads, double seconds, cb_roofs *out, cb_err *err);

/* Bytes the triad arrays take (roofs and probe): a run whose memory budget is smaller measures neither. */
#define CB_ROOFS_TRIAD_BYTES (3ll * 128 * 1048576)

/* Bandwidth probe next to one point: the same triad as the roofs (3 × 128 MiB) on `threads` threads
 * (0: all), best of >= 3 repetitions after a warm-up, until `seconds` are spent (plus the first touch).
 * The bandwidth of a shared VM moves by tens of percent within minutes, so a point's % of bandwidth is
 * only meaningful against a probe taken right next to it. GB/s; -1 with err when the arrays cannot be
 * allocated. */
double cb_roofs_triad_probe(int threads, double seconds, cb_err *err);

/* The FMA loops (twins): iters × 12 independent chains × 16 lanes of a = a·m + c, no memory traffic.
 * Return the flops executed; *sum = the sum of the final lanes (for the twin test). */
double cb_roofs_fma_avx512(long iters, float *sum);
double cb_roofs_fma_ref(long iters, float *sum);
/* The same chains on 8 lanes (roofs_avx2.c; avx2 path): iters × 12 × 8 lanes, half the twin's flops. */
double cb_roofs_fma_avx2(long iters, float *sum);
/* The AMX-BF16 loop (roofs_amx.c; amx path only): iters × 4 independent TDPBF16PS, tile-resident. */
double cb_roofs_amx_bf16(long iters, float *sum);
/* Variants of that loop for the amx bench (what bounds a GEMM on the tiles; docs/performance.md "on the 2-core
 * AMX VM"): kind 0 = zero operands (the unit may run faster on zeros), 1 = the 2 × 2 block of gemm_amx.c with
 * its four tile loads per four products from an L1-resident 8 KiB buffer, 2 = two loads (B only) per four. */
double cb_roofs_amx_bf16_variant(int kind, long iters, float *sum);
/* The AMX-INT8 loop (roofs_amx.c; amx path with cb_cpu()->amx_int8): iters × 4 independent TDPBSSD,
 * tile-resident; returns the integer ops (2 per multiply-add), *sum two of the final int32 lanes. */
double cb_roofs_amx_int8(long iters, int32_t *sum);

#endif
