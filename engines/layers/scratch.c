#include "scratch.h"

#include <stdlib.h>

static void *arena;
static size_t arena_size;
static int users;

int cb_scratch_reserve(size_t bytes, cb_err *err) {
    if (bytes > arena_size) {
        void *p = cb_alloc_in(CB_ALLOC_SCRATCH, bytes, err);
        if (!p) return -1;
        cb_free(arena);
        arena = p;
        arena_size = bytes;
    }
    users++;
    return 0;
}

void cb_scratch_release(size_t bytes) {
    (void)bytes;
    if (users > 0 && --users == 0) {
        cb_free(arena);
        arena = NULL;
        arena_size = 0;
    }
}

void *cb_scratch_get(void) { return arena; }
size_t cb_scratch_size(void) { return arena_size; }
