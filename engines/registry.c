#include "engine.h"

#include <string.h>

#define CB_MAX_ENGINES 32
static const cb_engine_ops *engines[CB_MAX_ENGINES];
static int n_engines;

void cb_engine_register(const cb_engine_ops *ops) {
    if (n_engines < CB_MAX_ENGINES) engines[n_engines++] = ops;
}

const cb_engine_ops *cb_engine_find(const char *name) {
    for (int i = 0; i < n_engines; i++)
        if (strcmp(engines[i]->name, name) == 0) return engines[i];
    return NULL;
}

/* The first registered engine whose supports() accepts cfg (the built-in families' rules are disjoint). */
const cb_engine_ops *cb_engine_for_config(const cb_config *cfg) {
    for (int i = 0; i < n_engines; i++)
        if (engines[i]->supports(cfg)) return engines[i];
    return NULL;
}

int cb_engine_count(void) { return n_engines; }
const cb_engine_ops *cb_engine_at(int i) { return i >= 0 && i < n_engines ? engines[i] : NULL; }

void cb_engine_opts_default(cb_engine_opts *o) {
    *o = (cb_engine_opts){ .threads = 0, .mode = CB_MODE_EXACT, .kv_dtype = CB_BF16, .kv_round = CB_F32, .state_dtype = CB_F32,
                           .max_context = 4096, .max_batch = 1, .prefill_chunk = 512, .ssd_chunk = 0 };
}
