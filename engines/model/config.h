/* config.json -> typed model description for model_type llama, mamba2, bamba and granitemoehybrid.
 * One struct describes all three: a stack of layers, each with a sequence mixer (attention or
 * Mamba2) and optionally an MLP. Engines read only this struct, never the JSON. */
#ifndef CB_CONFIG_H
#define CB_CONFIG_H

#include "../types.h"

typedef enum { CB_MT_LLAMA = 0, CB_MT_MAMBA2, CB_MT_BAMBA, CB_MT_GRANITE } cb_model_type;
typedef enum { CB_ARCH_TRANSFORMER = 0, CB_ARCH_MAMBA2, CB_ARCH_HYBRID } cb_arch;
typedef enum { CB_MIXER_ATTENTION = 0, CB_MIXER_MAMBA2 } cb_mixer_kind;

#define CB_MAX_LAYERS 256
/* Largest dimensions a config may give (real checkpoints are far below): with them, parameter counts and
 * weight bytes stay below 2^62, so no product in a plan or a count can overflow (docs/promises.md). */
#define CB_MAX_HIDDEN (1 << 20)
#define CB_MAX_VOCAB (1 << 24)
#define CB_MAX_FF (1 << 24)
#define CB_MAX_ATTN_WIDTH (1 << 26)        /* num_attention_heads x head_dim */
#define CB_MAX_MAMBA_INNER (1 << 26)       /* mamba heads x head_dim */
#define CB_MAX_MAMBA_GROUP_STATE (1 << 24) /* mamba groups x state */

typedef struct {
    cb_model_type model_type;
    cb_arch arch;            /* transformer (no mamba layer), mamba2 (no attention layer), hybrid */
    char model_type_str[24]; /* "llama" | "mamba2" | "bamba" | "granitemoehybrid" */

    int d_model;    /* hidden_size */
    int n_layers;   /* num_hidden_layers */
    int vocab;      /* vocab_size */
    double eps;     /* rms_norm_eps / layer_norm_epsilon: all RMSNorms */
    bool tie_embeddings;
    cb_dtype weights_dtype; /* config "dtype"/"torch_dtype"; the checkpoint's tensors decide in the end */
    /* 8-bit linear projections (docs/quantization.md): CB_F8_E4M3 or CB_I8 when the linear
     * projections are stored in 8 bits with one fp32 scale per output row (a checkpoint's
     * quantization_config, --weights-dtype, or what the loader bound); any other value (the zero
     * default included): every weight is in weights_dtype. */
    cb_dtype q8;
    bool q8_keep_lm_head; /* with q8: lm_head stays in weights_dtype (llm-compressor's ignore: [lm_head]) */

    cb_mixer_kind mixer[CB_MAX_LAYERS]; /* per layer */
    bool has_mlp;                       /* llama, bamba: true; mamba2: false */
    int n_attn_layers, n_mamba_layers;

    /* attention (valid when n_attn_layers > 0) */
    int n_heads, n_kv_heads, head_dim;
    bool attn_bias; /* attention_bias: q,k,v,o biases */
    cb_rope rope;

    /* MLP (valid when has_mlp) */
    int d_ff;       /* intermediate_size; granitemoehybrid: shared_intermediate_size (the shared expert) */
    bool mlp_bias;

    /* Routed mixture of experts after the MLP (granitemoehybrid with num_local_experts > 0; n_experts 0
     * elsewhere): top_k of n_experts SwiGLU experts of width d_ff_expert (its intermediate_size). */
    int n_experts, top_k, d_ff_expert;

    /* muP multipliers (docs/models.md): 1 except for granitemoehybrid. x = embed * embedding_multiplier;
     * each residual branch * residual_multiplier; logits / logits_scaling. attn_scale: the attention score
     * scale (attention_multiplier); 0 = 1/sqrt(head_dim). */
    double embedding_multiplier, residual_multiplier, logits_scaling, attn_scale;

    /* Mamba2 mixer (valid when n_mamba_layers > 0). d_inner = m_heads * m_head_dim. */
    int m_heads, m_head_dim, m_state, m_groups, m_conv, m_chunk;
    int m_d_inner, m_conv_dim;   /* conv_dim = d_inner + 2 * groups * state */
    int m_in_proj_rows;          /* 2*d_inner + 2*groups*state + heads (without d_mlp extra rows) */
    bool m_proj_bias;            /* in_proj / out_proj bias (use_bias / mamba_proj_bias) */
    bool m_conv_bias;            /* use_conv_bias / mamba_conv_bias */
    double m_dt_min, m_dt_max;   /* time_step_limit (0, inf) by default */
} cb_config;

/* Parse dir/config.json (or a path to a .json file). Errors name the file and key. */
int cb_config_load(const char *path, cb_config *cfg, cb_err *err);
/* Parse from a JSON text in memory; `origin` names it in errors. Accepts bare Infinity/NaN. */
int cb_config_parse(const char *json_text, const char *origin, cb_config *cfg, cb_err *err);
/* Check derived shapes are consistent (heads divide, groups divide heads, ...). Called by the parsers. */
int cb_config_validate(const cb_config *cfg, const char *origin, cb_err *err);
/* Write an HF-style config.json for this description (used by presets and tests). */
int cb_config_write_json(const cb_config *cfg, const char *path, cb_err *err);

const char *cb_arch_name(cb_arch a); /* "transformer" | "mamba2" | "hybrid" */

/* Parameter count implied by the config (embeddings + lm_head unless tied), every expert included. */
int64_t cb_config_param_count(const cb_config *cfg);
/* Parameters one token reads: the total less the routed experts it does not use (n_experts - top_k per
 * layer). Equal to the total for models without routed experts. */
int64_t cb_config_active_param_count(const cb_config *cfg);

/* Weight bytes implied by the config, by storage: 8-bit codes (q8), their fp32 per-row scales, and
 * the tensors kept in weights_dtype (embeddings, norms, biases, SSM parameters, and every linear
 * projection when cfg->q8 is not an 8-bit format). total = q8 + scales + kept. */
typedef struct { size_t q8, scales, kept, total; } cb_weight_split;
void cb_config_weight_split(const cb_config *cfg, cb_weight_split *out);
/* Weight bytes one token reads: the total less the routed experts it does not run (their 8-bit scales
 * included). Equal to the total without routed experts. */
size_t cb_config_active_weight_bytes(const cb_config *cfg);
static inline bool cb_config_is_q8(const cb_config *cfg) { return cfg->q8 == CB_F8_E4M3 || cfg->q8 == CB_I8; }

#endif
