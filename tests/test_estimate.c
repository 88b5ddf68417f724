/* The sweep's cost model (harness/measure/estimate.c): FLOP counts from the config and the scaling rule. */
#include <criterion/criterion.h>

#include "../engines/model/presets.h"
#include "../harness/measure/estimate.h"

static cb_config preset(const char *name) {
    cb_config c;
    cb_err err = { "" };
    cr_assert_eq(cb_preset_config(name, &c, &err), 0, "%s: %s", name, err.msg);
    return c;
}

/* transformer-9b (Llama-3.1-8B shape): 2 FLOPs per non-embedding matmul weight per token. */
Test(estimate, transformer_flops_per_token) {
    cb_config c = preset("transformer-9b");
    double per_layer = 2.0 * 4096 * 128 * (2 * 32 + 2 * 8) + 6.0 * 4096 * 14336;
    double want = 32 * per_layer + 2.0 * 4096 * c.vocab;
    cr_assert_float_eq(cb_est_flops(&c, 1, 0, 1), want + 4.0 * 32 * 32 * 128 * 0.5, want * 1e-12);
    /* each position of depth adds QKᵀ and PV for every attention layer */
    double step = cb_est_flops(&c, 1, 1001, 0) - cb_est_flops(&c, 1, 1000, 0);
    cr_assert_float_eq(step, 4.0 * 32 * 32 * 128, 1e-3);
}

/* A model without attention layers costs the same at any depth. */
Test(estimate, mamba2_flat_in_depth) {
    cb_config c = preset("mamba2-s");
    cr_assert_eq(c.n_attn_layers, 0);
    cr_assert_float_eq(cb_est_flops(&c, 512, 4096, 1), cb_est_flops(&c, 512, 1 << 20, 1), 1e-6);
}

Test(estimate, scaling_rule) {
    /* twice the work on twice the threads: same compute time; fill scales alike; create time carried */
    double est = cb_est_seconds(3.0, 100, 1.0, 10, 0.5, 2, 200, 20, 4);
    cr_assert_float_eq(est, 3.0 + 1.0 + 0.5, 1e-12);
    /* no previous work recorded: only the carried part */
    cr_assert_float_eq(cb_est_seconds(3.0, 0, 1.0, 0, 0.5, 1, 200, 20, 1), 0.5, 1e-12);
}
