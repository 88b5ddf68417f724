/* Named random-weight models: for each scale S (9b, s, xs, tiny), `bamba-S` (hybrid, attention at
 * layers 9/18/27 of 32 or 3/7 of 8 for tiny), `mamba2-S` (model_type bamba, no attention layer) and
 * `transformer-S` (model_type llama, same width/heads/MLP/vocab/depth). Weights are generated from a
 * seed straight into their storage dtype — no fp32 copy of 9B weights. */
#ifndef CB_PRESETS_H
#define CB_PRESETS_H

#include "model.h"

int cb_preset_count(void);
const char *cb_preset_name(int i);
/* Config only (memory planning, `ctxbench models`): no weights allocated. */
int cb_preset_config(const char *name, cb_config *cfg, cb_err *err);
/* Config + deterministic random weights in `dtype` (f32/f16/bf16), or fp8/int8: the linear projections
 * generated straight into 8 bits (per-row scales; the quantisation of the bf16 preset, bit for bit) and
 * everything else in bf16, with no bf16 copy of the projections ever allocated. */
int cb_preset_create(const char *name, uint64_t seed, cb_dtype dtype, cb_model *m, cb_err *err);
/* The same model with its tensors bound to zero pages that are never written (nothing generated, no
 * memory reserved): for checking what an engine allocates at a scale whose weights do not fit
 * (`memory_check: allocate`, docs/methodology.md). Never run a forward pass on it. */
int cb_preset_create_shapes(const char *name, cb_dtype dtype, cb_model *m, cb_err *err);
/* A model argument: a preset name, or a checkpoint directory. `dtype`: a preset's weights; for a
 * checkpoint fp8/int8 quantises at load (cb_model_quantize), anything else keeps the stored dtypes. */
int cb_model_open(const char *preset_or_dir, uint64_t seed, cb_dtype dtype, cb_model *m, cb_err *err);
int cb_model_config(const char *preset_or_dir, cb_config *cfg, cb_err *err);
/* Adjust a config from cb_model_config to what cb_model_open(arg, seed, dtype) will bind, so that plans
 * count the right weight bytes: 8-bit sets cfg->q8; another dtype sets a preset's weights_dtype. */
void cb_config_for_weights(const char *preset_or_dir, cb_dtype dtype, cb_config *cfg);

#endif
