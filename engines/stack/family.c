/* The family registry (filled by CB_REGISTER_FAMILY constructors) and the shared supports() rule. */
#include "family.h"

static cb_registry families;

void cb_family_register(const cb_family *f) { cb_registry_add(&families, f, "model families"); }

const cb_family *cb_family_for(const cb_config *cfg) {
    for (int i = 0; i < families.n; i++) {
        const cb_family *f = families.item[i];
        if (f->model_type == cfg->model_type) return f;
    }
    return NULL;
}

bool cb_family_supports(const cb_family *f, const cb_config *cfg) {
    if (cfg->model_type != f->model_type || cfg->has_mlp != (f->ff != CB_FF_NONE)) return false;
    for (int i = 0; i < cfg->n_layers; i++)
        if (!(f->mixers & (1u << cfg->mixer[i]))) return false;
    return true;
}
