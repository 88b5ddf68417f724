/* The engine's entry (engines/stack/stack.c): sequences, batches, lengths and tokens are checked there,
 * once, with errors naming what was wrong (the layers assume them); the registry picks each preset's
 * engine by asking supports(); the family descriptors name the engines. */
#include <criterion/criterion.h>
#include <string.h>

#include "../engines/engine.h"
#include "../engines/model/presets.h"
#include "../engines/stack/family.h"

static const char *presets[] = { "transformer-tiny", "mamba2-tiny", "bamba-tiny" };

Test(stack, entry_checks_sequences_batches_lengths_and_tokens) {
    for (int p = 0; p < 3; p++) {
        cb_model m;
        cb_err err = { "" };
        cr_assert_eq(cb_preset_create(presets[p], 1, CB_BF16, &m, &err), 0, "%s", err.msg);
        const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
        cr_assert_not_null(ops, "%s", presets[p]);
        cb_engine_opts o;
        cb_engine_opts_default(&o);
        o.max_context = 20, o.max_batch = 2, o.prefill_chunk = 8, o.threads = 1;
        cb_engine *e;
        cr_assert_eq(ops->create(&m, &o, &e, &err), 0, "%s", err.msg);
        int32_t tok[25] = { 0 };
        float *logits = malloc(sizeof(float) * 2 * (size_t)m.cfg.vocab);
        cr_assert_eq(ops->prefill(e, 0, tok, 25, logits, false, &err), -1, "%s", presets[p]);
        cr_assert(strstr(err.msg, "max_context 20"), "%s", err.msg);
        cr_assert_eq(ops->prefill(e, 2, tok, 1, logits, false, &err), -1);
        cr_assert(strstr(err.msg, "sequence 2"), "%s", err.msg);
        tok[3] = m.cfg.vocab;
        cr_assert_eq(ops->prefill(e, 0, tok, 5, logits, false, &err), -1);
        cr_assert(strstr(err.msg, "vocabulary"), "%s", err.msg);
        tok[3] = 0;
        cr_assert_eq(ops->prefill(e, 0, tok, 20, logits, false, &err), 0, "%s", err.msg); /* 3 chunks of 8 */
        cr_assert_eq(ops->seq_len(e, 0), 20);
        int s0 = 0, dup[2] = { 1, 1 }, three[3] = { 0, 1, 0 };
        cr_assert_eq(ops->decode(e, 1, &s0, tok, logits, &err), -1);
        cr_assert(strstr(err.msg, "max_context"), "%s", err.msg);
        cr_assert_eq(ops->decode(e, 2, dup, tok, logits, &err), -1);
        cr_assert(strstr(err.msg, "twice"), "%s", err.msg);
        cr_assert_eq(ops->decode(e, 3, three, tok, logits, &err), -1);
        cr_assert(strstr(err.msg, "batch 3"), "%s", err.msg);
        cr_assert_eq(ops->fill_synthetic(e, 1, 21, 7, &err), -1);
        cr_assert_eq(ops->fill_synthetic(e, 1, 19, 7, &err), 0, "%s", err.msg);
        int s1 = 1;
        cr_assert_eq(ops->decode(e, 1, &s1, tok, logits, &err), 0, "%s", err.msg);
        cr_assert_eq(ops->seq_len(e, 1), 20);
        ops->reset(e, 0);
        cr_assert_eq(ops->seq_len(e, 0), 0);
        cr_assert_eq(ops->seq_len(e, 1), 20);
        free(logits);
        ops->destroy(e);
        cb_model_free(&m);
    }
}

/* Each preset's engine comes from supports() alone (no model_type table), the ablation mamba2-S presets
 * (model_type bamba, no attention layer) included; each engine is its family's. */
Test(stack, registry_asks_supports) {
    const char *want[][2] = { { "transformer-xs", "transformer" }, { "mamba2-xs", "bamba" }, { "bamba-xs", "bamba" } };
    for (int i = 0; i < 3; i++) {
        cb_config c;
        cb_err err = { "" };
        cr_assert_eq(cb_preset_config(want[i][0], &c, &err), 0, "%s", err.msg);
        const cb_engine_ops *ops = cb_engine_for_config(&c);
        cr_assert_not_null(ops, "%s", want[i][0]);
        cr_assert_str_eq(ops->name, want[i][1], "%s", want[i][0]);
        const cb_family *f = cb_family_for(&c);
        cr_assert_not_null(f);
        cr_assert_eq(&f->engine, ops, "%s: the engine is its family's", want[i][0]);
        int others = 0;
        for (int k = 0; k < cb_engine_count(); k++) others += cb_engine_at(k) != ops && cb_engine_at(k)->supports(&c);
        cr_assert_eq(others, 0, "%s: the built-in rules are disjoint", want[i][0]);
    }
    cb_config c;
    cb_err err = { "" };
    cr_assert_eq(cb_config_load("tests/fixtures/mamba2-tiny", &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(cb_engine_for_config(&c)->name, "mamba2");
}
