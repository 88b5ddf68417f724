/* Llama (model_type "llama"), engine "transformer": attention and a SwiGLU MLP in every layer. */
#include "../stack/family.h"
#include "../stack/stack.h"

CB_FAMILY(llama, "transformer", "Llama-family transformer: GQA attention with KV cache (flash prefill) + SwiGLU MLP",
          CB_MT_LLAMA, CB_MIXERS_ATTENTION, CB_FF_SWIGLU,
          CB_NAMES_MODEL_LAYOUT, .final_norm = "model.norm.weight", .ff_norm = "post_attention_layernorm.weight", .ff = "mlp")
