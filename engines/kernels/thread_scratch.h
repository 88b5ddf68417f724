/* Per-thread scratch buffers of the kernels (packing panels, split or rounded activations): grown on demand,
 * 64-byte aligned, contents not kept across growth, and freed when their thread exits. OpenMP teams grow and
 * shrink (a test or a run changing the thread count), and a bare _Thread_local pointer leaked its buffer then. */
#ifndef CB_THREAD_SCRATCH_H
#define CB_THREAD_SCRATCH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    void *p;
    size_t cap;
    bool registered; /* with this thread's exit hook */
} cb_tscratch;

/* s must be a _Thread_local object. At least `bytes` bytes, or NULL when out of memory (s is then empty and
 * the caller takes its fallback). */
void *cb_tscratch_get(cb_tscratch *s, size_t bytes);

#endif
