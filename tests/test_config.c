/* config.json parsing: both transformers forms, non-JSON floats, defaults, and errors naming the key. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../engines/model/config.h"

static cb_config parse_ok(const char *json) {
    cb_config c;
    cb_err err = { { 0 } };
    cr_assert_eq(cb_config_parse(json, "t.json", &c, &err), 0, "%s", err.msg);
    return c;
}

static void parse_fails(const char *json, const char *want1, const char *want2) {
    cb_config c;
    cb_err err = { { 0 } };
    cr_assert_neq(cb_config_parse(json, "t.json", &c, &err), 0, "accepted: %s", json);
    cr_assert(strstr(err.msg, "t.json") != NULL, "no origin in: %s", err.msg);
    cr_assert(strstr(err.msg, want1) != NULL, "'%s' not in: %s", want1, err.msg);
    if (want2) cr_assert(strstr(err.msg, want2) != NULL, "'%s' not in: %s", want2, err.msg);
}

#define LLAMA_BASE "\"model_type\":\"llama\",\"hidden_size\":256,\"num_hidden_layers\":2,\"vocab_size\":100," \
                   "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"intermediate_size\":512"

Test(config, llama_4x_rope_scaling) {
    cb_config c = parse_ok("{" LLAMA_BASE ",\"rope_theta\":500000.0,\"rope_scaling\":{\"type\":\"llama3\",\"factor\":8,"
                           "\"low_freq_factor\":1,\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}}");
    cr_assert_eq(c.rope.type, CB_ROPE_LLAMA3);
    cr_assert_eq(c.rope.theta, 500000.0);
    cr_assert_eq(c.rope.factor, 8.0);
    cr_assert_eq(c.rope.high_freq_factor, 4.0);
    cr_assert_eq(c.rope.original_max_pos, 8192);
    cr_assert_eq(c.head_dim, 32); /* missing head_dim = d / heads */
    cr_assert_eq(c.rope.rot_dim, 32);
    cr_assert_eq(c.tie_embeddings, false); /* LlamaConfig default */
    cr_assert_eq(c.eps, 1e-6);
    cr_assert_eq(c.arch, CB_ARCH_TRANSFORMER);
    cr_assert_eq(c.n_attn_layers, 2);
    cr_assert(c.has_mlp);
}

Test(config, llama_5x_rope_parameters) {
    cb_config c = parse_ok("{" LLAMA_BASE ",\"head_dim\":64,\"tie_word_embeddings\":true,\"dtype\":\"bfloat16\","
                           "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1234.0}}");
    cr_assert_eq(c.rope.type, CB_ROPE_DEFAULT);
    cr_assert_eq(c.rope.theta, 1234.0);
    cr_assert_eq(c.head_dim, 64);
    cr_assert(c.tie_embeddings);
    cr_assert_eq(c.weights_dtype, CB_BF16);
    cb_config d = parse_ok("{" LLAMA_BASE ",\"torch_dtype\":\"float16\",\"rope_scaling\":null}");
    cr_assert_eq(d.weights_dtype, CB_F16);
    cr_assert_eq(d.rope.theta, 10000.0);
}

#define MAMBA2_BASE "\"model_type\":\"mamba2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"vocab_size\":50," \
                    "\"num_heads\":4,\"head_dim\":32,\"state_size\":16,\"n_groups\":2,\"expand\":2,\"conv_kernel\":4,\"chunk_size\":8"

Test(config, mamba2_bare_infinity_and_float_object) {
    cb_config c = parse_ok("{" MAMBA2_BASE ",\"time_step_limit\":[0.0, Infinity],\"note\":\"Infinity NaN \\\" Infinity\"}");
    cr_assert(isinf(c.m_dt_max) && c.m_dt_max > 0);
    cr_assert_eq(c.m_dt_min, 0.0);
    cr_assert(c.tie_embeddings); /* Mamba2Config default */
    cr_assert_eq(c.arch, CB_ARCH_MAMBA2);
    cr_assert(!c.has_mlp);
    cr_assert_eq(c.m_d_inner, 128);
    cr_assert_eq(c.m_conv_dim, 128 + 2 * 2 * 16);
    cr_assert_eq(c.m_in_proj_rows, 2 * 128 + 2 * 2 * 16 + 4);
    cr_assert(c.m_conv_bias);
    cr_assert(!c.m_proj_bias);
    cb_config d = parse_ok("{" MAMBA2_BASE ",\"time_step_limit\":[0.001, {\"__float__\": \"Infinity\"}]}");
    cr_assert(isinf(d.m_dt_max));
    cr_assert_eq(d.m_dt_min, 0.001);
    cb_config e = parse_ok("{" MAMBA2_BASE ",\"time_step_limit\":[0.0, 0.5],\"x\":[-Infinity, NaN]}");
    cr_assert_eq(e.m_dt_max, 0.5);
    cb_config f = parse_ok("{" MAMBA2_BASE "}");
    cr_assert(isinf(f.m_dt_max) && f.m_dt_min == 0.0);
}

#define BAMBA_BASE "\"model_type\":\"bamba\",\"hidden_size\":128,\"num_hidden_layers\":4,\"vocab_size\":64," \
                   "\"num_attention_heads\":4,\"num_key_value_heads\":1,\"intermediate_size\":256,\"mamba_n_heads\":8," \
                   "\"mamba_d_state\":16,\"mamba_n_groups\":1,\"mamba_expand\":2"

Test(config, bamba_auto_head_and_partial_rope) {
    cb_config c = parse_ok("{" BAMBA_BASE ",\"mamba_d_head\":\"auto\",\"attn_layer_indices\":[0,2],\"rope_theta\":5000}");
    cr_assert_eq(c.m_head_dim, 32); /* 2*128/8 */
    cr_assert_eq(c.head_dim, 32);
    cr_assert_eq(c.rope.rot_dim, 16); /* default partial_rotary_factor 0.5 */
    cr_assert_eq(c.rope.theta, 5000.0);
    cr_assert_eq(c.arch, CB_ARCH_HYBRID);
    cr_assert_eq(c.mixer[0], CB_MIXER_ATTENTION);
    cr_assert_eq(c.mixer[1], CB_MIXER_MAMBA2);
    cr_assert_eq(c.n_attn_layers, 2);
    cr_assert_eq(c.n_mamba_layers, 2);
    cr_assert(!c.tie_embeddings);
    cr_assert_eq(c.eps, 1e-5);
    cb_config d = parse_ok("{" BAMBA_BASE ",\"attn_layer_indices\":null,"
                           "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":10.0,\"partial_rotary_factor\":0.25}}");
    cr_assert_eq(d.arch, CB_ARCH_MAMBA2);
    cr_assert_eq(d.rope.rot_dim, 8);
    cr_assert(d.has_mlp);
    cb_config e = parse_ok("{" BAMBA_BASE ",\"attn_layer_indices\":[]}");
    cr_assert_eq(e.n_attn_layers, 0);
}

Test(config, fixtures_parse_to_right_numbers) {
    cb_config c;
    cb_err err = { { 0 } };
    cr_assert_eq(cb_config_load("tests/fixtures/llama-tiny", &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.d_model, 128);
    cr_assert_eq(c.n_heads, 8);
    cr_assert_eq(c.n_kv_heads, 2);
    cr_assert_eq(c.head_dim, 16);
    cr_assert_eq(c.d_ff, 320);
    cr_assert_eq(c.vocab, 384);
    cr_assert_eq(c.rope.type, CB_ROPE_LLAMA3);
    cr_assert_eq(c.rope.original_max_pos, 256);
    cr_assert_eq(c.rope.theta, 500000.0);
    cr_assert_eq(c.weights_dtype, CB_BF16);
    cr_assert_eq(cb_config_load("tests/fixtures/mamba2-tiny/config.json", &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.m_heads, 8);
    cr_assert_eq(c.m_head_dim, 32);
    cr_assert_eq(c.m_state, 16);
    cr_assert_eq(c.m_groups, 2);
    cr_assert_eq(c.m_chunk, 16);
    cr_assert(!c.tie_embeddings);
    cr_assert(isinf(c.m_dt_max));
    cr_assert_eq(cb_config_load("tests/fixtures/bamba-tiny", &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.mixer[1], CB_MIXER_ATTENTION);
    cr_assert_eq(c.mixer[3], CB_MIXER_ATTENTION);
    cr_assert_eq(c.m_head_dim, 32);
    cr_assert_eq(c.rope.rot_dim, 8);
    cr_assert_eq(c.m_chunk, 16);
}

Test(config, errors_name_the_key) {
    parse_fails("{\"model_type\":\"gpt2\",\"hidden_size\":4}", "model_type", "gpt2");
    parse_fails("{\"hidden_size\":4}", "model_type", NULL);
    parse_fails("[1,2]", "object", NULL);
    parse_fails("{\"model_type\":", "invalid JSON", NULL);
    parse_fails("{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"vocab_size\":10}", "hidden_size", "missing");
    parse_fails("{" LLAMA_BASE ",\"rms_norm_eps\":\"small\"}", "rms_norm_eps", "number");
    parse_fails("{\"model_type\":\"llama\",\"hidden_size\":\"256\",\"num_hidden_layers\":2,\"vocab_size\":10}",
                "hidden_size", "integer");
    parse_fails("{" LLAMA_BASE ",\"tie_word_embeddings\":1}", "tie_word_embeddings", "true or false");
    parse_fails("{\"model_type\":\"llama\",\"hidden_size\":256,\"num_hidden_layers\":2,\"vocab_size\":100,"
                "\"num_attention_heads\":8,\"num_key_value_heads\":3,\"intermediate_size\":512}",
                "num_key_value_heads", "divisor");
    parse_fails("{\"model_type\":\"llama\",\"hidden_size\":256,\"num_hidden_layers\":300,\"vocab_size\":100,"
                "\"num_attention_heads\":8,\"intermediate_size\":512}", "num_hidden_layers", "256");
    parse_fails("{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2}}", "rope_type", "yarn");
    parse_fails("{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}", "low_freq_factor", NULL);
    parse_fails("{" LLAMA_BASE ",\"partial_rotary_factor\":0.3}", "partial_rotary_factor", "even");
    parse_fails("{" LLAMA_BASE ",\"dtype\":\"int4\"}", "dtype", NULL);
    parse_fails("{\"model_type\":\"llama\",\"hidden_size\":256,\"num_hidden_layers\":2,\"vocab_size\":100,"
                "\"num_attention_heads\":8}", "intermediate_size", "missing");
    parse_fails("{" MAMBA2_BASE ",\"n_groups\":3}", "n_groups", "divisor");
    parse_fails("{\"model_type\":\"mamba2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"vocab_size\":50,"
                "\"num_heads\":4,\"head_dim\":16}", "expand", "head_dim");
    parse_fails("{" MAMBA2_BASE ",\"time_step_limit\":[0.0]}", "time_step_limit", NULL);
    parse_fails("{" MAMBA2_BASE ",\"time_step_limit\":[1.0, 0.5]}", "time_step_limit", NULL);
    parse_fails("{" BAMBA_BASE ",\"attn_layer_indices\":[4]}", "attn_layer_indices", "[0, 4)");
    parse_fails("{" BAMBA_BASE ",\"attn_layer_indices\":\"1\"}", "attn_layer_indices", NULL);
    parse_fails("{" BAMBA_BASE ",\"mamba_d_head\":16}", "mamba_d_head", NULL);
    parse_fails("{" BAMBA_BASE ",\"mamba_d_head\":\"big\"}", "mamba_d_head", "auto");
    parse_fails("{\"model_type\":\"bamba\",\"hidden_size\":128,\"num_hidden_layers\":4,\"vocab_size\":64,"
                "\"intermediate_size\":256}", "mamba_n_heads", "missing");
    parse_fails("{" BAMBA_BASE ",\"mamba_n_heads\":6}", "mamba_d_head", "auto");
    parse_fails("{" BAMBA_BASE ",\"mamba_n_groups\":3}", "mamba_n_groups", "divisor");
    cb_config c;
    cb_err err;
    cr_assert_neq(cb_config_load("tests/fixtures/no-such-dir", &c, &err), 0);
    cr_assert(strstr(err.msg, "tests/fixtures/no-such-dir") && strstr(err.msg, "cannot open"), "%s", err.msg);
}

Test(config, write_json_roundtrip) {
    const char *dirs[] = { "tests/fixtures/llama-tiny", "tests/fixtures/mamba2-tiny", "tests/fixtures/bamba-tiny" };
    for (int k = 0; k < 3; k++) {
        cb_config a, b;
        cb_err err;
        cr_assert_eq(cb_config_load(dirs[k], &a, &err), 0, "%s", err.msg);
        char path[] = "/tmp/cb_config_XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        close(fd);
        cr_assert_eq(cb_config_write_json(&a, path, &err), 0, "%s", err.msg);
        cr_assert_eq(cb_config_load(path, &b, &err), 0, "%s", err.msg);
        unlink(path);
        /* the origin string is not part of the struct: compare everything */
        cr_assert(memcmp(&a, &b, sizeof a) == 0, "%s: round trip differs", dirs[k]);
        cr_assert_eq(cb_config_param_count(&a), cb_config_param_count(&b));
    }
    cr_assert_str_eq(cb_arch_name(CB_ARCH_HYBRID), "hybrid");
}

/* quantization_config (docs/quantization.md): vLLM fp8 and compressed-tensors float/int-quantized are read for planning;
 * other methods are refused naming the key. */
Test(config, quantization_config) {
    cb_config c = parse_ok("{" LLAMA_BASE ",\"quantization_config\":{\"quant_method\":\"fp8\",\"ignored_layers\":[\"lm_head\"]}}");
    cr_assert_eq(c.q8, CB_F8_E4M3);
    cr_assert(c.q8_keep_lm_head);
    c = parse_ok("{" LLAMA_BASE ",\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"int-quantized\"}}");
    cr_assert_eq(c.q8, CB_I8);
    cr_assert(!c.q8_keep_lm_head);
    c = parse_ok("{" LLAMA_BASE "}");
    cr_assert(!cb_config_is_q8(&c));
    parse_fails("{" LLAMA_BASE ",\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4}}", "quantization_config", "gptq");
    parse_fails("{" LLAMA_BASE ",\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"pack-quantized\"}}",
                "quantization_config", "pack-quantized");
}

#define GRANITE_BASE "\"model_type\":\"granitemoehybrid\",\"hidden_size\":128,\"num_hidden_layers\":4,\"vocab_size\":300," \
                     "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"mamba_n_heads\":8,\"mamba_d_state\":16," \
                     "\"intermediate_size\":96,\"shared_intermediate_size\":160"

Test(config, granite_both_layer_type_spellings) {
    const char *four = ",\"layer_types\":[\"mamba\",\"attention\",\"mamba\",\"attention\"]";
    const char *five = ",\"layer_types\":[\"linear_attention\",\"full_attention\",\"linear_attention\",\"full_attention\"]";
    char a[1024], b[1024];
    snprintf(a, sizeof a, "{" GRANITE_BASE "%s,\"num_local_experts\":4,\"num_experts_per_tok\":2}", four);
    snprintf(b, sizeof b, "{" GRANITE_BASE "%s,\"num_local_experts\":4,\"num_experts_per_tok\":2}", five);
    cb_config c = parse_ok(a), d = parse_ok(b);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(c.mixer[i], i % 2 ? CB_MIXER_ATTENTION : CB_MIXER_MAMBA2);
        cr_assert_eq(d.mixer[i], c.mixer[i]);
    }
    cr_assert_eq(c.arch, CB_ARCH_HYBRID);
    cr_assert_eq(c.n_experts, 4);
    cr_assert_eq(c.top_k, 2);
    cr_assert_eq(c.d_ff_expert, 96);
    cr_assert_eq(c.d_ff, 160); /* the shared expert */
    cr_assert_eq(c.rope.type, CB_ROPE_NONE); /* position_embedding_type absent = nope */
    cr_assert_eq(c.eps, 1e-6);                /* GraniteMoeHybridConfig default */
    cr_assert_eq(c.embedding_multiplier, 1.0);
    cr_assert_eq(c.attn_scale, 1.0);
    cr_assert(!c.tie_embeddings);
    cb_config e = parse_ok("{" GRANITE_BASE "}"); /* no layer_types: every layer Mamba2; 8 experts top-2 */
    cr_assert_eq(e.n_mamba_layers, 4);
    cr_assert_eq(e.n_experts, 8);
    cr_assert_eq(e.top_k, 2);
}

Test(config, granite_dense_rope_multipliers_and_tied) {
    cb_config c = parse_ok("{" GRANITE_BASE ",\"num_local_experts\":0,\"num_experts_per_tok\":0,"
                           "\"position_embedding_type\":\"rope\",\"rope_theta\":10000000,\"embedding_multiplier\":12,"
                           "\"residual_multiplier\":0.22,\"logits_scaling\":8,\"attention_multiplier\":0.015625,"
                           "\"tie_word_embeddings\":true,\"layer_types\":[\"attention\",\"mamba\",\"mamba\",\"mamba\"]}");
    cr_assert_eq(c.n_experts, 0);
    cr_assert_eq(c.rope.type, CB_ROPE_DEFAULT);
    cr_assert_eq(c.rope.rot_dim, 16); /* full head_dim */
    cr_assert_eq(c.rope.theta, 1e7);
    cr_assert_eq(c.embedding_multiplier, 12.0);
    cr_assert_eq(c.residual_multiplier, 0.22);
    cr_assert_eq(c.logits_scaling, 8.0);
    cr_assert_eq(c.attn_scale, 0.015625);
    cr_assert(c.tie_embeddings);
    cr_assert_eq(cb_config_active_param_count(&c), cb_config_param_count(&c));
}

Test(config, granite_errors_name_the_key) {
    parse_fails("{" GRANITE_BASE ",\"layer_types\":[\"mamba\",\"mlp\",\"mamba\",\"mamba\"]}", "\"layer_types\"[1]", "mlp");
    parse_fails("{" GRANITE_BASE ",\"layer_types\":[\"mamba\"]}", "\"layer_types\"", "num_hidden_layers");
    parse_fails("{" GRANITE_BASE ",\"num_local_experts\":4,\"num_experts_per_tok\":5}", "\"num_experts_per_tok\"", NULL);
    parse_fails("{" GRANITE_BASE ",\"position_embedding_type\":\"alibi\"}", "\"position_embedding_type\"", NULL);
    parse_fails("{" GRANITE_BASE ",\"residual_multiplier\":-1}", "\"residual_multiplier\"", NULL);
    parse_fails("{" GRANITE_BASE ",\"logits_scaling\":\"big\"}", "\"logits_scaling\"", NULL);
    parse_fails("{" GRANITE_BASE ",\"shared_intermediate_size\":0}", "\"shared_intermediate_size\"", NULL);
}

/* Total vs active parameters: the routed experts a token does not use are the difference. */
Test(config, granite_fixture_total_and_active_parameters) {
    cb_config c;
    cb_err err = { { 0 } };
    cr_assert_eq(cb_config_load("tests/fixtures/granite-tiny", &c, &err), 0, "%s", err.msg);
    const int64_t d = 128, V = 384, E = 4, k = 2, fe = 96, fs = 160;
    const int64_t mamba = 552 * d + 288 * 4 + 288 + 3 * 8 + 256 + d * 256, attn = 2 * d * d + 2 * 32 * d;
    const int64_t per_layer = 2 * d + 3 * fs * d + E * d + 3 * E * fe * d;
    const int64_t total = 2 * V * d + d + 4 * per_layer + 2 * mamba + 2 * attn;
    cr_assert_eq(cb_config_param_count(&c), total);
    cr_assert_eq(cb_config_active_param_count(&c), total - 4 * (E - k) * 3 * fe * d);
    cr_assert_float_eq(c.embedding_multiplier, 12.0, 0);
    cr_assert_float_eq(c.residual_multiplier, 0.22, 0);
    cr_assert_float_eq(c.logits_scaling, 6.0, 0);
    cr_assert_float_eq(c.attn_scale, 0.0625, 0);
}

Test(config, granite_write_json_roundtrip) {
    cb_config c;
    cb_err err = { { 0 } };
    cr_assert_eq(cb_config_load("tests/fixtures/granite-tiny", &c, &err), 0, "%s", err.msg);
    char path[] = "/tmp/cb_granite_cfg_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(cb_config_write_json(&c, path, &err), 0, "%s", err.msg);
    cb_config d;
    cr_assert_eq(cb_config_load(path, &d, &err), 0, "%s", err.msg);
    unlink(path);
    cr_assert_eq(cb_config_param_count(&d), cb_config_param_count(&c));
    cr_assert_eq(d.n_experts, c.n_experts);
    cr_assert_eq(d.top_k, c.top_k);
    cr_assert_eq(d.d_ff_expert, c.d_ff_expert);
    cr_assert_eq(d.rope.type, CB_ROPE_NONE);
    cr_assert_eq(d.attn_scale, c.attn_scale);
    cr_assert_eq(d.residual_multiplier, c.residual_multiplier);
    for (int i = 0; i < c.n_layers; i++) cr_assert_eq(d.mixer[i], c.mixer[i]);
}
