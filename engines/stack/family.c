/* The family registry (filled by CB_REGISTER_FAMILY constructors) and the shared supports() rule. */
#include "family.h"

#define CB_MAX_FAMILIES 32
static const cb_family *families[CB_MAX_FAMILIES];
static int n_families;

void cb_family_register(const cb_family *f) {
    if (n_families < CB_MAX_FAMILIES) families[n_families++] = f;
}

const cb_family *cb_family_for(const cb_config *cfg) {
    for (int i = 0; i < n_families; i++)
        if (families[i]->model_type == cfg->model_type) return families[i];
    return NULL;
}

bool cb_family_supports(const cb_family *f, const cb_config *cfg) {
    if (cfg->model_type != f->model_type || cfg->has_mlp != (f->ff != CB_FF_NONE)) return false;
    for (int i = 0; i < cfg->n_layers; i++)
        if (!(f->mixers & (1u << cfg->mixer[i]))) return false;
    return true;
}
