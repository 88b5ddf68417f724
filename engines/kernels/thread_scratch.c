/* Per-thread scratch (thread_scratch.h): each thread's buffers are listed in its own registry, freed by a
 * pthread key destructor when the thread exits. The main thread's are reclaimed by the process exit. */
#include "thread_scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

enum { MAX_BUFFERS = 32 }; /* distinct _Thread_local buffers in the kernels: well below */

static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static _Thread_local cb_tscratch *registry[MAX_BUFFERS];
static _Thread_local int registered;

static void free_thread_buffers(void *unused) {
    (void)unused;
    for (int i = 0; i < registered; i++) {
        free(registry[i]->p);
        *registry[i] = (cb_tscratch){ 0 };
    }
    registered = 0;
}

static void make_key(void) {
    if (pthread_key_create(&exit_key, free_thread_buffers) != 0) abort(); /* out of keys: a broken process */
}

void *cb_tscratch_get(cb_tscratch *s, size_t bytes) {
    if (bytes <= s->cap && s->p) return s->p;
    if (!s->registered) {
        pthread_once(&key_once, make_key);
        if (registered == MAX_BUFFERS) abort(); /* more scratch kinds than MAX_BUFFERS: raise it */
        registry[registered++] = s;
        s->registered = true;
        pthread_setspecific(exit_key, (void *)(uintptr_t)1); /* non-NULL: the destructor runs at exit */
    }
    free(s->p);
    const size_t size = (bytes + 63) & ~(size_t)63;
    s->p = aligned_alloc(64, size ? size : 64);
    s->cap = s->p ? bytes : 0;
    return s->p;
}
