#include "engine.h"

#include <string.h>

static cb_registry engines;

void cb_engine_register(const cb_engine_ops *ops) { cb_registry_add(&engines, ops, "engines"); }
int cb_engine_count(void) { return engines.n; }
const cb_engine_ops *cb_engine_at(int i) { return i >= 0 && i < engines.n ? engines.item[i] : NULL; }

const cb_engine_ops *cb_engine_find(const char *name) {
    for (int i = 0; i < engines.n; i++)
        if (strcmp(cb_engine_at(i)->name, name) == 0) return cb_engine_at(i);
    return NULL;
}

/* The first registered engine whose supports() accepts cfg (the built-in families' rules are disjoint). */
const cb_engine_ops *cb_engine_for_config(const cb_config *cfg) {
    for (int i = 0; i < engines.n; i++)
        if (cb_engine_at(i)->supports(cfg)) return cb_engine_at(i);
    return NULL;
}

void cb_engine_opts_default(cb_engine_opts *o) {
    *o = (cb_engine_opts){ .threads = 0, .mode = CB_MODE_EXACT, .kv_dtype = CB_BF16, .kv_round = CB_F32, .state_dtype = CB_F32,
                           .max_context = 4096, .max_batch = 1, .prefill_chunk = 512, .ssd_chunk = 0,
                           .tile_weights = cb_tile_weights_default() };
}
