/* Bamba hybrid engine (model_type "bamba"): Mamba2 mixer or attention per layer (attn_layer_indices),
 * SwiGLU MLP in every layer. Any layer pattern runs: all-Mamba2 (the mamba2-S ablation presets) and
 * all-attention included. Built from exactly the same attention layer and Mamba2 mixer as the two
 * pure engines. */
#include "../layers/stack.h"

static bool supports(const cb_config *cfg) { return cfg->model_type == CB_MT_BAMBA && cfg->has_mlp; }

static const cb_engine_ops bamba_engine = {
    .name = "bamba",
    .description = "Bamba hybrid: Mamba2 layers + a few attention layers, SwiGLU MLP everywhere",
    .supports = supports,
    CB_STACK_ENGINE_OPS,
};
CB_REGISTER_ENGINE(bamba_engine)
