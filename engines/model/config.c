/* config.json -> cb_config for llama, mamba2 and bamba, transformers 4.x and 5.x forms.
 * Real checkpoints contain bare Infinity / NaN (Python's json.dumps), which is not JSON: the text is
 * rewritten first, outside strings, so that jansson sees those tokens as strings we then interpret. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *cb_arch_name(cb_arch a) {
    switch (a) {
    case CB_ARCH_TRANSFORMER: return "transformer";
    case CB_ARCH_MAMBA2: return "mamba2";
    case CB_ARCH_HYBRID: return "hybrid";
    }
    return "?";
}

/* Bare Infinity / -Infinity / NaN outside strings -> "Infinity" / "-Infinity" / "NaN" (quoted).
 * Each rewrite grows the text by 2 bytes at most, so 2*len+1 is always enough. */
static char *quote_nonfinite_tokens(const char *in) {
    size_t n = strlen(in);
    char *out = malloc(2 * n + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < n) out[o++] = in[++i];
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') { in_str = true; out[o++] = c; continue; }
        static const char *tokens[] = { "-Infinity", "Infinity", "NaN" };
        bool done = false;
        for (int t = 0; t < 3 && !done; t++) {
            size_t tl = strlen(tokens[t]);
            if (strncmp(in + i, tokens[t], tl) == 0) {
                out[o++] = '"';
                memcpy(out + o, tokens[t], tl);
                o += tl;
                out[o++] = '"';
                i += tl - 1;
                done = true;
            }
        }
        if (!done) out[o++] = c;
    }
    out[o] = 0;
    return out;
}

typedef struct {
    json_t *root;
    const char *origin;
    cb_err *err;
} ctx;

static bool is_absent(const json_t *v) { return v == NULL || json_is_null(v); }

/* A number, or "Infinity"/"-Infinity"/"NaN" (from the rewrite), or {"__float__": "..."}. */
static int as_double(const json_t *v, double *out) {
    if (json_is_number(v)) { *out = json_number_value(v); return 0; }
    if (json_is_object(v)) v = json_object_get(v, "__float__");
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "Infinity") == 0 || strcmp(s, "inf") == 0) { *out = INFINITY; return 0; }
        if (strcmp(s, "-Infinity") == 0 || strcmp(s, "-inf") == 0) { *out = -INFINITY; return 0; }
        if (strcmp(s, "NaN") == 0 || strcmp(s, "nan") == 0) { *out = NAN; return 0; }
    }
    return -1;
}

/* An absent key: 1 when it may be (the caller takes its default), -1 with the error when it is required;
 * 0 when present. */
static int absent(ctx *c, const json_t *v, const char *key, bool required, const char *expected) {
    if (!is_absent(v)) return 0;
    if (!required) return 1;
    cb_err_set(c->err, "%s: missing required key \"%s\" (expected %s)", c->origin, key, expected);
    return -1;
}

static int get_int(ctx *c, const json_t *obj, const char *key, bool required, int def, int *out) {
    const json_t *v = json_object_get(obj, key);
    int a = absent(c, v, key, required, "an integer");
    if (a) {
        *out = def;
        return a > 0 ? 0 : -1;
    }
    double d;
    if (json_is_integer(v)) d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) d = json_real_value(v);
    else {
        cb_err_set(c->err, "%s: key \"%s\": expected an integer", c->origin, key);
        return -1;
    }
    if (d < 0 || d > 1e9) {
        cb_err_set(c->err, "%s: key \"%s\": expected a non-negative integer below 1e9, found %.0f", c->origin,
                   key, d);
        return -1;
    }
    *out = (int)d;
    return 0;
}

static int get_double(ctx *c, const json_t *obj, const char *key, bool required, double def, double *out) {
    const json_t *v = json_object_get(obj, key);
    int a = absent(c, v, key, required, "a number");
    if (a) {
        *out = def;
        return a > 0 ? 0 : -1;
    }
    if (as_double(v, out) != 0) {
        cb_err_set(c->err, "%s: key \"%s\": expected a number", c->origin, key);
        return -1;
    }
    return 0;
}

static int get_bool(ctx *c, const json_t *obj, const char *key, bool def, bool *out) {
    const json_t *v = json_object_get(obj, key);
    if (is_absent(v)) { *out = def; return 0; }
    if (!json_is_boolean(v)) {
        cb_err_set(c->err, "%s: key \"%s\": expected true or false", c->origin, key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* rope: 5.x rope_parameters, or 4.x rope_theta + rope_scaling ({rope_type|type, factor, ...}). */
static int parse_rope(ctx *c, cb_config *cfg, double default_partial) {
    const json_t *rp = json_object_get(c->root, "rope_parameters");
    const json_t *rs = json_object_get(c->root, "rope_scaling");
    if (!is_absent(rp) && !json_is_object(rp)) {
        cb_err_set(c->err, "%s: key \"rope_parameters\": expected an object", c->origin);
        return -1;
    }
    if (!is_absent(rs) && !json_is_object(rs)) {
        cb_err_set(c->err, "%s: key \"rope_scaling\": expected an object or null", c->origin);
        return -1;
    }
    double theta, partial;
    if (get_double(c, c->root, "rope_theta", false, 10000.0, &theta)) return -1;
    if (get_double(c, c->root, "partial_rotary_factor", false, default_partial, &partial)) return -1;
    const json_t *scaling = NULL;
    if (!is_absent(rp)) {
        if (get_double(c, rp, "rope_theta", false, theta, &theta)) return -1;
        if (get_double(c, rp, "partial_rotary_factor", false, partial, &partial)) return -1;
        scaling = rp;
    } else if (!is_absent(rs)) {
        scaling = rs;
    }
    cfg->rope.type = CB_ROPE_DEFAULT;
    cfg->rope.theta = theta;
    cfg->rope.factor = 1.0;
    cfg->rope.low_freq_factor = 1.0;
    cfg->rope.high_freq_factor = 1.0;
    cfg->rope.original_max_pos = 0;
    if (scaling) {
        const json_t *t = json_object_get(scaling, "rope_type");
        const char *tkey = "rope_type";
        if (is_absent(t)) { t = json_object_get(scaling, "type"); tkey = "type"; }
        const char *type = "default";
        if (!is_absent(t)) {
            if (!json_is_string(t)) {
                cb_err_set(c->err, "%s: key \"%s\": expected a string", c->origin, tkey);
                return -1;
            }
            type = json_string_value(t);
        }
        if (strcmp(type, "llama3") == 0) {
            cfg->rope.type = CB_ROPE_LLAMA3;
            if (get_double(c, scaling, "factor", true, 0, &cfg->rope.factor) ||
                get_double(c, scaling, "low_freq_factor", true, 0, &cfg->rope.low_freq_factor) ||
                get_double(c, scaling, "high_freq_factor", true, 0, &cfg->rope.high_freq_factor) ||
                get_int(c, scaling, "original_max_position_embeddings", true, 0, &cfg->rope.original_max_pos))
                return -1;
        } else if (strcmp(type, "default") != 0) {
            cb_err_set(c->err, "%s: key \"%s\": rope type \"%s\" is not supported (expected \"default\" or \"llama3\")",
                       c->origin, tkey, type);
            return -1;
        }
    }
    if (!(partial > 0 && partial <= 1)) {
        cb_err_set(c->err, "%s: key \"partial_rotary_factor\": expected a number in (0, 1], found %g", c->origin,
                   partial);
        return -1;
    }
    cfg->rope.rot_dim = (int)floor(cfg->head_dim * partial + 1e-9); /* HF: int(head_dim * factor) */
    return 0;
}

static int parse_dtype(ctx *c, cb_config *cfg) {
    const char *keys[] = { "dtype", "torch_dtype" };
    cfg->weights_dtype = CB_F32;
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(c->root, keys[i]);
        if (is_absent(v)) continue;
        if (!json_is_string(v) || cb_dtype_parse(json_string_value(v), &cfg->weights_dtype) != 0 ||
            !(cfg->weights_dtype == CB_F32 || cfg->weights_dtype == CB_F16 || cfg->weights_dtype == CB_BF16)) {
            cb_err_set(c->err, "%s: key \"%s\": expected \"float32\", \"float16\" or \"bfloat16\"", c->origin,
                       keys[i]);
            return -1;
        }
        return 0;
    }
    return 0;
}

/* quantization_config of a pre-quantised checkpoint (docs/quantization.md): vLLM "fp8", or
 * compressed-tensors (llm-compressor) "float-quantized" / "int-quantized". The tensors decide in the
 * end (the loader); this only lets plans count 8-bit weights without opening them. */
static bool list_has(const json_t *a, const char *s) {
    size_t i;
    const json_t *v;
    if (!json_is_array(a)) return false;
    json_array_foreach(a, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

static int parse_quant(ctx *c, cb_config *cfg) {
    const json_t *q = json_object_get(c->root, "quantization_config");
    if (is_absent(q)) return 0;
    const json_t *m = json_is_object(q) ? json_object_get(q, "quant_method") : NULL;
    const char *method = json_is_string(m) ? json_string_value(m) : NULL, *fmt = NULL;
    if (method && strcmp(method, "fp8") == 0) {
        cfg->q8 = CB_F8_E4M3;
        cfg->q8_keep_lm_head = list_has(json_object_get(q, "ignored_layers"), "lm_head");
        return 0;
    }
    if (method && strcmp(method, "compressed-tensors") == 0) {
        const json_t *f = json_object_get(q, "format");
        fmt = json_is_string(f) ? json_string_value(f) : "";
        if (strcmp(fmt, "float-quantized") == 0 || strcmp(fmt, "int-quantized") == 0) {
            cfg->q8 = fmt[0] == 'f' ? CB_F8_E4M3 : CB_I8;
            cfg->q8_keep_lm_head = list_has(json_object_get(q, "ignore"), "lm_head");
            return 0;
        }
    }
    cb_err_set(c->err, "%s: key \"quantization_config\": quant_method \"%.40s\"%s%.40s%s not supported (expected \"fp8\", "
               "or \"compressed-tensors\" with format \"float-quantized\" or \"int-quantized\")", c->origin,
               method ? method : "(missing)", fmt ? " format \"" : "", fmt ? fmt : "", fmt ? "\"" : "");
    return -1;
}

static int parse_attention(ctx *c, cb_config *cfg, bool bamba) {
    if (get_int(c, c->root, "num_attention_heads", true, 0, &cfg->n_heads)) return -1;
    if (get_int(c, c->root, "num_key_value_heads", false, cfg->n_heads, &cfg->n_kv_heads)) return -1;
    if (cfg->n_heads <= 0) {
        cb_err_set(c->err, "%s: key \"num_attention_heads\": expected a positive integer", c->origin);
        return -1;
    }
    if (get_int(c, c->root, "head_dim", false, cfg->d_model / cfg->n_heads, &cfg->head_dim)) return -1;
    if (get_bool(c, c->root, "attention_bias", false, &cfg->attn_bias)) return -1;
    return parse_rope(c, cfg, bamba ? 0.5 : 1.0);
}

static int parse_mlp(ctx *c, cb_config *cfg) {
    cfg->has_mlp = true;
    if (get_int(c, c->root, "intermediate_size", true, 0, &cfg->d_ff)) return -1;
    return get_bool(c, c->root, "mlp_bias", false, &cfg->mlp_bias);
}

static int parse_time_step_limit(ctx *c, cb_config *cfg) {
    cfg->m_dt_min = 0.0;
    cfg->m_dt_max = INFINITY;
    const json_t *v = json_object_get(c->root, "time_step_limit");
    if (is_absent(v)) return 0;
    if (!json_is_array(v) || json_array_size(v) != 2 || as_double(json_array_get(v, 0), &cfg->m_dt_min) ||
        as_double(json_array_get(v, 1), &cfg->m_dt_max) || isnan(cfg->m_dt_min) || isnan(cfg->m_dt_max)) {
        cb_err_set(c->err, "%s: key \"time_step_limit\": expected [min, max] (numbers, Infinity allowed)", c->origin);
        return -1;
    }
    return 0;
}

static int parse_mamba2(ctx *c, cb_config *cfg) {
    int expand;
    if (get_int(c, c->root, "num_heads", true, 0, &cfg->m_heads) ||
        get_int(c, c->root, "head_dim", false, 64, &cfg->m_head_dim) ||
        get_int(c, c->root, "state_size", false, 128, &cfg->m_state) ||
        get_int(c, c->root, "n_groups", false, 8, &cfg->m_groups) ||
        get_int(c, c->root, "conv_kernel", false, 4, &cfg->m_conv) ||
        get_int(c, c->root, "expand", false, 2, &expand) ||
        get_int(c, c->root, "chunk_size", false, 256, &cfg->m_chunk) ||
        get_bool(c, c->root, "use_bias", false, &cfg->m_proj_bias) ||
        get_bool(c, c->root, "use_conv_bias", true, &cfg->m_conv_bias) ||
        get_double(c, c->root, "layer_norm_epsilon", false, 1e-5, &cfg->eps) || parse_time_step_limit(c, cfg))
        return -1;
    if ((int64_t)expand * cfg->d_model != (int64_t)cfg->m_heads * cfg->m_head_dim) {
        cb_err_set(c->err, "%s: keys \"expand\" x \"hidden_size\" (%d x %d) must equal \"num_heads\" x \"head_dim\" (%d x %d)",
                   c->origin, expand, cfg->d_model, cfg->m_heads, cfg->m_head_dim);
        return -1;
    }
    for (int i = 0; i < cfg->n_layers; i++) cfg->mixer[i] = CB_MIXER_MAMBA2;
    cfg->has_mlp = false;
    return 0;
}

static int parse_bamba_mamba(ctx *c, cb_config *cfg) {
    int expand;
    if (get_int(c, c->root, "mamba_n_heads", true, 0, &cfg->m_heads) ||
        get_int(c, c->root, "mamba_expand", false, 2, &expand) ||
        get_int(c, c->root, "mamba_d_state", false, 256, &cfg->m_state) ||
        get_int(c, c->root, "mamba_n_groups", false, 1, &cfg->m_groups) ||
        get_int(c, c->root, "mamba_d_conv", false, 4, &cfg->m_conv) ||
        get_int(c, c->root, "mamba_chunk_size", false, 256, &cfg->m_chunk) ||
        get_bool(c, c->root, "mamba_proj_bias", false, &cfg->m_proj_bias) ||
        get_bool(c, c->root, "mamba_conv_bias", true, &cfg->m_conv_bias) || parse_time_step_limit(c, cfg))
        return -1;
    if (cfg->m_heads <= 0) {
        cb_err_set(c->err, "%s: key \"mamba_n_heads\": expected a positive integer", c->origin);
        return -1;
    }
    const json_t *dh = json_object_get(c->root, "mamba_d_head");
    int64_t d_inner = (int64_t)expand * cfg->d_model;
    if (is_absent(dh) || (json_is_string(dh) && strcmp(json_string_value(dh), "auto") == 0)) {
        if (d_inner % cfg->m_heads != 0) {
            cb_err_set(c->err, "%s: key \"mamba_d_head\" is \"auto\" but mamba_expand x hid_size (%lld) is not divisible by mamba_n_heads (%d)",
                       c->origin, (long long)d_inner, cfg->m_heads);
            return -1;
        }
        cfg->m_head_dim = (int)(d_inner / cfg->m_heads);
    } else if (json_is_string(dh)) {
        cb_err_set(c->err, "%s: key \"mamba_d_head\": expected an integer or \"auto\"", c->origin);
        return -1;
    } else if (get_int(c, c->root, "mamba_d_head", true, 0, &cfg->m_head_dim)) {
        return -1;
    }
    if (d_inner != (int64_t)cfg->m_heads * cfg->m_head_dim) {
        cb_err_set(c->err, "%s: keys \"mamba_expand\" x \"hidden_size\" (%d x %d) must equal \"mamba_n_heads\" x \"mamba_d_head\" (%d x %d)",
                   c->origin, expand, cfg->d_model, cfg->m_heads, cfg->m_head_dim);
        return -1;
    }
    return 0;
}

static int parse_bamba(ctx *c, cb_config *cfg) {
    if (get_double(c, c->root, "rms_norm_eps", false, 1e-5, &cfg->eps)) return -1;
    for (int i = 0; i < cfg->n_layers; i++) cfg->mixer[i] = CB_MIXER_MAMBA2;
    const json_t *idx = json_object_get(c->root, "attn_layer_indices");
    if (!is_absent(idx)) {
        if (!json_is_array(idx)) {
            cb_err_set(c->err, "%s: key \"attn_layer_indices\": expected an array of layer indices", c->origin);
            return -1;
        }
        for (size_t k = 0; k < json_array_size(idx); k++) {
            const json_t *v = json_array_get(idx, k);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= cfg->n_layers) {
                cb_err_set(c->err, "%s: key \"attn_layer_indices\"[%zu]: expected an integer in [0, %d)", c->origin,
                           k, cfg->n_layers);
                return -1;
            }
            cfg->mixer[json_integer_value(v)] = CB_MIXER_ATTENTION;
        }
    }
    bool any_attn = false, any_mamba = false;
    for (int i = 0; i < cfg->n_layers; i++) {
        any_attn |= cfg->mixer[i] == CB_MIXER_ATTENTION;
        any_mamba |= cfg->mixer[i] == CB_MIXER_MAMBA2;
    }
    /* Attention keys are read even without attention layers (presets write them), but only
     * required when some layer uses attention. */
    if (any_attn || json_object_get(c->root, "num_attention_heads")) {
        if (parse_attention(c, cfg, true)) return -1;
    }
    if (any_mamba && parse_bamba_mamba(c, cfg)) return -1;
    return parse_mlp(c, cfg);
}

/* layer_types: transformers 4.x writes "mamba" / "attention", 5.x "linear_attention" / "full_attention".
 * Absent: every layer is Mamba2 (transformers' layers_block_type default). */
static int parse_layer_types(ctx *c, cb_config *cfg) {
    for (int i = 0; i < cfg->n_layers; i++) cfg->mixer[i] = CB_MIXER_MAMBA2;
    const json_t *lt = json_object_get(c->root, "layer_types");
    if (is_absent(lt)) return 0;
    if (!json_is_array(lt) || json_array_size(lt) != (size_t)cfg->n_layers) {
        cb_err_set(c->err, "%s: key \"layer_types\": expected an array of num_hidden_layers (%d) strings", c->origin,
                   cfg->n_layers);
        return -1;
    }
    for (int i = 0; i < cfg->n_layers; i++) {
        const json_t *v = json_array_get(lt, (size_t)i);
        const char *t = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(t, "mamba") == 0 || strcmp(t, "linear_attention") == 0) cfg->mixer[i] = CB_MIXER_MAMBA2;
        else if (strcmp(t, "attention") == 0 || strcmp(t, "full_attention") == 0) cfg->mixer[i] = CB_MIXER_ATTENTION;
        else {
            cb_err_set(c->err, "%s: key \"layer_types\"[%d]: \"%.40s\" is not a layer type (expected \"mamba\", "
                       "\"attention\", \"linear_attention\" or \"full_attention\")", c->origin, i, t);
            return -1;
        }
    }
    return 0;
}

/* position_embedding_type: absent, null or "nope" = no positions; "rope" = RoPE over the full head_dim. */
static int parse_position_embedding(ctx *c, cb_config *cfg) {
    const json_t *v = json_object_get(c->root, "position_embedding_type");
    const char *t = is_absent(v) ? "nope" : json_is_string(v) ? json_string_value(v) : NULL;
    if (t && strcmp(t, "rope") == 0) return 0;
    if (t && strcmp(t, "nope") == 0) {
        cfg->rope.type = CB_ROPE_NONE;
        cfg->rope.rot_dim = 0;
        return 0;
    }
    cb_err_set(c->err, "%s: key \"position_embedding_type\": expected \"nope\", \"rope\" or null", c->origin);
    return -1;
}

static int parse_multiplier(ctx *c, const char *key, double *out) {
    if (get_double(c, c->root, key, false, 1.0, out)) return -1;
    if (!(*out > 0) || !isfinite(*out)) {
        cb_err_set(c->err, "%s: key \"%s\": expected a positive finite number, found %g", c->origin, key, *out);
        return -1;
    }
    return 0;
}

/* granitemoehybrid (docs/models.md): Bamba's mixers chosen by layer_types, a shared SwiGLU expert plus
 * num_local_experts routed experts (0 = the shared expert alone), muP multipliers. Defaults are
 * transformers' GraniteMoeHybridConfig defaults. */
static int parse_granite(ctx *c, cb_config *cfg) {
    if (get_double(c, c->root, "rms_norm_eps", false, 1e-6, &cfg->eps) || parse_layer_types(c, cfg)) return -1;
    bool any_attn = false, any_mamba = false;
    for (int i = 0; i < cfg->n_layers; i++) {
        any_attn |= cfg->mixer[i] == CB_MIXER_ATTENTION;
        any_mamba |= cfg->mixer[i] == CB_MIXER_MAMBA2;
    }
    if (any_attn || json_object_get(c->root, "num_attention_heads")) {
        if (parse_attention(c, cfg, false) || parse_position_embedding(c, cfg)) return -1;
    }
    if (any_mamba && parse_bamba_mamba(c, cfg)) return -1;
    double attn;
    if (parse_multiplier(c, "embedding_multiplier", &cfg->embedding_multiplier) ||
        parse_multiplier(c, "residual_multiplier", &cfg->residual_multiplier) ||
        parse_multiplier(c, "logits_scaling", &cfg->logits_scaling) || parse_multiplier(c, "attention_multiplier", &attn))
        return -1;
    cfg->attn_scale = attn;
    cfg->has_mlp = true;
    if (get_int(c, c->root, "shared_intermediate_size", false, 1024, &cfg->d_ff) ||
        get_int(c, c->root, "num_local_experts", false, 8, &cfg->n_experts))
        return -1;
    if (cfg->n_experts == 0) return 0;
    if (get_int(c, c->root, "num_experts_per_tok", false, 2, &cfg->top_k) ||
        get_int(c, c->root, "intermediate_size", false, 11008, &cfg->d_ff_expert))
        return -1;
    if (cfg->top_k < 1 || cfg->top_k > cfg->n_experts) {
        cb_err_set(c->err, "%s: key \"num_experts_per_tok\": expected 1..num_local_experts (%d), found %d", c->origin,
                   cfg->n_experts, cfg->top_k);
        return -1;
    }
    return 0;
}

static int parse_llama(ctx *c, cb_config *cfg) {
    if (get_double(c, c->root, "rms_norm_eps", false, 1e-6, &cfg->eps)) return -1;
    for (int i = 0; i < cfg->n_layers; i++) cfg->mixer[i] = CB_MIXER_ATTENTION;
    if (parse_attention(c, cfg, false)) return -1;
    return parse_mlp(c, cfg);
}

int cb_config_parse(const char *json_text, const char *origin, cb_config *cfg, cb_err *err) {
    memset(cfg, 0, sizeof *cfg);
    char *text = quote_nonfinite_tokens(json_text);
    if (!text) {
        cb_err_set(err, "%s: out of memory", origin);
        return -1;
    }
    json_error_t je;
    /* duplicate keys: the last wins, as with Python's json (which wrote these files) */
    json_t *root = json_loads(text, 0, &je);
    free(text);
    if (!root) {
        cb_err_set(err, "%s: invalid JSON at line %d column %d: %s", origin, je.line, je.column, je.text);
        return -1;
    }
    int rc = -1;
    ctx c = { root, origin, err };
    if (!json_is_object(root)) {
        cb_err_set(err, "%s: expected a JSON object at top level", origin);
        goto out;
    }
    const json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) {
        cb_err_set(err, "%s: missing required key \"model_type\" (expected \"llama\", \"mamba2\", \"bamba\" or "
                   "\"granitemoehybrid\")", origin);
        goto out;
    }
    const char *mts = json_string_value(mt);
    bool tie_default;
    if (strcmp(mts, "llama") == 0) { cfg->model_type = CB_MT_LLAMA; tie_default = false; }
    else if (strcmp(mts, "mamba2") == 0) { cfg->model_type = CB_MT_MAMBA2; tie_default = true; }
    else if (strcmp(mts, "bamba") == 0) { cfg->model_type = CB_MT_BAMBA; tie_default = false; }
    else if (strcmp(mts, "granitemoehybrid") == 0) { cfg->model_type = CB_MT_GRANITE; tie_default = false; }
    else {
        cb_err_set(err, "%s: key \"model_type\": unsupported \"%.64s\" (expected \"llama\", \"mamba2\", \"bamba\" or "
                   "\"granitemoehybrid\")", origin, mts);
        goto out;
    }
    snprintf(cfg->model_type_str, sizeof cfg->model_type_str, "%s", mts);
    if (get_int(&c, root, "hidden_size", true, 0, &cfg->d_model) ||
        get_int(&c, root, "num_hidden_layers", true, 0, &cfg->n_layers) ||
        get_int(&c, root, "vocab_size", true, 0, &cfg->vocab) ||
        get_bool(&c, root, "tie_word_embeddings", tie_default, &cfg->tie_embeddings) || parse_dtype(&c, cfg) ||
        parse_quant(&c, cfg))
        goto out;
    if (cfg->n_layers <= 0 || cfg->n_layers > CB_MAX_LAYERS) {
        cb_err_set(err, "%s: key \"num_hidden_layers\": expected 1..%d, found %d", origin, CB_MAX_LAYERS,
                   cfg->n_layers);
        goto out;
    }
    if (cfg->d_model <= 0) {
        cb_err_set(err, "%s: key \"hidden_size\": expected a positive integer", origin);
        goto out;
    }
    cfg->embedding_multiplier = cfg->residual_multiplier = cfg->logits_scaling = 1.0;
    int r = cfg->model_type == CB_MT_LLAMA ? parse_llama(&c, cfg)
          : cfg->model_type == CB_MT_MAMBA2 ? parse_mamba2(&c, cfg)
          : cfg->model_type == CB_MT_GRANITE ? parse_granite(&c, cfg)
          : parse_bamba(&c, cfg);
    if (r) goto out;

    /* derived */
    cfg->n_attn_layers = cfg->n_mamba_layers = 0;
    for (int i = 0; i < cfg->n_layers; i++) {
        if (cfg->mixer[i] == CB_MIXER_ATTENTION) cfg->n_attn_layers++;
        else cfg->n_mamba_layers++;
    }
    cfg->arch = cfg->n_mamba_layers == 0 ? CB_ARCH_TRANSFORMER
              : cfg->n_attn_layers == 0 ? CB_ARCH_MAMBA2 : CB_ARCH_HYBRID;
    if (cfg->n_mamba_layers > 0) { /* derived in 64 bits: the keys are checked one by one, not their products */
        int64_t d_inner = (int64_t)cfg->m_heads * cfg->m_head_dim, gs = (int64_t)cfg->m_groups * cfg->m_state;
        if (d_inner >= CB_MAX_MAMBA_INNER || gs >= CB_MAX_MAMBA_GROUP_STATE) {
            cb_err_set(err, "%s: mamba dimensions too large: heads x head_dim = %lld (expected < %d), groups x state = %lld "
                       "(expected < %d)", origin, (long long)d_inner, CB_MAX_MAMBA_INNER, (long long)gs, CB_MAX_MAMBA_GROUP_STATE);
            goto out;
        }
        cfg->m_d_inner = (int)d_inner;
        cfg->m_conv_dim = (int)(d_inner + 2 * gs);
        cfg->m_in_proj_rows = (int)(2 * d_inner + 2 * gs + cfg->m_heads);
    }
    rc = cb_config_validate(cfg, origin, err);
out:
    json_decref(root);
    return rc;
}

int cb_config_validate(const cb_config *cfg, const char *origin, cb_err *err) {
#define REQUIRE(cond, ...) do { if (!(cond)) { cb_err_set(err, __VA_ARGS__); return -1; } } while (0)
    REQUIRE(cfg->n_layers > 0 && cfg->n_layers <= CB_MAX_LAYERS, "%s: key \"num_hidden_layers\": expected 1..%d, found %d",
            origin, CB_MAX_LAYERS, cfg->n_layers);
    REQUIRE(cfg->d_model > 0 && cfg->d_model <= CB_MAX_HIDDEN, "%s: key \"hidden_size\": expected an integer in [1, %d], found %d",
            origin, CB_MAX_HIDDEN, cfg->d_model);
    REQUIRE(cfg->vocab > 0 && cfg->vocab <= CB_MAX_VOCAB, "%s: key \"vocab_size\": expected an integer in [1, %d], found %d",
            origin, CB_MAX_VOCAB, cfg->vocab);
    REQUIRE(cfg->eps > 0 && isfinite(cfg->eps), "%s: key \"rms_norm_eps\"/\"layer_norm_epsilon\": expected a positive number, found %g",
            origin, cfg->eps);
    if (cfg->n_attn_layers > 0) {
        REQUIRE(cfg->n_heads > 0, "%s: key \"num_attention_heads\": expected a positive integer", origin);
        REQUIRE(cfg->n_kv_heads > 0 && cfg->n_heads % cfg->n_kv_heads == 0,
                "%s: key \"num_key_value_heads\": expected a positive divisor of num_attention_heads (%d), found %d",
                origin, cfg->n_heads, cfg->n_kv_heads);
        REQUIRE(cfg->head_dim > 0, "%s: key \"head_dim\": expected a positive integer (or hidden_size divisible by num_attention_heads)",
                origin);
        REQUIRE((int64_t)cfg->n_heads * cfg->head_dim < CB_MAX_ATTN_WIDTH,
                "%s: keys \"num_attention_heads\" x \"head_dim\" = %lld: expected < %d", origin,
                (long long)cfg->n_heads * cfg->head_dim, CB_MAX_ATTN_WIDTH);
        REQUIRE(cfg->rope.type == CB_ROPE_NONE ||
                    (cfg->rope.rot_dim > 0 && cfg->rope.rot_dim % 2 == 0 && cfg->rope.rot_dim <= cfg->head_dim),
                "%s: key \"partial_rotary_factor\": rotated dims head_dim x factor = %d must be even and in (0, head_dim=%d]",
                origin, cfg->rope.rot_dim, cfg->head_dim);
        REQUIRE(cfg->rope.theta > 0 && isfinite(cfg->rope.theta), "%s: key \"rope_theta\": expected a positive number, found %g",
                origin, cfg->rope.theta);
        if (cfg->rope.type == CB_ROPE_LLAMA3) {
            REQUIRE(cfg->rope.factor > 0, "%s: key \"factor\" (rope scaling): expected a positive number", origin);
            REQUIRE(cfg->rope.high_freq_factor > cfg->rope.low_freq_factor && cfg->rope.low_freq_factor > 0,
                    "%s: keys \"low_freq_factor\" / \"high_freq_factor\": expected 0 < low < high, found %g / %g",
                    origin, cfg->rope.low_freq_factor, cfg->rope.high_freq_factor);
            REQUIRE(cfg->rope.original_max_pos > 0,
                    "%s: key \"original_max_position_embeddings\": expected a positive integer", origin);
        }
    }
    if (cfg->has_mlp)
        REQUIRE(cfg->d_ff > 0 && cfg->d_ff <= CB_MAX_FF, "%s: key \"%s\": expected an integer in [1, %d], found %d",
                origin, cfg->model_type == CB_MT_GRANITE ? "shared_intermediate_size" : "intermediate_size", CB_MAX_FF,
                cfg->d_ff);
    REQUIRE(cfg->n_experts >= 0 && cfg->n_experts <= 4096, "%s: key \"num_local_experts\": expected 0..4096, found %d",
            origin, cfg->n_experts);
    REQUIRE(cfg->n_experts == 0 || cfg->model_type == CB_MT_GRANITE,
            "%s: routed experts are only supported for model_type granitemoehybrid", origin);
    if (cfg->n_experts > 0) {
        REQUIRE(cfg->top_k >= 1 && cfg->top_k <= cfg->n_experts,
                "%s: key \"num_experts_per_tok\": expected 1..num_local_experts (%d), found %d", origin, cfg->n_experts,
                cfg->top_k);
        REQUIRE(cfg->d_ff_expert > 0 && (int64_t)cfg->n_experts * cfg->d_ff_expert <= CB_MAX_FF,
                "%s: keys \"num_local_experts\" x \"intermediate_size\" (%d x %d): expected a positive expert width "
                "and a product <= %d", origin, cfg->n_experts, cfg->d_ff_expert, CB_MAX_FF);
    }
    if (cfg->n_mamba_layers > 0) {
        const bool b = cfg->model_type == CB_MT_BAMBA;
        REQUIRE(cfg->m_heads > 0, "%s: key \"%s\": expected a positive integer", origin, b ? "mamba_n_heads" : "num_heads");
        REQUIRE(cfg->m_head_dim > 0, "%s: key \"%s\": expected a positive integer", origin, b ? "mamba_d_head" : "head_dim");
        REQUIRE(cfg->m_state > 0, "%s: key \"%s\": expected a positive integer", origin, b ? "mamba_d_state" : "state_size");
        REQUIRE(cfg->m_conv > 0, "%s: key \"%s\": expected a positive integer", origin, b ? "mamba_d_conv" : "conv_kernel");
        REQUIRE(cfg->m_chunk > 0, "%s: key \"%s\": expected a positive integer", origin, b ? "mamba_chunk_size" : "chunk_size");
        REQUIRE(cfg->m_groups > 0 && cfg->m_heads % cfg->m_groups == 0,
                "%s: key \"%s\": expected a positive divisor of the mamba head count (%d), found %d", origin,
                b ? "mamba_n_groups" : "n_groups", cfg->m_heads, cfg->m_groups);
        REQUIRE(cfg->m_dt_min >= 0 && cfg->m_dt_max >= cfg->m_dt_min,
                "%s: key \"time_step_limit\": expected 0 <= min <= max, found [%g, %g]", origin, cfg->m_dt_min,
                cfg->m_dt_max);
        REQUIRE((int64_t)cfg->m_heads * cfg->m_head_dim < CB_MAX_MAMBA_INNER &&
                    (int64_t)cfg->m_groups * cfg->m_state < CB_MAX_MAMBA_GROUP_STATE,
                "%s: mamba dimensions too large: heads x head_dim = %lld (expected < %d), groups x state = %lld (expected < %d)",
                origin, (long long)cfg->m_heads * cfg->m_head_dim, CB_MAX_MAMBA_INNER,
                (long long)cfg->m_groups * cfg->m_state, CB_MAX_MAMBA_GROUP_STATE);
        REQUIRE(cfg->m_d_inner == cfg->m_heads * cfg->m_head_dim &&
                    cfg->m_conv_dim == cfg->m_d_inner + 2 * cfg->m_groups * cfg->m_state &&
                    cfg->m_in_proj_rows == 2 * cfg->m_d_inner + 2 * cfg->m_groups * cfg->m_state + cfg->m_heads,
                "%s: inconsistent derived mamba dimensions (d_inner %d, conv_dim %d, in_proj rows %d)", origin,
                cfg->m_d_inner, cfg->m_conv_dim, cfg->m_in_proj_rows);
    }
    int na = 0, nm = 0;
    for (int i = 0; i < cfg->n_layers; i++) {
        if (cfg->mixer[i] == CB_MIXER_ATTENTION) na++;
        else nm++;
    }
    REQUIRE(na == cfg->n_attn_layers && nm == cfg->n_mamba_layers, "%s: layer counts do not match the mixer list", origin);
    REQUIRE(cfg->model_type != CB_MT_LLAMA || nm == 0, "%s: model_type llama cannot have Mamba2 layers", origin);
    REQUIRE(cfg->model_type != CB_MT_MAMBA2 || na == 0, "%s: model_type mamba2 cannot have attention layers", origin);
    return 0;
#undef REQUIRE
}

int cb_config_load(const char *path, cb_config *cfg, cb_err *err) {
    char file[4096];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(file, sizeof file, "%s/config.json", path);
    else snprintf(file, sizeof file, "%s", path);
    FILE *f = fopen(file, "rb");
    if (!f) {
        cb_err_set(err, "%s: cannot open: %s", file, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            if (cap > (64u << 20)) { fclose(f); free(buf); cb_err_set(err, "%s: file too large for a config", file); return -1; }
            char *nb = realloc(buf, cap);
            if (!nb) { fclose(f); free(buf); cb_err_set(err, "%s: out of memory", file); return -1; }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[len] = 0;
    int rc = cb_config_parse(buf, file, cfg, err);
    free(buf);
    return rc;
}

static json_t *num_or_inf(double v) {
    if (isinf(v)) return json_pack("{s:s}", "__float__", v > 0 ? "Infinity" : "-Infinity");
    return json_real(v);
}

/* The Mamba2 mixer's keys as mamba2 (spelling 0) or bamba / granitemoehybrid (spelling 1) name them. */
static void write_mamba_keys(json_t *o, const cb_config *cfg, int expand, int spelling) {
    static const char *const keys[2][9] = {
        { "num_heads", "head_dim", "state_size", "n_groups", "conv_kernel", "expand", "chunk_size", "use_bias",
          "use_conv_bias" },
        { "mamba_n_heads", "mamba_d_head", "mamba_d_state", "mamba_n_groups", "mamba_d_conv", "mamba_expand",
          "mamba_chunk_size", "mamba_proj_bias", "mamba_conv_bias" },
    };
    const int ints[7] = { cfg->m_heads, cfg->m_head_dim, cfg->m_state, cfg->m_groups, cfg->m_conv, expand, cfg->m_chunk };
    for (int k = 0; k < 7; k++) json_object_set_new(o, keys[spelling][k], json_integer(ints[k]));
    json_object_set_new(o, keys[spelling][7], json_boolean(cfg->m_proj_bias));
    json_object_set_new(o, keys[spelling][8], json_boolean(cfg->m_conv_bias));
}

int cb_config_write_json(const cb_config *cfg, const char *path, cb_err *err) {
    json_t *o = json_object();
    json_object_set_new(o, "model_type", json_string(cfg->model_type_str));
    const char *arch = cfg->model_type == CB_MT_LLAMA ? "LlamaForCausalLM"
                     : cfg->model_type == CB_MT_MAMBA2 ? "Mamba2ForCausalLM"
                     : cfg->model_type == CB_MT_GRANITE ? "GraniteMoeHybridForCausalLM" : "BambaForCausalLM";
    json_object_set_new(o, "architectures", json_pack("[s]", arch));
    json_object_set_new(o, "hidden_size", json_integer(cfg->d_model));
    json_object_set_new(o, "num_hidden_layers", json_integer(cfg->n_layers));
    json_object_set_new(o, "vocab_size", json_integer(cfg->vocab));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(cfg->tie_embeddings));
    json_object_set_new(o, "dtype", json_string(cfg->weights_dtype == CB_BF16 ? "bfloat16"
                                                : cfg->weights_dtype == CB_F16 ? "float16" : "float32"));
    const bool has_attn_keys = cfg->model_type != CB_MT_MAMBA2 && cfg->n_heads > 0;
    if (has_attn_keys) {
        json_object_set_new(o, "num_attention_heads", json_integer(cfg->n_heads));
        json_object_set_new(o, "num_key_value_heads", json_integer(cfg->n_kv_heads));
        json_object_set_new(o, "head_dim", json_integer(cfg->head_dim));
        json_object_set_new(o, "attention_bias", json_boolean(cfg->attn_bias));
        json_t *rp = json_object();
        if (cfg->model_type == CB_MT_GRANITE)
            json_object_set_new(o, "position_embedding_type", json_string(cfg->rope.type == CB_ROPE_NONE ? "nope" : "rope"));
        json_object_set_new(rp, "rope_type", json_string(cfg->rope.type == CB_ROPE_LLAMA3 ? "llama3" : "default"));
        json_object_set_new(rp, "rope_theta", json_real(cfg->rope.theta));
        double prf = cfg->head_dim > 0 && cfg->rope.type != CB_ROPE_NONE ? (double)cfg->rope.rot_dim / cfg->head_dim : 1.0;
        if (prf != 1.0) {
            json_object_set_new(rp, "partial_rotary_factor", json_real(prf));
            json_object_set_new(o, "partial_rotary_factor", json_real(prf));
        }
        if (cfg->rope.type == CB_ROPE_LLAMA3) {
            json_object_set_new(rp, "factor", json_real(cfg->rope.factor));
            json_object_set_new(rp, "low_freq_factor", json_real(cfg->rope.low_freq_factor));
            json_object_set_new(rp, "high_freq_factor", json_real(cfg->rope.high_freq_factor));
            json_object_set_new(rp, "original_max_position_embeddings", json_integer(cfg->rope.original_max_pos));
        }
        json_object_set_new(o, "rope_parameters", rp);
    }
    if (cfg->model_type == CB_MT_GRANITE) {
        json_object_set_new(o, "shared_intermediate_size", json_integer(cfg->d_ff));
        json_object_set_new(o, "num_local_experts", json_integer(cfg->n_experts));
        json_object_set_new(o, "num_experts_per_tok", json_integer(cfg->top_k));
        json_object_set_new(o, "intermediate_size", json_integer(cfg->n_experts ? cfg->d_ff_expert : cfg->d_ff));
        json_object_set_new(o, "hidden_act", json_string("silu"));
        const char *keys[4] = { "embedding_multiplier", "residual_multiplier", "logits_scaling", "attention_multiplier" };
        const double vals[4] = { cfg->embedding_multiplier, cfg->residual_multiplier, cfg->logits_scaling,
                                 cfg->attn_scale > 0 ? cfg->attn_scale : 1.0 / sqrt(cfg->head_dim > 0 ? cfg->head_dim : 1) };
        for (int k = 0; k < 4; k++) json_object_set_new(o, keys[k], json_real(vals[k] > 0 ? vals[k] : 1.0));
    } else if (cfg->has_mlp) {
        json_object_set_new(o, "intermediate_size", json_integer(cfg->d_ff));
        json_object_set_new(o, "mlp_bias", json_boolean(cfg->mlp_bias));
        json_object_set_new(o, "hidden_act", json_string("silu"));
    }
    const int expand = cfg->d_model > 0 ? cfg->m_d_inner / cfg->d_model : 0;
    json_t *tsl = json_array();
    json_array_append_new(tsl, num_or_inf(cfg->m_dt_min));
    json_array_append_new(tsl, num_or_inf(cfg->m_dt_max));
    if (cfg->model_type == CB_MT_MAMBA2) {
        json_object_set_new(o, "layer_norm_epsilon", json_real(cfg->eps));
        write_mamba_keys(o, cfg, expand, 0);
        json_object_set_new(o, "time_step_limit", tsl);
    } else {
        json_object_set_new(o, "rms_norm_eps", json_real(cfg->eps));
        if (cfg->model_type == CB_MT_BAMBA || cfg->model_type == CB_MT_GRANITE) {
            if (cfg->model_type == CB_MT_BAMBA) {
                json_t *idx = json_array();
                for (int i = 0; i < cfg->n_layers; i++)
                    if (cfg->mixer[i] == CB_MIXER_ATTENTION) json_array_append_new(idx, json_integer(i));
                json_object_set_new(o, "attn_layer_indices", idx);
            } else {
                json_t *lt = json_array(); /* the published (transformers 4.x) spelling */
                for (int i = 0; i < cfg->n_layers; i++)
                    json_array_append_new(lt, json_string(cfg->mixer[i] == CB_MIXER_ATTENTION ? "attention" : "mamba"));
                json_object_set_new(o, "layer_types", lt);
            }
            write_mamba_keys(o, cfg, expand, 1);
            json_object_set_new(o, "time_step_limit", tsl);
            tsl = NULL;
        }
    }
    if (tsl && cfg->model_type != CB_MT_MAMBA2) json_decref(tsl);
    int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (rc != 0) {
        cb_err_set(err, "%s: cannot write config: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int64_t cb_config_param_count(const cb_config *c) {
    int64_t d = c->d_model, n = 0;
    n += (int64_t)c->vocab * d * (c->tie_embeddings ? 1 : 2) + d; /* embed, lm_head, final norm */
    for (int i = 0; i < c->n_layers; i++) {
        n += d; /* input norm */
        if (c->mixer[i] == CB_MIXER_ATTENTION) {
            int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
            n += q * d + 2 * kv * d + d * q;
            if (c->attn_bias) n += q + 2 * kv + d;
        } else {
            int64_t rows = c->m_in_proj_rows, di = c->m_d_inner;
            n += rows * d + (int64_t)c->m_conv_dim * c->m_conv + 3 * (int64_t)c->m_heads + di + d * di;
            if (c->m_proj_bias) n += rows + d;
            if (c->m_conv_bias) n += c->m_conv_dim;
        }
        if (c->has_mlp) {
            n += d + 3 * (int64_t)c->d_ff * d;
            if (c->mlp_bias) n += 2 * (int64_t)c->d_ff + d;
        }
        n += (int64_t)c->n_experts * d * (1 + 3 * (int64_t)c->d_ff_expert); /* router row + expert SwiGLU */
    }
    return n;
}

int64_t cb_config_active_param_count(const cb_config *c) {
    int64_t idle = (int64_t)(c->n_experts - c->top_k) * 3 * (int64_t)c->d_ff_expert * c->d_model;
    return cb_config_param_count(c) - (c->n_experts > 0 ? (int64_t)c->n_layers * idle : 0);
}

void cb_config_weight_split(const cb_config *c, cb_weight_split *out) {
    memset(out, 0, sizeof *out);
    const int64_t d = c->d_model;
    int64_t lin = 0, rows = 0; /* elements and output rows of the quantisable linear projections */
    for (int i = 0; i < c->n_layers; i++) {
        if (c->mixer[i] == CB_MIXER_ATTENTION) {
            int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
            lin += q * d + 2 * kv * d + d * q;
            rows += q + 2 * kv + d;
        } else {
            lin += (int64_t)c->m_in_proj_rows * d + d * (int64_t)c->m_d_inner;
            rows += c->m_in_proj_rows + d;
        }
        if (c->has_mlp) {
            lin += 3 * (int64_t)c->d_ff * d;
            rows += 2 * (int64_t)c->d_ff + d;
        }
        /* routed experts are 8-bit like every projection; the router stays in weights_dtype */
        lin += 3 * (int64_t)c->n_experts * c->d_ff_expert * d;
        rows += (int64_t)c->n_experts * (2 * (int64_t)c->d_ff_expert + d);
    }
    if (!c->tie_embeddings && !c->q8_keep_lm_head) {
        lin += (int64_t)c->vocab * d;
        rows += c->vocab;
    }
    const int64_t all = cb_config_param_count(c);
    const size_t es = cb_dtype_size(c->weights_dtype);
    if (cb_config_is_q8(c)) {
        out->q8 = (size_t)lin;
        out->scales = (size_t)rows * sizeof(float);
        out->kept = (size_t)(all - lin) * es;
    } else {
        out->kept = (size_t)all * es;
    }
    out->total = out->q8 + out->scales + out->kept;
}

size_t cb_config_active_weight_bytes(const cb_config *c) {
    cb_weight_split w;
    cb_config_weight_split(c, &w);
    if (c->n_experts == 0) return w.total;
    const int64_t idle = (int64_t)c->n_layers * (c->n_experts - c->top_k), f = c->d_ff_expert, d = c->d_model;
    const bool q8 = cb_config_is_q8(c);
    const size_t per = (size_t)(3 * f * d) * (q8 ? 1 : cb_dtype_size(c->weights_dtype)) +
                       (q8 ? (size_t)(2 * f + d) * sizeof(float) : 0);
    return w.total - (size_t)idle * per;
}
