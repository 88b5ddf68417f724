/* Bamba (model_type "bamba"), engine "bamba": a Mamba2 mixer or attention per layer (attn_layer_indices)
 * and a SwiGLU MLP in every layer. Any layer pattern runs: all-Mamba2 (the mamba2-S ablation presets)
 * and all-attention included. The same attention layer and Mamba2 mixer as the two pure families. */
#include "../stack/family.h"
#include "../stack/stack.h"

static const cb_family bamba;
static bool supports(const cb_config *cfg) { return cb_family_supports(&bamba, cfg); }

static const cb_family bamba = {
    .engine = { .name = "bamba",
                .description = "Bamba hybrid: Mamba2 layers + a few attention layers, SwiGLU MLP everywhere",
                .supports = supports, CB_STACK_ENGINE_OPS },
    .model_type = CB_MT_BAMBA,
    .mixers = CB_MIXERS_ATTENTION | CB_MIXERS_MAMBA2,
    .ff = CB_FF_SWIGLU,
    .names = { .embed = "model.embed_tokens.weight", .final_norm = "model.final_layernorm.weight",
               .lm_head = "lm_head.weight", .layer = "model.layers.%d", .mixer_norm = "input_layernorm.weight",
               .attention = "self_attn", .mamba = "mamba", .ff_norm = "pre_ff_layernorm.weight",
               .ff = "feed_forward" },
};
CB_REGISTER_FAMILY(bamba)
