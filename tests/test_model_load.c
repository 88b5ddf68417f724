/* Checkpoint loading and binding: the three fixtures, and broken checkpoints built from them. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engines/model/model.h"

static void load_ok(const char *dir, cb_model *m) {
    cb_err err = { { 0 } };
    int rc = cb_model_load(dir, m, &err);
    cr_assert_eq(rc, 0, "%s: %s", dir, err.msg);
}

Test(model_load, llama_tiny) {
    cb_model m;
    load_ok("tests/fixtures/llama-tiny", &m);
    cr_assert_eq(m.cfg.arch, CB_ARCH_TRANSFORMER);
    cr_assert_eq(m.cfg.n_layers, 3);
    cr_assert_eq(m.embed.rows, 384);
    cr_assert_eq(m.embed.cols, 128);
    cr_assert_eq(m.embed.dtype, CB_BF16);
    cr_assert_eq(m.lm_head.rows, 384);
    cr_assert_neq(m.lm_head.data, m.embed.data);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(m.layers[i].kind, CB_MIXER_ATTENTION);
        cr_assert_eq(m.layers[i].attn.q.rows, 8 * 16);
        cr_assert_eq(m.layers[i].attn.k.rows, 2 * 16);
        cr_assert_eq(m.layers[i].attn.o.cols, 128);
        cr_assert_eq(m.layers[i].mlp.gate.rows, 320);
        cr_assert_eq(m.layers[i].mlp.down.cols, 320);
        cr_assert_eq(m.layers[i].ff_norm.cols, 128);
        cr_assert_not_null(m.layers[i].in_norm.data);
    }
    /* every tensor of the file bound, bytes counted once */
    size_t total = 0;
    for (int i = 0; i < m.st.n_tensors; i++) {
        cr_assert(m.st.tensors[i].used, "%s unused", m.st.tensors[i].name);
        total += m.st.tensors[i].nbytes;
    }
    cr_assert_eq(m.weight_bytes, total);
    cb_model_free(&m);
}

Test(model_load, mamba2_tiny) {
    cb_model m;
    load_ok("tests/fixtures/mamba2-tiny", &m);
    const cb_config *c = &m.cfg;
    cr_assert_eq(c->arch, CB_ARCH_MAMBA2);
    cr_assert_eq(c->m_d_inner, 256);
    cr_assert_eq(c->m_conv_dim, 256 + 2 * 2 * 16);
    cr_assert_eq(c->m_in_proj_rows, 2 * 256 + 2 * 2 * 16 + 8);
    cr_assert_eq(m.embed.dtype, CB_F32);
    for (int i = 0; i < 3; i++) {
        const cb_mamba_weights *w = &m.layers[i].mamba;
        cr_assert_eq(w->in_proj.rows, c->m_in_proj_rows);
        cr_assert_eq(w->in_proj.cols, 128);
        cr_assert_eq(w->conv_w.rows, c->m_conv_dim);
        cr_assert_eq(w->conv_w.cols, 4);
        cr_assert_not_null(w->conv_b.data);
        cr_assert_null(w->in_proj_b.data);
        cr_assert_eq(w->A_log.cols, 8);
        cr_assert_eq(w->norm.cols, 256);
        cr_assert_eq(w->out_proj.rows, 128);
        cr_assert_eq(w->out_proj.cols, 256);
        cr_assert_null(m.layers[i].mlp.gate.data);
    }
    cb_model_free(&m);
}

Test(model_load, bamba_tiny) {
    cb_model m;
    load_ok("tests/fixtures/bamba-tiny", &m);
    const cb_config *c = &m.cfg;
    cr_assert_eq(c->arch, CB_ARCH_HYBRID);
    cr_assert_eq(c->n_attn_layers, 2);
    cr_assert_eq(c->n_mamba_layers, 2);
    cr_assert_eq(m.layers[1].kind, CB_MIXER_ATTENTION);
    cr_assert_eq(m.layers[0].kind, CB_MIXER_MAMBA2);
    cr_assert_eq(m.layers[0].mamba.in_proj.rows, c->m_in_proj_rows);
    cr_assert_eq(m.layers[3].attn.q.rows, 128);
    cr_assert_eq(m.layers[2].mlp.up.rows, 320);
    cr_assert_eq(c->rope.rot_dim, 8);
    for (int i = 0; i < m.st.n_tensors; i++) cr_assert(m.st.tensors[i].used, "%s unused", m.st.tensors[i].name);
    cb_model_free(&m);
}
