/* The memory plan of the bamba-9b preset equals the analytic formula to the byte, for several
 * context lengths, computed from the config alone (no 9B weights allocated). */
#include <criterion/criterion.h>

#include "../engines/engine.h"
#include "../engines/model/presets.h"
#include "../harness/measure/memprobe.h"

static void plan_9b(const char *preset, cb_dtype kv, cb_dtype state, int64_t n, int batch, cb_memory_report *r) {
    cb_config cfg;
    cb_err err = { 0 };
    cr_assert_eq(cb_preset_config(preset, &cfg, &err), 0, "%s", err.msg);
    const cb_engine_ops *ops = cb_engine_for_config(&cfg);
    cr_assert_not_null(ops, "no engine for %s", preset);
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.kv_dtype = kv;
    o.state_dtype = state;
    o.tile_weights = false; /* the formulas are the checkpoint's bytes; tile copies have their own test */
    ops->plan(&cfg, &o, n, batch, r);
}

Test(memory_plan, bamba_9b_matches_the_formula_to_the_byte) {
    const int64_t contexts[] = { 4096, 32768, 131072, 1048576 };
    for (int i = 0; i < 4; i++) {
        for (int kvi = 0; kvi < 2; kvi++) {
            cb_dtype kv = kvi ? CB_F32 : CB_BF16;
            cb_memory_report r;
            int64_t N = contexts[i];
            plan_9b("bamba-9b", kv, CB_F32, N, 1, &r);
            cr_assert_eq(r.kv_cache, (size_t)(2LL * 3 * 8 * 128 * N * (int64_t)cb_dtype_size(kv)), "KV at N=%lld", (long long)N);
            cr_assert_eq(r.ssm_state, (size_t)(29LL * 128 * 64 * 128 * 4));
            cr_assert_eq(r.conv_state, (size_t)(29LL * (8192 + 2 * 128) * 3 * 4));
            cr_assert_eq(r.total, r.weights + r.kv_cache + r.ssm_state + r.conv_state + r.scratch);
        }
    }
    /* batch scales per-sequence state linearly; bf16 conv state halves it */
    cb_memory_report one, four, half;
    plan_9b("bamba-9b", CB_BF16, CB_F32, 32768, 1, &one);
    plan_9b("bamba-9b", CB_BF16, CB_F32, 32768, 4, &four);
    plan_9b("bamba-9b", CB_BF16, CB_BF16, 32768, 1, &half);
    cr_assert_eq(four.kv_cache, 4 * one.kv_cache);
    cr_assert_eq(four.ssm_state, 4 * one.ssm_state);
    cr_assert_eq(half.conv_state, (size_t)(29LL * (8192 + 2 * 128) * 3 * 2));
}

/* An 8-bit cache: one byte per K and V element plus one fp32 scale per (position, KV head) for K and for V:
 * 3 layers x 8 KV heads x (2 x 128 + 2 x 4) bytes per position. At 1M that is 6.19 GiB against 12 GiB in bf16. */
Test(memory_plan, bamba_9b_8bit_kv_counts_codes_and_scales) {
    const int64_t contexts[] = { 4096, 131072, 1048576 };
    const cb_dtype kvs[] = { CB_F8_E4M3, CB_I8 };
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) {
            cb_memory_report r, bf;
            int64_t N = contexts[i];
            plan_9b("bamba-9b", kvs[k], CB_F32, N, 1, &r);
            plan_9b("bamba-9b", CB_BF16, CB_F32, N, 1, &bf);
            cr_assert_eq(r.kv_cache, (size_t)(3LL * 8 * N * (2 * 128 + 2 * 4)), "KV at N=%lld", (long long)N);
            cr_assert_eq(r.total, r.weights + r.kv_cache + r.ssm_state + r.conv_state + r.scratch);
            cr_assert_eq(bf.kv_cache - r.kv_cache, (size_t)(3LL * 8 * N * (2 * 128 - 8)));
        }
    cb_memory_report one, four;
    plan_9b("bamba-9b", CB_F8_E4M3, CB_F32, 32768, 1, &one);
    plan_9b("bamba-9b", CB_F8_E4M3, CB_F32, 32768, 4, &four);
    cr_assert_eq(four.kv_cache, 4 * one.kv_cache);
}

Test(memory_plan, transformer_9b_keeps_kv_in_all_32_layers) {
    cb_memory_report r;
    plan_9b("transformer-9b", CB_BF16, CB_F32, 1048576, 1, &r);
    cr_assert_eq(r.kv_cache, (size_t)(2LL * 32 * 8 * 128 * 1048576 * 2));
    cr_assert_eq(r.ssm_state, 0);
    plan_9b("mamba2-9b", CB_BF16, CB_F32, 1048576, 1, &r);
    cr_assert_eq(r.kv_cache, 0);
    cr_assert_eq(r.ssm_state, (size_t)(32LL * 128 * 64 * 128 * 4));
}

/* Every category of create() + memory() against plan() for the same options (and the total). */
static void assert_allocation_equals_plan(const char *preset, cb_dtype kv, int64_t context, int batch,
                                          bool tile_weights, cb_memory_report *plan_out) {
    cb_model m;
    cb_err err = { 0 };
    cr_assert_eq(cb_preset_create(preset, 1, CB_BF16, &m, &err), 0, "%s", err.msg);
    const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.kv_dtype = kv;
    o.max_context = context;
    o.max_batch = batch;
    o.threads = 2;
    o.tile_weights = tile_weights;
    cb_engine *e;
    cr_assert_eq(ops->create(&m, &o, &e, &err), 0, "%s", err.msg);
    cb_memory_report want, got;
    ops->plan(&m.cfg, &o, o.max_context, o.max_batch, &want);
    ops->memory(e, &got);
    const char *tiles = tile_weights ? "with tile copies" : "without tile copies";
    cr_assert_eq(got.weights, want.weights, "%s weights %s", preset, tiles);
    cr_assert_eq(got.kv_cache, want.kv_cache, "%s kv %s", preset, cb_dtype_name(kv));
    cr_assert_eq(got.ssm_state, want.ssm_state, "%s ssm", preset);
    cr_assert_eq(got.conv_state, want.conv_state, "%s conv", preset);
    cr_assert_eq(got.scratch, want.scratch, "%s scratch", preset);
    cr_assert_eq(got.total, want.total, "%s total %s", preset, tiles);
    ops->destroy(e);
    cb_model_free(&m);
    if (plan_out) *plan_out = want;
}

static const char *const tiny_presets[] = { "bamba-tiny", "mamba2-tiny", "transformer-tiny", "granite-tiny" };

/* plan() is what create() + memory() report, category by category, for every built-in architecture. */
Test(memory_plan, plan_equals_allocation_for_tiny_presets) {
    const cb_dtype kvs[] = { CB_BF16, CB_F8_E4M3, CB_I8 };
    for (int c = 0; c < 12; c++)
        assert_allocation_equals_plan(tiny_presets[c % 4], kvs[c / 4], 3000, 3, false, NULL);
}

/* With the AMX tile copies (packing is portable, so this runs on any CPU): the plan counts them in the
 * weights, to the byte, and they are there (bf16 presets: every projection of the mixers and MLPs). */
Test(memory_plan, plan_equals_allocation_with_tile_copies) {
    for (int i = 0; i < 4; i++) {
        cb_memory_report plain, tiled;
        assert_allocation_equals_plan(tiny_presets[i], CB_BF16, 1000, 2, false, &plain);
        assert_allocation_equals_plan(tiny_presets[i], CB_BF16, 1000, 2, true, &tiled);
        cr_assert_gt(tiled.weights, plain.weights, "%s: bf16 projections get tile copies", tiny_presets[i]);
        cr_assert_eq(tiled.kv_cache, plain.kv_cache);
    }
}

/* Granite-4.0-H-Small at the published shapes: 4 attention layers keep KV, 36 Mamba2 layers keep state;
 * the weights are all 72 experts of every layer (total, not active, parameters live in memory). */
Test(memory_plan, granite_h_small_matches_the_formula_to_the_byte) {
    const int64_t contexts[] = { 4096, 131072, 1048576 };
    for (int i = 0; i < 3; i++) {
        cb_memory_report r;
        const int64_t N = contexts[i];
        plan_9b("granite-4.0-h-small", CB_BF16, CB_F32, N, 1, &r);
        cr_assert_eq(r.kv_cache, (size_t)(2LL * 4 * 8 * 128 * N * 2), "KV at N=%lld", (long long)N);
        cr_assert_eq(r.ssm_state, (size_t)(36LL * 128 * 64 * 128 * 4));
        cr_assert_eq(r.conv_state, (size_t)(36LL * (8192 + 2 * 128) * 3 * 4));
        cr_assert_eq(r.weights, (size_t)32207337984LL * 2); /* 32.2 B parameters in bf16 */
        cr_assert_eq(r.total, r.weights + r.kv_cache + r.ssm_state + r.conv_state + r.scratch);
    }
    cb_config c;
    cr_assert_eq(cb_preset_config("granite-4.0-h-small", &c, NULL), 0);
    cr_assert_eq(cb_config_active_param_count(&c), 32207337984LL - 40LL * 62 * 3 * 768 * 4096);
    cr_assert_eq(cb_config_active_weight_bytes(&c), (size_t)cb_config_active_param_count(&c) * 2);
}

/* plan() == create() + memory() for the Granite engine, on the granite-tiny checkpoint (routed experts,
 * shared expert, NoPE attention): weights, KV, states and the scratch the experts' grouping needs. */
Test(memory_plan, granite_plan_equals_allocation) {
    cb_model m;
    cb_err err = { 0 };
    cr_assert_eq(cb_model_load("tests/fixtures/granite-tiny", &m, &err), 0, "%s", err.msg);
    const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
    cr_assert_not_null(ops);
    const int batches[2] = { 1, 5 }, chunks[2] = { 512, 7 };
    for (int i = 0; i < 2; i++) {
        cb_engine_opts o;
        cb_engine_opts_default(&o);
        o.max_context = 2000;
        o.max_batch = batches[i];
        o.prefill_chunk = chunks[i];
        cb_engine *e;
        cr_assert_eq(ops->create(&m, &o, &e, &err), 0, "%s", err.msg);
        cb_memory_report want, got;
        ops->plan(&m.cfg, &o, o.max_context, o.max_batch, &want);
        ops->memory(e, &got);
        cr_assert_eq(got.weights, want.weights);
        cr_assert_eq(got.kv_cache, want.kv_cache);
        cr_assert_eq(got.ssm_state, want.ssm_state);
        cr_assert_eq(got.conv_state, want.conv_state);
        cr_assert_eq(got.scratch, want.scratch, "scratch: allocated %zu, planned %zu", got.scratch, want.scratch);
        ops->destroy(e);
    }
    cb_model_free(&m);
}

/* `ctxbench memory --model granite-4.0-h-small` prints plan(); here the plan is held to what the engine
 * allocates, category by category, from 4K to 1M. The engine is created over the preset's shapes (weights
 * mapped, never loaded) with allocation counting in dry mode (KV, states and scratch mapped, never written):
 * 60 GB of weights and 16 GB of KV cost no memory, which the peak RSS checks. */
Test(memory_plan, granite_h_small_allocations_equal_the_plan) {
    cb_model m;
    cb_err err = { 0 };
    cr_assert_eq(cb_preset_create_shapes("granite-4.0-h-small", CB_BF16, &m, &err), 0, "%s", err.msg);
    const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
    cr_assert_not_null(ops);
    size_t tensors = 0;
    for (int i = 0; i < m.st.n_tensors; i++) tensors += m.st.tensors[i].nbytes;
    const struct { int64_t n; int batch; cb_dtype kv; } pts[] = {
        { 4096, 1, CB_BF16 }, { 32768, 1, CB_BF16 }, { 131072, 1, CB_BF16 }, { 524288, 1, CB_BF16 },
        { 1048576, 1, CB_BF16 }, { 131072, 3, CB_BF16 }, { 1048576, 1, CB_F8_E4M3 }, { 1048576, 1, CB_F32 },
    };
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        cb_engine_opts o;
        cb_engine_opts_default(&o);
        /* the checkpoint's bytes: an AMX CPU's default would add the tile copies, which packing would write
         * (9 GB here); plan_equals_allocation_with_tile_copies holds those to the allocation */
        o.tile_weights = false;
        o.max_context = pts[i].n;
        o.max_batch = pts[i].batch;
        o.kv_dtype = pts[i].kv;
        cb_memory_report plan;
        ops->plan(&m.cfg, &o, o.max_context, o.max_batch, &plan);
        cb_alloc_count_start(true);
        cb_engine *e;
        cr_assert_eq(ops->create(&m, &o, &e, &err), 0, "%s", err.msg);
        const char *kv = cb_dtype_name(o.kv_dtype);
        const long long N = (long long)pts[i].n;
        cr_assert_eq(tensors, plan.weights, "weights bound %zu, planned %zu", tensors, plan.weights);
        cr_assert_eq(cb_alloc_live_bytes(CB_ALLOC_KV), plan.kv_cache, "KV at %lld x %d (%s): allocated %zu, planned %zu",
                     N, pts[i].batch, kv, cb_alloc_live_bytes(CB_ALLOC_KV), plan.kv_cache);
        cr_assert_eq(cb_alloc_live_bytes(CB_ALLOC_SSM), plan.ssm_state, "SSM state at %lld", N);
        cr_assert_eq(cb_alloc_live_bytes(CB_ALLOC_CONV), plan.conv_state, "conv state at %lld", N);
        cr_assert_eq(cb_alloc_live_bytes(CB_ALLOC_SCRATCH), plan.scratch, "scratch at %lld: allocated %zu, planned %zu", N,
                     cb_alloc_live_bytes(CB_ALLOC_SCRATCH), plan.scratch);
        cr_assert_eq(plan.total, plan.weights + plan.kv_cache + plan.ssm_state + plan.conv_state + plan.scratch);
        /* and the allocations against the published shapes (4 attention layers, 8 KV heads x 128, 36 Mamba2
         * layers of 128 heads x 64 x state 128, conv 8192 + 2 x 128 channels x 3) */
        const size_t per_pos = o.kv_dtype == CB_F8_E4M3 ? 2 * 128 + 2 * 4 : 2 * 128 * cb_dtype_size(o.kv_dtype);
        cr_assert_eq(cb_alloc_live_bytes(CB_ALLOC_KV), (size_t)(4LL * 8 * pts[i].batch * pts[i].n) * per_pos);
        cr_assert_eq(cb_alloc_live_bytes(CB_ALLOC_SSM), (size_t)(36LL * pts[i].batch * 128 * 64 * 128 * 4));
        cr_assert_eq(cb_alloc_live_bytes(CB_ALLOC_CONV), (size_t)(36LL * pts[i].batch * (8192 + 2 * 128) * 3 * 4));
        ops->destroy(e);
        for (int c = 0; c < CB_ALLOC_NCAT; c++) cr_assert_eq(cb_alloc_live_bytes((cb_alloc_cat)c), 0, "category %d leaked", c);
        cb_alloc_count_stop();
    }
    cb_model_free(&m);
    cr_assert_lt(cb_mem_peak_rss_bytes(), (int64_t)1 << 30, "peak RSS %lld bytes: the dry engine touched its memory",
                 (long long)cb_mem_peak_rss_bytes());
}

/* int8 weights in fast mode keep tile copies in the VNNI-4 layout of TDPBSSD (kernels/tiles.h) for the same
 * projections: plan() counts them to the byte, and they are exactly those bytes over the copy-less weights;
 * exact mode, which decodes int8 panels and never reads them, keeps none. */
static void int8_plan(const char *preset, cb_mode mode, bool tiles, cb_memory_report *out) {
    cb_model m;
    cb_err err = { 0 };
    cr_assert_eq(cb_preset_create(preset, 1, CB_I8, &m, &err), 0, "%s", err.msg);
    const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.max_context = 500;
    o.max_batch = 1;
    o.threads = 2;
    o.mode = mode;
    o.tile_weights = tiles;
    cb_engine *e;
    cr_assert_eq(ops->create(&m, &o, &e, &err), 0, "%s", err.msg);
    cb_memory_report want;
    ops->plan(&m.cfg, &o, o.max_context, o.max_batch, &want);
    ops->memory(e, out);
    cr_assert_eq(out->weights, want.weights, "%s int8 mode %d tiles %d: weights", preset, (int)mode, tiles);
    cr_assert_eq(out->total, want.total, "%s int8 mode %d tiles %d: total", preset, (int)mode, tiles);
    ops->destroy(e);
    cb_model_free(&m);
}
Test(memory_plan, int8_fast_mode_counts_its_tile_copies) {
    for (int i = 0; i < 4; i++) {
        cb_memory_report plain, exact, fast;
        int8_plan(tiny_presets[i], CB_MODE_FAST, false, &plain);
        int8_plan(tiny_presets[i], CB_MODE_EXACT, true, &exact);
        int8_plan(tiny_presets[i], CB_MODE_FAST, true, &fast);
        cr_assert_eq(exact.weights, plain.weights, "%s: exact mode keeps no int8 tile copies", tiny_presets[i]);
        cr_assert_gt(fast.weights, plain.weights, "%s: fast mode keeps int8 tile copies", tiny_presets[i]);
    }
    cb_config c;
    cb_err err = { 0 };
    cr_assert_eq(cb_preset_config("transformer-tiny", &c, &err), 0, "%s", err.msg);
    const int64_t d = c.d_model, q = (int64_t)c.n_heads * c.head_dim, kv = (int64_t)c.n_kv_heads * c.head_dim;
    const size_t per = cb_tiles_bytes_of(CB_I8, q, d) + 2 * cb_tiles_bytes_of(CB_I8, kv, d) +
                       cb_tiles_bytes_of(CB_I8, d, q) + 2 * cb_tiles_bytes_of(CB_I8, c.d_ff, d) +
                       cb_tiles_bytes_of(CB_I8, d, c.d_ff);
    cb_memory_report plain, fast;
    int8_plan("transformer-tiny", CB_MODE_FAST, false, &plain);
    int8_plan("transformer-tiny", CB_MODE_FAST, true, &fast);
    cr_assert_eq(fast.weights - plain.weights, (size_t)c.n_layers * per, "transformer-tiny: the VNNI-4 copies' bytes");
}
