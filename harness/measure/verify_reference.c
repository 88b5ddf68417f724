/* Reading verify's reference file (see verify_reference.h). */
#include "verify_reference.h"

#include <stdio.h>
#include <string.h>

static const cb_tensor *ref_tensor(const cb_safetensors *st, const char *path, const char *name, cb_dtype dt,
                                   int ndim, cb_err *err) {
    const cb_tensor *t = cb_st_find(st, name);
    if (!t) cb_err_set(err, "%s: tensor '%s' missing", path, name);
    else if (t->dtype != dt || t->ndim != ndim)
        cb_err_set(err, "%s: tensor '%s': expected %s with %d dims, found %s with %d dims", path, name,
                   cb_dtype_safetensors_name(dt), ndim, cb_dtype_safetensors_name(t->dtype), t->ndim);
    else return t;
    return NULL;
}

int cb_verify_reference_open(const char *path, int vocab, int n_layers, int d_model, cb_verify_reference *r, cb_err *err) {
    memset(r, 0, sizeof *r);
    if (cb_st_open(path, &r->st, err)) return -1;
    const cb_tensor *ids = ref_tensor(&r->st, path, "input_ids", CB_I32, 1, err), *lg = NULL;
    if (!ids || !(lg = ref_tensor(&r->st, path, "logits", CB_F32, 2, err))) goto fail;
    int64_t T = ids->shape[0];
    if (T < 1 || T > CB_VERIFY_MAX_TOKENS) {
        cb_err_set(err, "%s: tensor 'input_ids': %lld tokens, expected 1 .. %d", path, (long long)T, CB_VERIFY_MAX_TOKENS);
        goto fail;
    }
    if (lg->shape[0] != T || lg->shape[1] != vocab) {
        cb_err_set(err, "%s: logits shape [%lld, %lld], expected [%lld, %d]", path, (long long)lg->shape[0],
                   (long long)lg->shape[1], (long long)T, vocab);
        goto fail;
    }
    const int32_t *v = ids->data;
    for (int64_t i = 0; i < T; i++)
        if (v[i] < 0 || v[i] >= vocab) { /* an engine would read its embedding table out of bounds */
            cb_err_set(err, "%s: tensor 'input_ids'[%lld] = %d, expected a token id in [0, %d)", path, (long long)i, v[i], vocab);
            goto fail;
        }
    r->ids = v, r->logits = lg->data, r->T = (int)T;
    const cb_tensor *hs = cb_st_find(&r->st, "hidden_states");
    if (!hs) snprintf(r->hidden_why, sizeof r->hidden_why, "no hidden_states tensor");
    else if (hs->dtype != CB_F32 || hs->ndim != 3 || hs->shape[0] != n_layers + 1 || hs->shape[1] != T || hs->shape[2] != d_model)
        snprintf(r->hidden_why, sizeof r->hidden_why, "hidden_states is not F32 [%d, %lld, %d]", n_layers + 1, (long long)T,
                 d_model);
    else r->hidden = hs->data;
    return 0;
fail:
    cb_st_close(&r->st);
    memset(r, 0, sizeof *r);
    return -1;
}

void cb_verify_reference_close(cb_verify_reference *r) {
    cb_st_close(&r->st);
    memset(r, 0, sizeof *r);
}
