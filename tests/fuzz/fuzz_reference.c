/* Fuzz target: verify's reference file (harness/measure/verify_reference.c) for a model of the fixtures' shape
 * (vocab 384, 4 layers, width 128): an accepted reference has ids in the vocabulary and logits and
 * hidden states of exactly the shapes verify reads. */
#include "../../harness/measure/verify_reference.h"
#include "fuzz_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    snprintf(path, sizeof path, "%s/reference.safetensors", fuzz_dir());
    fuzz_write(path, data, size);
    cb_verify_reference r;
    cb_err err = { "" };
    if (cb_verify_reference_open(path, 384, 4, 128, &r, &err) == 0) {
        volatile float sink = 0;
        for (int t = 0; t < r.T; t++) {
            if (r.ids[t] < 0 || r.ids[t] >= 384) abort();
            sink += r.logits[(size_t)t * 384 + 383];
            if (r.hidden) sink += r.hidden[((size_t)4 * r.T + t) * 128 + 127];
        }
        (void)sink;
        cb_verify_reference_close(&r);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
