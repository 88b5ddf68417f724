/* Fuzz target: token files of `ctxbench ppl` (harness/measure/tokens.c): the first byte picks the form (text,
 * raw int32 .bin, or .safetensors with input_ids); every id returned is inside the vocabulary. */
#include "../../harness/measure/tokens.h"
#include "fuzz_io.h"

#define VOCAB 384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const ext[] = { "txt", "bin", "safetensors" };
    char path[512];
    snprintf(path, sizeof path, "%s/tokens.%s", fuzz_dir(), ext[data[0] % 3]);
    fuzz_write(path, data + 1, size - 1);
    int32_t *ids = NULL;
    int64_t n = 0;
    cb_err err = { "" };
    if (cb_tokens_read(path, VOCAB, &ids, &n, &err) == 0) {
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= VOCAB) abort();
    } else if (!err.msg[0]) {
        abort();
    }
    free(ids);
    return 0;
}
