/* Fuzz target: the safetensors reader (engines/model/safetensors.c). The first byte picks the form:
 * even: the rest is one .safetensors file; odd: the rest is a model.safetensors.index.json next to a
 * valid two-tensor shard. Every tensor the reader accepts is read end to end (ASan checks the bounds). */
#include "../../engines/model/safetensors.h"
#include "fuzz_io.h"

static void make_shard(const char *dir) {
    static int done;
    if (done) return;
    char path[512];
    snprintf(path, sizeof path, "%s/shard/model-00001-of-00001.safetensors", dir);
    char sub[400];
    snprintf(sub, sizeof sub, "%s/shard", dir);
    mkdir(sub, 0700);
    float a[4] = { 1, 2, 3, 4 };
    uint16_t b[6] = { 1, 2, 3, 4, 5, 6 };
    cb_st_write_item items[2] = { { "a", CB_F32, 1, { 4 }, a }, { "model.b", CB_BF16, 2, { 2, 3 }, b } };
    cb_err err = { "" };
    if (cb_st_write(path, items, 2, &err)) abort();
    done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *dir = fuzz_dir();
    char path[512];
    bool index = data[0] & 1;
    if (index) {
        make_shard(dir);
        snprintf(path, sizeof path, "%s/shard/model.safetensors.index.json", dir);
        fuzz_write(path, data + 1, size - 1);
        snprintf(path, sizeof path, "%s/shard", dir);
    } else {
        snprintf(path, sizeof path, "%s/one.safetensors", dir);
        fuzz_write(path, data + 1, size - 1);
    }
    cb_safetensors st;
    cb_err err = { "" };
    if (cb_st_open(path, &st, &err) == 0) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < st.n_tensors; i++) {
            const cb_tensor *t = &st.tensors[i];
            for (size_t k = 0; k < t->nbytes; k++) sink ^= ((const uint8_t *)t->data)[k];
            if (cb_st_find(&st, t->name) == NULL) abort(); /* every listed tensor is found by name */
        }
        (void)sink;
        cb_st_close(&st);
    } else if (!err.msg[0]) {
        abort(); /* a refusal always says why */
    }
    return 0;
}
