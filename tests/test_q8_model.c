/* 8-bit weights at the model level (docs/quantization.md): presets generated straight into fp8/int8 equal the
 * quantisation of the bf16 preset bit for bit; the memory plan counts 8-bit bytes exactly as the engine
 * allocates them; weight bytes split into codes, scales and kept-precision tensors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <string.h>

#include "../engines/engine.h"
#include "../engines/kernels/gemm8.h"
#include "../engines/model/presets.h"
#include "../engines/model/quantize.h"

static void same_weight(const cb_weight *a, const cb_weight *b, const char *what, int layer) {
    cr_assert_eq(a->dtype, b->dtype, "%s layer %d dtype", what, layer);
    cr_assert_eq(a->rows, b->rows);
    cr_assert_eq(a->cols, b->cols);
    if (!a->data) return;
    size_t n = (size_t)a->rows * (size_t)a->cols * cb_dtype_size(a->dtype);
    cr_assert_eq(memcmp(a->data, b->data, n), 0, "%s layer %d: codes differ", what, layer);
    if (cb_dtype_is_q8(a->dtype))
        cr_assert_eq(memcmp(a->scale, b->scale, (size_t)a->rows * sizeof(float)), 0, "%s layer %d: scales differ", what, layer);
}

static void preset_equals_quantized(const char *preset, cb_dtype to) {
    cb_model direct, ref;
    cb_err err = { "" };
    cr_assert_eq(cb_preset_create(preset, 7, to, &direct, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_preset_create(preset, 7, CB_BF16, &ref, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_model_quantize(&ref, to, &err), 0, "%s", err.msg);
    cr_assert_eq(direct.cfg.q8, to);
    cr_assert_eq(direct.cfg.weights_dtype, CB_BF16);
    same_weight(&direct.embed, &ref.embed, "embed", -1);
    same_weight(&direct.lm_head, &ref.lm_head, "lm_head", -1);
    cr_assert_eq(direct.lm_head.dtype, to);
    for (int i = 0; i < direct.cfg.n_layers; i++) {
        const cb_layer_weights *a = &direct.layers[i], *b = &ref.layers[i];
        same_weight(&a->in_norm, &b->in_norm, "in_norm", i);
        same_weight(&a->attn.q, &b->attn.q, "q", i); same_weight(&a->attn.k, &b->attn.k, "k", i);
        same_weight(&a->attn.v, &b->attn.v, "v", i); same_weight(&a->attn.o, &b->attn.o, "o", i);
        same_weight(&a->mamba.in_proj, &b->mamba.in_proj, "in_proj", i);
        same_weight(&a->mamba.out_proj, &b->mamba.out_proj, "out_proj", i);
        same_weight(&a->mamba.A_log, &b->mamba.A_log, "A_log", i);
        same_weight(&a->mamba.conv_w, &b->mamba.conv_w, "conv", i);
        same_weight(&a->mlp.gate, &b->mlp.gate, "gate", i); same_weight(&a->mlp.up, &b->mlp.up, "up", i);
        same_weight(&a->mlp.down, &b->mlp.down, "down", i);
        same_weight(&a->moe.experts_in, &b->moe.experts_in, "experts_in", i);
        same_weight(&a->moe.experts_out, &b->moe.experts_out, "experts_out", i);
        same_weight(&a->moe.router, &b->moe.router, "router", i);
        cr_assert_eq(a->moe.router.data ? a->moe.router.dtype : CB_BF16, CB_BF16, "the router stays bf16");
        cr_assert_eq(a->mamba.A_log.data ? a->mamba.A_log.dtype : CB_BF16, CB_BF16, "SSM parameters stay bf16");
    }
    cr_assert_eq(direct.weight_bytes, ref.weight_bytes);
    cb_weight_split ws, cs;
    cb_model_weight_split(&direct, &ws);
    cb_config_weight_split(&direct.cfg, &cs);
    cr_assert_eq(ws.total, direct.weight_bytes);
    cr_assert_eq(ws.q8, cs.q8); cr_assert_eq(ws.scales, cs.scales); cr_assert_eq(ws.kept, cs.kept);
    /* no bf16 copy of the projections: the preset's own allocation is about the 8-bit size */
    cr_assert_lt(direct.owned_bytes + direct.quant_owned_bytes, ref.owned_bytes * 6 / 10, "%s: %zu+%zu vs bf16 %zu", preset,
                 direct.owned_bytes, direct.quant_owned_bytes, ref.owned_bytes);
    cb_model_free(&direct);
    cb_model_free(&ref);
}

Test(q8_model, preset_fp8_is_quantised_bf16_preset) {
    preset_equals_quantized("bamba-tiny", CB_F8_E4M3);
    preset_equals_quantized("transformer-tiny", CB_F8_E4M3);
}
Test(q8_model, preset_int8_is_quantised_bf16_preset) {
    preset_equals_quantized("mamba2-tiny", CB_I8);
    preset_equals_quantized("granite-tiny", CB_I8);
}

/* plan() with cfg.q8 is what create() + memory() report for an 8-bit model (the sweep refuses by it). */
Test(q8_model, plan_equals_allocation_8bit) {
    const char *presets[] = { "bamba-tiny", "mamba2-tiny", "transformer-tiny", "granite-tiny" };
    for (int i = 0; i < 4; i++) {
        for (int f = 0; f < 2; f++) {
            cb_dtype to = f ? CB_I8 : CB_F8_E4M3;
            cb_model m;
            cb_err err = { "" };
            cr_assert_eq(cb_preset_create(presets[i], 1, to, &m, &err), 0, "%s", err.msg);
            cb_config cfg;
            cr_assert_eq(cb_model_config(presets[i], &cfg, &err), 0);
            cb_config_for_weights(presets[i], to, &cfg);
            const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
            cb_engine_opts o;
            cb_engine_opts_default(&o);
            o.max_context = 300;
            o.max_batch = 2;
            cb_engine *e;
            cr_assert_eq(ops->create(&m, &o, &e, &err), 0, "%s", err.msg);
            cb_memory_report want, got, bf;
            ops->plan(&cfg, &o, o.max_context, o.max_batch, &want);
            ops->memory(e, &got);
            cr_assert_eq(got.weights, want.weights, "%s %s weights", presets[i], cb_dtype_name(to));
            cr_assert_eq(got.total, want.total);
            cb_config b16;
            cr_assert_eq(cb_model_config(presets[i], &b16, &err), 0);
            ops->plan(&b16, &o, o.max_context, o.max_batch, &bf);
            cr_assert_lt(want.weights, bf.weights * 6 / 10, "8-bit weights about half of bf16");
            ops->destroy(e);
            cb_model_free(&m);
        }
    }
}

/* The 9b split, analytically: linear projections at one byte plus a scale per row; the rest bf16. */
Test(q8_model, weight_split_9b) {
    cb_config cfg;
    cb_err err = { "" };
    cr_assert_eq(cb_model_config("bamba-9b", &cfg, &err), 0);
    cb_weight_split b16, q;
    cb_config_weight_split(&cfg, &b16);
    cb_config_for_weights("bamba-9b", CB_F8_E4M3, &cfg);
    cb_config_weight_split(&cfg, &q);
    cr_assert_eq(b16.q8, 0);
    cr_assert_eq(b16.total, (size_t)cb_config_param_count(&cfg) * 2);
    cr_assert_eq(q.q8 + q.kept / 2, (size_t)cb_config_param_count(&cfg));
    const int64_t embed = 128256LL * 4096;
    cr_assert_eq(q.kept / 2 > (size_t)embed, true);
    cr_assert_lt(q.kept / 2 - (size_t)embed, (size_t)(0.01 * (double)cb_config_param_count(&cfg)),
                 "norms + SSM parameters are under 1%% of 9B");
    cr_assert_lt((double)q.total / (double)b16.total, 0.56);
}

/* `ctxbench run` with weight_dtype fp8: the point records it, and the memory rows split the weights into
 * 8-bit codes, scales and kept tensors, the analytic plan equal to the engine's allocation. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "../harness/measure/sweep.h"

Test(q8_model, sweep_records_weight_dtype_and_split) {
    char db[] = "/tmp/ctxbench-q8-XXXXXX";
    int fd = mkstemp(db);
    cr_assert_geq(fd, 0);
    close(fd);
    const char *text = "name: q8\nmodels: [bamba-tiny]\ncontexts: 64\nphases: [decode]\nthreads: [1]\n"
                       "repetitions: 1\nwarmups: 0\ndecode_tokens: 2\nprefill_chunk: 64\nweight_dtype: fp8\n";
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(text, "q8.yaml", &w, &err), 0, "%s", err.msg);
    cb_sweep_opts o = { .db_path = db, .workload_text = text, .quiet = true, .shard_n = 1 };
    cb_sweep_result r;
    cr_assert_eq(cb_sweep_run(&w, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.measured, 1);
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(s, "SELECT p.weight_dtype, m.category, m.source, m.bytes FROM points p JOIN memory m "
                                       "ON m.point_id = p.id WHERE m.category LIKE 'weights%' ORDER BY m.category, m.source",
                                    -1, &st, NULL), SQLITE_OK);
    long long v[8] = { 0 };
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 8) {
        cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "fp8");
        v[n++] = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    sqlite3_close(s);
    unlink(db);
    /* weights, weights_kept, weights_q8, weights_scales; each analytic then engine */
    cr_assert_eq(n, 8);
    for (int i = 0; i < 8; i += 2) cr_assert_eq(v[i], v[i + 1], "row %d: analytic %lld != engine %lld", i, v[i], v[i + 1]);
    cr_assert_eq(v[0], v[2] + v[4] + v[6]);
    cr_assert_gt(v[4], 2 * v[2], "the 8-bit codes dominate");
}

/* ---- pre-quantised checkpoints: `ctxbench quantize` writes them, the loader binds them ---- */
#include "../harness/cli/cli.h"
#include "../engines/model/safetensors.h"

static char *tmpdir_q8(void) {
    char *d = strdup("/tmp/ctxbench-q8dir-XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}
static void rm_rf(const char *d) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
}

static float *all_logits(const cb_model *m, const int32_t *ids, int T) {
    const cb_engine_ops *ops = cb_engine_for_config(&m->cfg);
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.max_context = T;
    o.kv_dtype = CB_F32;
    cb_engine *e;
    cb_err err = { "" };
    float *out = malloc(sizeof(float) * (size_t)T * (size_t)m->cfg.vocab);
    cr_assert_eq(ops->create(m, &o, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(ops->prefill(e, 0, ids, T, out, true, &err), 0, "%s", err.msg);
    ops->destroy(e);
    return out;
}

/* Load-time quantisation and loading the written checkpoint give identical logits, bit for bit. */
static void roundtrip(const char *fixture, const char *fmt, cb_dtype to) {
    char *dir = tmpdir_q8(), out[512];
    snprintf(out, sizeof out, "%s/q", dir);
    char *argv[] = { "ctxbench", "quantize", (char *)fixture, "--to", (char *)fmt, "--out", out, NULL };
    cr_assert_eq(cb_cli_main(7, argv), 0);
    cb_model a, b;
    cb_err err = { "" };
    cr_assert_eq(cb_model_open(fixture, 1, to, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(cb_model_load(out, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(b.cfg.q8, to, "the loader notes the 8-bit format");
    cr_assert_eq(a.weight_bytes, b.weight_bytes);
    cb_config planned;
    cr_assert_eq(cb_model_config(out, &planned, &err), 0, "%s", err.msg);
    cr_assert_eq(planned.q8, to, "quantization_config read for planning");
    cb_weight_split ps, bs;
    cb_config_weight_split(&planned, &ps);
    cb_model_weight_split(&b, &bs);
    cr_assert_eq(ps.total, bs.total, "plan of the written checkpoint = what it binds");
    int32_t ids[48];
    for (int i = 0; i < 48; i++) ids[i] = (i * 37 + 5) % a.cfg.vocab;
    float *la = all_logits(&a, ids, 48), *lb = all_logits(&b, ids, 48);
    cr_assert_eq(memcmp(la, lb, sizeof(float) * 48 * (size_t)a.cfg.vocab), 0, "%s %s: logits differ", fixture, fmt);
    /* fp8 on fp8 is a no-op; the other format is refused, naming the tensor */
    cr_assert_eq(cb_model_quantize(&b, to, &err), 0);
    cr_assert_eq(cb_model_quantize(&b, to == CB_I8 ? CB_F8_E4M3 : CB_I8, &err), -1);
    cr_assert(strstr(err.msg, "layer 0"), "%s", err.msg);
    free(la), free(lb);
    cb_model_free(&a), cb_model_free(&b);
    rm_rf(dir);
    free(dir);
}
Test(q8_checkpoint, roundtrip_bamba_fp8) { roundtrip("tests/fixtures/bamba-tiny", "fp8", CB_F8_E4M3); }
Test(q8_checkpoint, roundtrip_llama_int8) { roundtrip("tests/fixtures/llama-tiny", "int8", CB_I8); }
/* granitemoehybrid: the shared expert's gate|up halves are written back as one tensor, the experts keep
 * their [E, rows, cols] shape with scales over (expert, row), the router stays bf16. */
Test(q8_checkpoint, roundtrip_granite_fp8_and_int8) {
    roundtrip("tests/fixtures/granite-tiny", "fp8", CB_F8_E4M3);
    roundtrip("tests/fixtures/granite-tiny", "int8", CB_I8);
}

/* Rewrite dir/model.safetensors with tensor `name` dropped or given `rows` x `cols` F32 zeros... */
static void rewrite(const char *dir, const char *drop, const char *reshape, int64_t r0, int64_t r1) {
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    cb_safetensors st;
    cb_err err = { "" };
    cr_assert_eq(cb_st_open(p, &st, &err), 0, "%s", err.msg);
    cb_st_write_item *it = calloc((size_t)st.n_tensors, sizeof *it);
    void **copies = calloc((size_t)st.n_tensors, sizeof *copies);
    int n = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const cb_tensor *t = &st.tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        copies[n] = malloc(t->nbytes + 64);
        memcpy(copies[n], t->data, t->nbytes);
        it[n] = (cb_st_write_item){ t->name, t->dtype, t->ndim, { 0 }, copies[n] };
        memcpy(it[n].shape, t->shape, sizeof t->shape);
        if (reshape && !strcmp(t->name, reshape)) { it[n].shape[0] = r0; it[n].shape[1] = r1; }
        n++;
    }
    char *names[512];
    for (int i = 0; i < n && i < 512; i++) names[i] = strdup(it[i].name), it[i].name = names[i];
    cb_st_close(&st);
    cr_assert_eq(cb_st_write(p, it, n, &err), 0, "%s", err.msg);
    for (int i = 0; i < n; i++) free(copies[i]), free(names[i]);
    free(copies), free(it);
}

Test(q8_checkpoint, scale_errors_name_the_tensor, .init = cr_redirect_stderr) {
    char *dir = tmpdir_q8(), out[512];
    snprintf(out, sizeof out, "%s/q", dir);
    char *argv[] = { "ctxbench", "quantize", "tests/fixtures/bamba-tiny", "--to", "fp8", "--out", out, NULL };
    cr_assert_eq(cb_cli_main(7, argv), 0);
    const char *w = "model.layers.1.feed_forward.up_proj.weight";
    char sc[128];
    snprintf(sc, sizeof sc, "%s_scale", w);
    cb_model m;
    cb_err err = { "" };
    rewrite(out, sc, NULL, 0, 0);
    cr_assert_eq(cb_model_load(out, &m, &err), -1);
    cr_assert(strstr(err.msg, w) && strstr(err.msg, "without a scale"), "%s", err.msg);
    /* a scale with the wrong row count: restore by re-quantising, then reshape [320, 1] -> [160, 2] */
    rm_rf(out);
    cr_assert_eq(cb_cli_main(7, argv), 0);
    rewrite(out, NULL, sc, 160, 2);
    cr_assert_eq(cb_model_load(out, &m, &err), -1);
    cr_assert(strstr(err.msg, sc) && strstr(err.msg, "[320, 1]"), "%s", err.msg);
    rm_rf(dir);
    free(dir);
}
