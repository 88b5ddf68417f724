/* Bamba (model_type "bamba"), engine "bamba": a Mamba2 mixer or attention per layer (attn_layer_indices)
 * and a SwiGLU MLP in every layer. Any layer pattern runs: all-Mamba2 (the mamba2-S ablation presets)
 * and all-attention included. The same attention layer and Mamba2 mixer as the two pure families. */
#include "../stack/family.h"
#include "../stack/stack.h"

CB_FAMILY(bamba, "bamba", "Bamba hybrid: Mamba2 layers + a few attention layers, SwiGLU MLP everywhere", CB_MT_BAMBA,
          CB_MIXERS_ATTENTION | CB_MIXERS_MAMBA2, CB_FF_SWIGLU,
          CB_NAMES_MODEL_LAYOUT, .final_norm = "model.final_layernorm.weight", .mamba = "mamba",
          .ff_norm = "pre_ff_layernorm.weight", .ff = "feed_forward")
