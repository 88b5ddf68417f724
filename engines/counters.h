/* Software-defined counters the engines bump analytically (from shapes, per call, outside hot loops),
 * and two wall-clock timers of prefill kernels. The harness exports them through PAPI SDE (libsde) and
 * reads them back through PAPI like any event (docs/counters.md). */
#ifndef CB_COUNTERS_H
#define CB_COUNTERS_H

#include <time.h>

typedef struct {
    long long flops;            /* multiply-adds count 2 */
    long long weight_bytes;     /* weight bytes streamed from memory */
    long long kv_bytes_read;
    long long kv_bytes_written;
    long long state_bytes;      /* SSM + conv state bytes read + written */
    long long tokens;           /* tokens processed (prefill + decode) */
    long long ssd_ns;           /* wall ns in the chunked SSD of prefill (C·Bᵀ + chunked scan, all heads) */
    long long attention_ns;     /* wall ns in the flash attention of prefill (after QKV, before o_proj) */
} cb_counters;

extern cb_counters cb_ctr;

/* Monotonic ns for the timers: `long long t = cb_ctr_ns(); <parallel region>; cb_ctr.x_ns += cb_ctr_ns() - t;`
 * taken by the calling thread around a whole OpenMP region, so it is wall time, not thread time. */
static inline long long cb_ctr_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Where a prefill's (or a decode's) wall time goes, per part of a layer (docs/performance.md "Exact mode on the tiles: where a
 * chunk's time goes"): ns taken by the calling thread around each step, outside parallel regions, so the
 * parts of one prefill add up to (nearly) its wall time. Not exported through PAPI: bench/ and tests read
 * them. CB_PROF_SPLIT is inside the GEMM parts (the fp32 -> bf16 part split of the tile GEMMs' A). */
typedef enum {
    CB_PROF_NORM,      /* the stack's RMSNorms (before each mixer and MLP) */
    CB_PROF_RESIDUAL,  /* x += y after each mixer and MLP */
    CB_PROF_QKV,       /* q, k, v projections */
    CB_PROF_ROPE_KV,   /* RoPE and the KV cache append */
    CB_PROF_ATTN,      /* flash attention (with the Q copy and the output scaling) */
    CB_PROF_O,         /* o_proj */
    CB_PROF_GATE_UP,   /* gate and up projections */
    CB_PROF_ACT,       /* silu(gate) * up */
    CB_PROF_DOWN,      /* down projection */
    CB_PROF_IN_PROJ,   /* Mamba2 in_proj */
    CB_PROF_CONV,      /* Mamba2 conv1d, silu, dt */
    CB_PROF_SSD,       /* the chunked SSD (C·Bᵀ and the scan) */
    CB_PROF_GATE_NORM, /* Mamba2 y · silu(z), its RMSNorm */
    CB_PROF_OUT_PROJ,  /* Mamba2 out_proj */
    CB_PROF_ROUTER,    /* MoE router logits, top-k and the grouping by expert */
    CB_PROF_EXPERTS,   /* MoE routed experts: gather, gate|up, silu * up, down, the gate-weighted sum */
    CB_PROF_OTHER,     /* embedding, LM head */
    CB_PROF_SPLIT,     /* of the GEMM parts above: the tile GEMMs' activation split */
    CB_PROF_N
} cb_prof_part;

extern long long cb_prof_ns[CB_PROF_N];
extern const char *const cb_prof_name[CB_PROF_N];

/* `long long t = cb_ctr_ns(); step 1; cb_prof_lap(&t, PART1); step 2; cb_prof_lap(&t, PART2);` */
static inline void cb_prof_lap(long long *t, cb_prof_part part) {
    long long now = cb_ctr_ns();
    cb_prof_ns[part] += now - *t;
    *t = now;
}

#endif
