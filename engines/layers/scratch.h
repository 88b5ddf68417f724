/* One scratch arena shared by all layers (and engines) of the process. Layers run one at a time (the
 * parallelism is inside them), so a layer may use the whole arena during a call and must not keep
 * anything in it between calls. Per-layer scratch would cost L× the memory (≈1 GB at 9B shapes).
 *
 * At create, a layer calls cb_scratch_reserve(bytes) with what it needs for its largest call; at run
 * time cb_scratch_get() returns a 64-byte-aligned buffer of at least every reservation made so far.
 * cb_scratch_release(bytes) at destroy; the arena is freed when the last reservation is released.
 * Memory reports: a layer reports its reservation as its scratch; the stack reports the arena (the max),
 * and plan() computes the same max analytically. */
#ifndef CB_SCRATCH_H
#define CB_SCRATCH_H

#include "../common.h"

int cb_scratch_reserve(size_t bytes, cb_err *err);
void cb_scratch_release(size_t bytes);
void *cb_scratch_get(void);
size_t cb_scratch_size(void);

#endif
