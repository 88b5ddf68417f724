/* A model family: what the one engine (the layer stack, stack.h) needs to know about a Hugging Face
 * model_type — which layers it may have, which feed-forward, and how its tensors are named. A family is
 * this descriptor in one file of engines/families/; the stack, the shared layers and the loader do the
 * rest (docs/engines.md, "Adding a model family"). */
#ifndef CB_FAMILY_H
#define CB_FAMILY_H

#include "../engine.h"

/* The feed-forward block after each layer's mixer. CB_FF_SWIGLU: the SwiGLU MLP, followed by the routed
 * experts (layers/moe.h) when the config has num_local_experts > 0 and the family names a moe module. */
typedef enum { CB_FF_NONE = 0, CB_FF_SWIGLU } cb_ff_kind;

/* Which mixers a family's layers may use (bits; cfg->mixer[i] says which each layer has). */
enum { CB_MIXERS_ATTENTION = 1 << CB_MIXER_ATTENTION, CB_MIXERS_MAMBA2 = 1 << CB_MIXER_MAMBA2 };

/* Tensor names. Globals are full names; a layer's tensors are "<layer % i>.<module>.<tensor>", e.g.
 * "model.layers.3" "." "self_attn" "." "q_proj.weight". Inside the modules the names are shared by
 * every family: attention {q,k,v,o}_proj, Mamba2 {in_proj, conv1d, dt_bias, A_log, D, norm, out_proj},
 * SwiGLU {gate,up,down}_proj (engines/model/model.c binds them). NULL: the family has no such part. */
typedef struct {
    const char *embed, *final_norm, *lm_head; /* "model.embed_tokens.weight", ... */
    const char *layer;                        /* printf format of layer i's prefix: "model.layers.%d" */
    const char *mixer_norm;                   /* RMSNorm before the mixer: "input_layernorm.weight" */
    const char *attention, *mamba;            /* mixer modules: "self_attn", "mamba" */
    const char *ff_norm, *ff;                 /* RMSNorm before the feed-forward, and its module */
    bool gate_up_stacked;  /* SwiGLU as "input_linear" [2 ff, d] (gate rows, then up) + "output_linear" */
    const char *moe;       /* routed experts' module ("block_sparse_moe"), bound when cfg->n_experts > 0 */
} cb_tensor_names;

typedef struct cb_family {
    /* name, description and supports; the rest is the stack's (CB_STACK_ENGINE_OPS). name NULL: the
     * family loads (names) but no engine runs it yet. */
    cb_engine_ops engine;
    cb_model_type model_type;
    unsigned mixers;       /* CB_MIXERS_* the layers may use */
    cb_ff_kind ff;
    cb_tensor_names names;
} cb_family;

/* Whether cfg is this family's: its model_type, only allowed mixers, and a feed-forward iff the family has one. */
bool cb_family_supports(const cb_family *f, const cb_config *cfg);
/* The family registered for cfg->model_type (NULL: none). */
const cb_family *cb_family_for(const cb_config *cfg);
void cb_family_register(const cb_family *f);

/* The tensor names the Llama-derived families share: transformers' `model.*` layout (Llama, Bamba,
 * Granite 4.0-H). Each adds its final norm, feed-forward and Mamba2 names. */
#define CB_NAMES_MODEL_LAYOUT                                                                                \
    .embed = "model.embed_tokens.weight", .lm_head = "lm_head.weight", .layer = "model.layers.%d",            \
    .mixer_norm = "input_layernorm.weight", .attention = "self_attn"

/* A family's file is its descriptor, CB_FAMILY(fam, engine name, description, model_type, mixers,
 * feed-forward, tensor names...): it defines the family `fam` and its engine, whose supports() is
 * cb_family_supports, and registers both. A family with an extra rule in supports() writes its
 * descriptor out and registers it with CB_REGISTER_FAMILY(fam). */
#define CB_REGISTER_FAMILY(fam)                                                                              \
    __attribute__((constructor)) static void cb_register_family_##fam(void) {                                \
        cb_family_register(&(fam));                                                                          \
        if ((fam).engine.name) cb_engine_register(&(fam).engine);                                            \
    }
#define CB_FAMILY(fam, engine_name, engine_description, mt, mixer_bits, ff_kind, ...)                        \
    static const cb_family fam;                                                                              \
    static bool fam##_supports(const cb_config *cfg) { return cb_family_supports(&(fam), cfg); }             \
    static const cb_family fam = {                                                                           \
        .engine = { .name = (engine_name), .description = (engine_description), .supports = fam##_supports,  \
                    CB_STACK_ENGINE_OPS },                                                                   \
        .model_type = (mt), .mixers = (mixer_bits), .ff = (ff_kind), .names = { __VA_ARGS__ },                \
    };                                                                                                       \
    CB_REGISTER_FAMILY(fam)

#endif
