/* Llama (model_type "llama"), engine "transformer": attention and a SwiGLU MLP in every layer. */
#include "../stack/family.h"
#include "../stack/stack.h"

static const cb_family llama;
static bool supports(const cb_config *cfg) { return cb_family_supports(&llama, cfg); }

static const cb_family llama = {
    .engine = { .name = "transformer",
                .description = "Llama-family transformer: GQA attention with KV cache (flash prefill) + SwiGLU MLP",
                .supports = supports, CB_STACK_ENGINE_OPS },
    .model_type = CB_MT_LLAMA,
    .mixers = CB_MIXERS_ATTENTION,
    .ff = CB_FF_SWIGLU,
    .names = { .embed = "model.embed_tokens.weight", .final_norm = "model.norm.weight", .lm_head = "lm_head.weight",
               .layer = "model.layers.%d", .mixer_norm = "input_layernorm.weight", .attention = "self_attn",
               .ff_norm = "post_attention_layernorm.weight", .ff = "mlp" },
};
CB_REGISTER_FAMILY(llama)
