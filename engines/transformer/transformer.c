/* Pure transformer engine (model_type "llama"): attention + SwiGLU MLP in every layer.
 * The whole engine is this table: the layers are the shared ones (engines/layers/). */
#include "../layers/stack.h"

static bool supports(const cb_config *cfg) { return cfg->model_type == CB_MT_LLAMA && cfg->n_mamba_layers == 0; }

static const cb_engine_ops transformer_engine = {
    .name = "transformer",
    .description = "Llama-family transformer: GQA attention with KV cache (flash prefill) + SwiGLU MLP",
    .supports = supports,
    CB_STACK_ENGINE_OPS,
};
CB_REGISTER_ENGINE(transformer_engine)
