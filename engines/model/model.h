/* A loaded model: config + weights bound to the shared layer structs by each model_type's naming.
 * Weights stay in their storage dtype (mmapped checkpoint or preset buffers); kernels convert on the fly. */
#ifndef CB_MODEL_H
#define CB_MODEL_H

#include "config.h"
#include "safetensors.h"
#include "../kernels/tiles.h"

typedef struct {
    cb_weight q, k, v, o;          /* q [H*hd, d], k/v [KV*hd, d], o [d, H*hd] */
    cb_weight q_b, k_b, v_b, o_b;  /* biases (data NULL when absent) */
} cb_attn_weights;

typedef struct {
    cb_weight in_proj;   /* [m_in_proj_rows (+2*d_mlp skipped), d]; data already offset past d_mlp rows */
    cb_weight in_proj_b; /* optional */
    cb_weight conv_w;    /* [conv_dim, K] (the checkpoint's [conv_dim, 1, K]) */
    cb_weight conv_b;    /* optional [conv_dim] */
    cb_weight dt_bias, A_log, D; /* [heads] */
    cb_weight norm;      /* [d_inner] gated RMSNorm weight */
    cb_weight out_proj;  /* [d, d_inner] */
    cb_weight out_proj_b;
} cb_mamba_weights;

typedef struct {
    cb_weight gate, up, down;       /* gate/up [d_ff, d], down [d, d_ff] */
    cb_weight gate_b, up_b, down_b; /* optional */
} cb_mlp_weights;

/* Routed experts of one layer (granitemoehybrid's block_sparse_moe). The checkpoint's 3-D tensors are
 * bound as matrices whose rows run over (expert, output row), so a per-row 8-bit scale and
 * cb_weight_rows() views work unchanged; expert e's projections are cb_moe_expert() (layers/moe.h). */
typedef struct {
    cb_weight router;      /* [E, d] router.layer: kept in the checkpoint's precision when quantising */
    cb_weight experts_in;  /* [E * 2 * ff_e, d]: expert e's gate rows, then its up rows ([E, 2 ff_e, d]) */
    cb_weight experts_out; /* [E * d, ff_e] ([E, d, ff_e]) */
} cb_moe_weights;

/* Rows [r0, r0 + n) of a matrix as a matrix of its own (no copy; the per-row scale follows, and the tile
 * copy when r0 starts a 16-row tile group, kernels/tiles.h). */
static inline cb_weight cb_weight_rows(const cb_weight *w, int64_t r0, int64_t n) {
    cb_weight v = *w;
    v.data = (const char *)w->data + (size_t)r0 * (size_t)w->cols * cb_dtype_size(w->dtype);
    v.rows = n;
    if (w->scale) v.scale = w->scale + r0;
    v.tiles = w->tiles && r0 % CB_TILE_ROWS == 0 ? w->tiles + (size_t)(r0 / CB_TILE_ROWS) * cb_tiles_group_u32_of(w->dtype, w->cols)
                                                 : NULL;
    return v;
}

typedef struct {
    cb_mixer_kind kind;
    cb_weight in_norm;   /* input_layernorm (llama, bamba) / norm (mamba2) */
    cb_attn_weights attn;
    cb_mamba_weights mamba;
    cb_weight ff_norm;   /* post_attention_layernorm (llama, granite) / pre_ff_layernorm (bamba) */
    cb_mlp_weights mlp;  /* granite: the shared expert, gate/up = the two halves of shared_mlp.input_linear */
    cb_moe_weights moe;  /* granite with num_local_experts > 0; data NULL elsewhere */
} cb_layer_weights;

typedef struct cb_model {
    cb_config cfg;
    char name[128];       /* preset name or checkpoint dir */
    char source[512];     /* path, or "preset:<name> seed=<n>" */
    cb_weight embed;      /* [vocab, d] */
    cb_weight final_norm; /* [d] */
    cb_weight lm_head;    /* [vocab, d]; == embed when tied */
    cb_layer_weights layers[CB_MAX_LAYERS];
    size_t weight_bytes;  /* bytes of all bound weights, counted once */
    /* ownership */
    cb_safetensors st;    /* when loaded from a checkpoint */
    bool from_checkpoint;
    void *owned;          /* preset / converted buffers */
    size_t owned_bytes;
    bool owned_mapped;    /* owned is an mmap of owned_bytes (cb_preset_create_shapes), not cb_alloc'd */
    /* 8-bit weights (engines/model/quantize.h): chain of buffers owned by the model (quantised codes and
     * scales); cb_model_free must call cb_model_quant_release(m). */
    void *quant_owned;
    size_t quant_owned_bytes;
} cb_model;

/* Load a checkpoint directory (config.json + model.safetensors[.index.json]): parse the config,
 * open and validate the tensors, bind every tensor the config implies (error naming tensor, expected
 * and found shape when missing or wrong), warn on stderr about unexpected extra tensors. */
int cb_model_load(const char *dir, cb_model *m, cb_err *err);
/* Bind weights from an already-open safetensors set (used by cb_model_load and tests). */
int cb_model_bind(cb_model *m, cb_err *err);
void cb_model_free(cb_model *m);

#endif
