/* 8-bit weights for a loaded model (docs/quantization.md): quantise the linear projections of a
 * cb_model at load time, bind checkpoints already stored in F8_E4M3, and count weight bytes by dtype. */
#ifndef CB_QUANTIZE_H
#define CB_QUANTIZE_H

#include "model.h"

/* Quantise every linear projection (attention q/k/v/o, MLP gate/up/down, Mamba2 in_proj/out_proj,
 * lm_head unless tied) from f32/f16/bf16 to `to` (CB_F8_E4M3 or CB_I8), per output channel. Embeddings,
 * norms, biases and SSM parameters (A_log, D, dt_bias, conv1d) keep their precision. Weights already
 * in `to` are left alone; weights in the other 8-bit format are an error. Updates m->weight_bytes
 * (the original buffers are no longer counted: mmapped checkpoint pages are not touched again).
 * The new buffers are owned by the model (released by cb_model_quant_release). */
int cb_model_quantize(cb_model *m, cb_dtype to, cb_err *err);

/* For the checkpoint loader, when it meets an F8_E4M3 (or I8) weight `name` (e.g.
 * "model.layers.0.self_attn.q_proj.weight"): `w` is that tensor [out, in]; `scale` is its companion
 * (`<prefix>.weight_scale`, or `<name>_scale`; F32/BF16/F16, shape [out, 1], [out], [1] or [] (per
 * tensor)); NULL is an error naming the tensor. Fills *out with data = w->data (mmapped, not copied),
 * its dtype and an fp32 per-row scale owned by m. Marks both tensors used. I8 weights (compressed-tensors
 * int-quantized) are bound the same way. */
int cb_quantized_bind(cb_model *m, cb_tensor *w, cb_tensor *scale, const char *name, cb_weight *out, cb_err *err);
/* Find the scale tensor for weight `name` in m->st: "<x>.weight" → "<x>.weight_scale", else "<name>_scale".
 * NULL when neither exists. */
cb_tensor *cb_quantized_find_scale(const cb_model *m, const char *name);

/* Bytes of every bound weight by storage dtype (scales counted with their 8-bit weight's dtype; the
 * tied lm_head counted once). */
void cb_weight_bytes_by_dtype(const cb_model *m, size_t out[CB_DTYPE_COUNT]);

/* Bytes of the bound weights by storage: 8-bit codes, their fp32 scales, kept-precision tensors (the
 * same split cb_config_weight_split computes from a config). */
void cb_model_weight_split(const cb_model *m, cb_weight_split *out);

/* Replace every 8-bit projection by an fp32 copy of what it means (scale[r] · code), owned by m: the
 * reference `ctxbench verify --weights-dtype` checks the 8-bit kernels against. */
int cb_model_dequantize(cb_model *m, cb_err *err);

/* After binding: set m->cfg.q8 (and q8_keep_lm_head) from the linear weights actually bound; a model
 * mixing F8_E4M3 and I8 projections is an error naming both. */
int cb_model_note_q8(cb_model *m, cb_err *err);

/* Pointers to the model's quantisable linear projections (attention q/k/v/o, Mamba2 in/out_proj, MLP,
 * routed experts, untied lm_head) that are bound; returns how many (at most max). A tensor may hold
 * two (granite's shared_mlp.input_linear: gate rows, then up rows). */
#define CB_MAX_LINEARS (11 * CB_MAX_LAYERS + 1)
int cb_model_linears(cb_model *m, cb_weight **out, int max);

/* Free the buffers cb_model_quantize / cb_quantized_bind allocated (safe to call twice, or on a model
 * that has none). */
void cb_model_quant_release(cb_model *m);

#endif
