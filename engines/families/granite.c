/* Granite 4.0-H (model_type "granitemoehybrid"), engine "granite": a Mamba2 mixer or attention per layer
 * (layer_types), then a shared SwiGLU expert (gate and up stacked in shared_mlp.input_linear) plus, when
 * num_local_experts > 0, routed experts (block_sparse_moe; engines/layers/moe.h). The config's muP
 * multipliers (embedding, residual branches, attention scores, logits) and NoPE/RoPE are the stack's and the
 * attention layer's, read from cb_config (docs/models.md). */
#include "../stack/family.h"
#include "../stack/stack.h"

CB_FAMILY(granite, "granite",
          "Granite 4.0-H hybrid: Mamba2 + attention layers, shared SwiGLU expert + routed experts, muP", CB_MT_GRANITE,
          CB_MIXERS_ATTENTION | CB_MIXERS_MAMBA2, CB_FF_SWIGLU,
          CB_NAMES_MODEL_LAYOUT, .final_norm = "model.norm.weight", .mamba = "mamba",
          .ff_norm = "post_attention_layernorm.weight", .ff = "shared_mlp", .gate_up_stacked = true,
          .moe = "block_sparse_moe")
