/* Fuzz target: config.json (engines/model/config.c). An accepted config has its parameter count and
 * weight bytes computed (UBSan checks every product for overflow) and must pass validation again. */
#include "../../engines/model/config.h"
#include "fuzz_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size);
    cb_config cfg;
    cb_err err = { "" };
    if (cb_config_parse(text, "config.json", &cfg, &err) == 0) {
        if (cb_config_validate(&cfg, "config.json", &err)) abort();
        int64_t n = cb_config_param_count(&cfg);
        cb_weight_split w;
        cb_config_weight_split(&cfg, &w);
        if (n <= 0 || w.total == 0 || w.total > CB_BYTES_MAX) abort();
    } else if (!err.msg[0]) {
        abort();
    }
    free(text);
    return 0;
}
