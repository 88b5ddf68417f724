/* Granite 4.0-H (model_type "granitemoehybrid"): a Mamba2 mixer or attention per layer (layer_types),
 * then a shared SwiGLU expert (gate and up stacked in shared_mlp.input_linear) plus, when
 * num_local_experts > 0, routed experts (block_sparse_moe; engines/layers/moe.h). The checkpoint loads
 * with these names; no engine is registered yet: the stack still lacks the routed experts and the muP
 * multipliers (docs/engines.md, "Adding a model family"). */
#include "../stack/family.h"

static const cb_family granite = {
    .model_type = CB_MT_GRANITE,
    .mixers = CB_MIXERS_ATTENTION | CB_MIXERS_MAMBA2,
    .ff = CB_FF_SWIGLU,
    .names = { .embed = "model.embed_tokens.weight", .final_norm = "model.norm.weight", .lm_head = "lm_head.weight",
               .layer = "model.layers.%d", .mixer_norm = "input_layernorm.weight", .attention = "self_attn",
               .mamba = "mamba", .ff_norm = "post_attention_layernorm.weight", .ff = "shared_mlp",
               .gate_up_stacked = true, .moe = "block_sparse_moe" },
};
CB_REGISTER_FAMILY(granite)
