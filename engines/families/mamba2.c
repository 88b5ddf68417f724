/* Mamba2 (model_type "mamba2"), engine "mamba2": one Mamba2 mixer per layer, no feed-forward; constant
 * state per sequence. */
#include "../stack/family.h"
#include "../stack/stack.h"

CB_FAMILY(mamba2, "mamba2", "Mamba2 state-space model: chunked-SSD prefill, recurrent decode", CB_MT_MAMBA2,
          CB_MIXERS_MAMBA2, CB_FF_NONE,
          .embed = "backbone.embeddings.weight", .final_norm = "backbone.norm_f.weight", .lm_head = "lm_head.weight",
          .layer = "backbone.layers.%d", .mixer_norm = "norm.weight", .mamba = "mixer")
