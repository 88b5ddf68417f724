/* Token files of `ctxbench ppl` (tokens.h): text, raw int32, or a safetensors input_ids tensor. */
#include "tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/model/safetensors.h"

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int check_tokens(const char *path, int vocab, int32_t *v, size_t cnt, int32_t **ids, int64_t *n, cb_err *err);

/* The `input_ids` tensor (I32 or I64, [T] or [1, T]) of a safetensors file, e.g. a fixture's reference. */
static int tokens_from_safetensors(const char *path, int32_t **out, size_t *cnt, cb_err *err) {
    cb_safetensors st;
    if (cb_st_open(path, &st, err)) return -1;
    const cb_tensor *t = cb_st_find(&st, "input_ids");
    int rc = -1;
    if (!t) cb_err_set(err, "%s: no tensor 'input_ids' (a safetensors token file holds its ids there)", path);
    else if ((t->dtype != CB_I32 && t->dtype != CB_I64) || t->ndim < 1 || t->ndim > 2 || (t->ndim == 2 && t->shape[0] != 1))
        cb_err_set(err, "%s: tensor 'input_ids': expected I32 or I64 of shape [T] or [1, T]", path);
    else {
        size_t T = (size_t)t->shape[t->ndim - 1];
        int32_t *v = malloc((T ? T : 1) * sizeof(int32_t));
        if (!v) cb_err_set(err, "%s: out of memory reading %zu tokens", path, T);
        else {
            for (size_t i = 0; i < T; i++) {
                int64_t x = t->dtype == CB_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
                v[i] = x < INT32_MIN || x > INT32_MAX ? -1 : (int32_t)x; /* out of range: rejected below */
            }
            *out = v;
            *cnt = T;
            rc = 0;
        }
    }
    cb_st_close(&st);
    return rc;
}

int cb_tokens_read(const char *path, int vocab, int32_t **ids, int64_t *n, cb_err *err) {
    *ids = NULL;
    *n = 0;
    if (ends_with(path, ".safetensors")) {
        int32_t *v = NULL;
        size_t cnt = 0;
        if (tokens_from_safetensors(path, &v, &cnt, err)) return -1;
        return check_tokens(path, vocab, v, cnt, ids, n, err);
    }
    FILE *f = fopen(path, "rb");
    if (!f) { cb_err_set(err, "%s: cannot open token file: %s", path, strerror(errno)); return -1; }
    size_t cap = 1024, cnt = 0;
    int32_t *v = malloc(cap * sizeof(int32_t));
    int rc = 0;
    if (ends_with(path, ".bin") || ends_with(path, ".i32")) {
        uint8_t b[4];
        size_t got;
        while ((got = fread(b, 1, 4, f)) == 4) {
            if (cnt == cap) v = realloc(v, (cap *= 2) * sizeof(int32_t));
            if (!v) break;
            v[cnt++] = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
        }
        if (v && got != 0) {
            cb_err_set(err, "%s: raw int32 token file has %zu trailing bytes (size not a multiple of 4)", path, got);
            rc = -1;
        }
    } else {
        long long x;
        int r;
        while (v && (r = fscanf(f, "%lld", &x)) == 1) {
            if (x < INT32_MIN || x > INT32_MAX) x = -1;
            if (cnt == cap) v = realloc(v, (cap *= 2) * sizeof(int32_t));
            if (v) v[cnt++] = (int32_t)x;
        }
        if (v && !feof(f)) {
            cb_err_set(err, "%s: token %zu is not a decimal integer (text token files hold whitespace-separated ids;"
                       " raw int32 files must be named *.bin or *.i32)", path, cnt);
            rc = -1;
        }
    }
    fclose(f);
    if (!v) { cb_err_set(err, "%s: out of memory reading tokens", path); return -1; }
    if (rc) { free(v); return -1; }
    return check_tokens(path, vocab, v, cnt, ids, n, err);
}

/* Range and length checks shared by every token-file format; takes ownership of v. */
static int check_tokens(const char *path, int vocab, int32_t *v, size_t cnt, int32_t **ids, int64_t *n, cb_err *err) {
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < cnt; i++)
        if (v[i] < 0 || (vocab > 0 && v[i] >= vocab)) {
            cb_err_set(err, "%s: token %zu = %d is outside the vocabulary [0, %d)", path, i, v[i], vocab);
            rc = -1;
        }
    if (rc == 0 && cnt < 2) { cb_err_set(err, "%s: needs at least 2 tokens, found %zu", path, cnt); rc = -1; }
    if (rc) { free(v); return -1; }
    *ids = v;
    *n = (int64_t)cnt;
    return 0;
}

