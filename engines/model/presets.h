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
/* Config + deterministic random weights in `dtype` (f32/f16/bf16). */
int cb_preset_create(const char *name, uint64_t seed, cb_dtype dtype, cb_model *m, cb_err *err);
/* A model argument: a preset name, or a checkpoint directory. */
int cb_model_open(const char *preset_or_dir, uint64_t seed, cb_dtype preset_dtype, cb_model *m, cb_err *err);
int cb_model_config(const char *preset_or_dir, cb_config *cfg, cb_err *err);

#endif
