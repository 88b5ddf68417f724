/* Granite 4.0-H engine (model_type "granitemoehybrid"): Bamba's Mamba2 / attention mixers chosen by
 * layer_types, a shared SwiGLU expert plus routed experts (layers/moe.h) after every mixer, muP
 * multipliers on the embedding, the residual branches, the attention scores and the logits
 * (docs/models.md). The same shared layers as every other engine. */
#include "../layers/stack.h"

static bool supports(const cb_config *cfg) { return cfg->model_type == CB_MT_GRANITE && cfg->has_mlp; }

static const cb_engine_ops granite_engine = {
    .name = "granite",
    .description = "Granite 4.0-H hybrid: Mamba2 + attention layers, shared SwiGLU expert + routed experts, muP",
    .supports = supports,
    CB_STACK_ENGINE_OPS,
};
CB_REGISTER_ENGINE(granite_engine)
