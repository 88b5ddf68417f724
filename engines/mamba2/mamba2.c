/* Pure Mamba2 engine (model_type "mamba2"): one Mamba2 mixer per layer, no MLP; constant state per
 * sequence. The layers are the shared ones (engines/layers/). */
#include "../layers/stack.h"

static bool supports(const cb_config *cfg) { return cfg->model_type == CB_MT_MAMBA2 && cfg->n_attn_layers == 0; }

static const cb_engine_ops mamba2_engine = {
    .name = "mamba2",
    .description = "Mamba2 state-space model: chunked-SSD prefill, recurrent decode",
    .supports = supports,
    CB_STACK_ENGINE_OPS,
};
CB_REGISTER_ENGINE(mamba2_engine)
