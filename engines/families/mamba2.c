/* Mamba2 (model_type "mamba2"), engine "mamba2": one Mamba2 mixer per layer, no feed-forward; constant
 * state per sequence. */
#include "../stack/family.h"
#include "../stack/stack.h"

static const cb_family mamba2;
static bool supports(const cb_config *cfg) { return cb_family_supports(&mamba2, cfg); }

static const cb_family mamba2 = {
    .engine = { .name = "mamba2", .description = "Mamba2 state-space model: chunked-SSD prefill, recurrent decode",
                .supports = supports, CB_STACK_ENGINE_OPS },
    .model_type = CB_MT_MAMBA2,
    .mixers = CB_MIXERS_MAMBA2,
    .ff = CB_FF_NONE,
    .names = { .embed = "backbone.embeddings.weight", .final_norm = "backbone.norm_f.weight",
               .lm_head = "lm_head.weight", .layer = "backbone.layers.%d", .mixer_norm = "norm.weight",
               .mamba = "mixer" },
};
CB_REGISTER_FAMILY(mamba2)
