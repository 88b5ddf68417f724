/* safetensors reader: fixtures, sharded checkpoints, and each kind of corrupt file giving its own error. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engines/model/model.h"

Test(safetensors, open_fixtures_and_find) {
    cb_safetensors st;
    cb_err err = { { 0 } };
    cr_assert_eq(cb_st_open("tests/fixtures/llama-tiny", &st, &err), 0, "%s", err.msg);
    const cb_tensor *t = cb_st_find(&st, "model.layers.0.self_attn.q_proj.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, CB_BF16);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 128);
    cr_assert_eq(t->shape[1], 128);
    cr_assert_eq(t->nbytes, 128 * 128 * 2);
    cr_assert_null(cb_st_find(&st, "model.layers.0.self_attn.q_proj"));
    cr_assert_null(cb_st_find(&st, "__metadata__"));
    cb_st_close(&st);
    cr_assert_eq(cb_st_open("tests/fixtures/bamba-tiny/reference.safetensors", &st, &err), 0, "%s", err.msg);
    t = cb_st_find(&st, "input_ids");
    cr_assert(t && t->dtype == CB_I32 && t->ndim == 1 && t->shape[0] == 160);
    t = cb_st_find(&st, "hidden_states");
    cr_assert(t && t->dtype == CB_F32 && t->ndim == 3 && t->shape[0] == 5 && t->shape[2] == 128);
    cb_st_close(&st);
}

/* Split the mamba2 fixture into 3 shards with cb_st_write + an index.json; must load identically. */
Test(safetensors, sharded_loads_identically) {
    cb_safetensors one;
    cb_err err = { { 0 } };
    cr_assert_eq(cb_st_open("tests/fixtures/mamba2-tiny/model.safetensors", &one, &err), 0, "%s", err.msg);
    char dir[] = "/tmp/cb_shard_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    FILE *idx;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    cr_assert_not_null(idx = fopen(path, "w"));
    fprintf(idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int s = 0; s < 3; s++) {
        cb_st_write_item items[64];
        int n = 0;
        for (int i = s; i < one.n_tensors; i += 3) {
            const cb_tensor *t = &one.tensors[i];
            items[n] = (cb_st_write_item){ t->name, t->dtype, t->ndim, { 0 }, t->data };
            memcpy(items[n].shape, t->shape, sizeof t->shape);
            n++;
            fprintf(idx, "%s\"%s\": \"model-%05d-of-00003.safetensors\"", i ? ", " : "", t->name, s + 1);
        }
        snprintf(path, sizeof path, "%s/model-%05d-of-00003.safetensors", dir, s + 1);
        cr_assert_eq(cb_st_write(path, items, n, &err), 0, "%s", err.msg);
    }
    fprintf(idx, "}}\n");
    fclose(idx);
    cb_safetensors sh;
    cr_assert_eq(cb_st_open(dir, &sh, &err), 0, "%s", err.msg);
    cr_assert_eq(sh.n_files, 3);
    cr_assert_eq(sh.n_tensors, one.n_tensors);
    for (int i = 0; i < one.n_tensors; i++) {
        const cb_tensor *a = &one.tensors[i], *b = cb_st_find(&sh, a->name);
        cr_assert_not_null(b, "%s", a->name);
        cr_assert_eq(a->dtype, b->dtype);
        cr_assert_eq(a->nbytes, b->nbytes);
        cr_assert(memcmp(a->data, b->data, a->nbytes) == 0, "%s differs", a->name);
    }
    cb_st_close(&sh);
    /* a config next to it: the whole model loads from the shards */
    snprintf(path, sizeof path, "cp tests/fixtures/mamba2-tiny/config.json %s/", dir);
    cr_assert_eq(system(path), 0);
    cb_model m;
    cr_assert_eq(cb_model_load(dir, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.layers[2].mamba.in_proj.rows, m.cfg.m_in_proj_rows);
    cb_model_free(&m);

    /* index listing a tensor its shard does not contain */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    cr_assert_not_null(idx = fopen(path, "w"));
    fprintf(idx, "{\"weight_map\": {\"%s\": \"model-00002-of-00003.safetensors\"}}", one.tensors[0].name);
    fclose(idx);
    cr_assert_neq(cb_st_open(dir, &sh, &err), 0);
    cr_assert(strstr(err.msg, one.tensors[0].name) && strstr(err.msg, "model-00002-of-00003.safetensors") &&
                  strstr(err.msg, "not present"), "%s", err.msg);
    /* a tensor present in two shards */
    cr_assert_not_null(idx = fopen(path, "w"));
    fprintf(idx, "{\"weight_map\": {\"%s\": \"model-00001-of-00003.safetensors\", \"b\": \"dup.safetensors\"}}",
            one.tensors[0].name);
    fclose(idx);
    snprintf(path, sizeof path, "%s/dup.safetensors", dir);
    float v[2] = { 1, 2 };
    cb_st_write_item dup[2] = { { "b", CB_F32, 1, { 1 }, v }, { one.tensors[0].name, CB_F32, 1, { 1 }, v + 1 } };
    cr_assert_eq(cb_st_write(path, dup, 2, &err), 0, "%s", err.msg);
    cr_assert_neq(cb_st_open(dir, &sh, &err), 0);
    cr_assert(strstr(err.msg, one.tensors[0].name) && strstr(err.msg, "twice"), "%s", err.msg);
    cb_st_close(&one);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    cr_assert_eq(system(path), 0);
}

/* Write a file: 8-byte length (or `len_override`), header text, `data_bytes` zero bytes. */
static void write_raw(const char *path, const char *header, uint64_t len_override, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    size_t padded = (strlen(header) + 7) / 8 * 8; /* as writers do: keeps tensor data aligned */
    uint64_t hl = len_override ? len_override : padded;
    for (int i = 0; i < 8; i++) fputc((int)((hl >> (8 * i)) & 0xff), f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = strlen(header); i < padded; i++) fputc(' ', f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

static void expect_error(const char *header, uint64_t len_override, size_t data_bytes, const char *w1, const char *w2) {
    char path[] = "/tmp/cb_st_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    write_raw(path, header, len_override, data_bytes);
    cb_safetensors st;
    cb_err err = { { 0 } };
    int rc = cb_st_open(path, &st, &err);
    unlink(path);
    cr_assert_neq(rc, 0, "accepted header %s", header);
    cr_assert(strstr(err.msg, path), "file not named: %s", err.msg);
    cr_assert(strstr(err.msg, w1), "'%s' not in: %s", w1, err.msg);
    if (w2) cr_assert(strstr(err.msg, w2), "'%s' not in: %s", w2, err.msg);
}

Test(safetensors, corrupt_files_give_specific_errors) {
    /* truncated below the 8-byte length */
    char path[] = "/tmp/cb_st_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_eq(write(fd, "abc", 3), 3);
    close(fd);
    cb_safetensors st;
    cb_err err;
    cr_assert_neq(cb_st_open(path, &st, &err), 0);
    cr_assert(strstr(err.msg, "truncated"), "%s", err.msg);
    unlink(path);

    expect_error("{}", 1000, 0, "header length 1000", "past the end");
    expect_error("{\"a\": ", 0, 0, "not valid JSON", NULL);
    expect_error("[1, 2]", 0, 0, "not a JSON object", NULL);
    expect_error("{\"w\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 0, 16, "tensor w", "F64");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 0, 8, "tensor w", "expected 12");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 0, 4, "tensor w", "outside the data region");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 0, 8, "tensor w", "outside");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 0, 8, "tensor w", "shape[0]");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 0, 4, "tensor w", "at most 8");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 65536], \"data_offsets\": [0, 4]}}", 0, 4,
                 "tensor w", "overflow");
    expect_error("{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 0, 8, "tensor w", "dtype");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 0, 8, "tensor w", "data_offsets");
    expect_error("{\"w\": 5}", 0, 0, "tensor w", "not an object");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 0, 12, "overlaps", "tensor a");
    expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [2, 6]}}", 0, 8, "tensor w", "not aligned");
    /* __metadata__ is skipped, zero-size tensors are fine */
    fd = mkstemp(path);
    close(fd);
    write_raw(path, "{\"__metadata__\": {\"format\": \"pt\"}, \"e\": {\"dtype\": \"BF16\", \"shape\": [0, 4], \"data_offsets\": [0, 0]},"
                    " \"w\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 0, 4);
    cr_assert_eq(cb_st_open(path, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.n_tensors, 2);
    cr_assert_not_null(cb_st_find(&st, "e"));
    cb_st_close(&st);
    unlink(path);
    cr_assert_neq(cb_st_open("/tmp/definitely/not/here.safetensors", &st, &err), 0);
    cr_assert(strstr(err.msg, "/tmp/definitely/not/here.safetensors"), "%s", err.msg);
}

/* An empty tensor sorted between two overlapping ones, and a short tensor inside a long one followed by a
 * third overlapping only the long one: both overlaps are found (docs/promises.md). */
Test(safetensors, overlap_hidden_by_empty_or_nested_tensor_is_found) {
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                 " \"z\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", 0, 24, "overlaps", "tensor a");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [0, 32]},"
                 " \"n\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 32]}}", 0, 32, "overlaps", "tensor a");
}
