/* Fuzz target: workload YAML (harness/measure/workload.c). An accepted workload has every list non-empty and
 * every number inside the ranges the parser promises (docs/usage.md). */
#include "../../harness/measure/workload.h"
#include "fuzz_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size);
    cb_workload w;
    cb_err err = { "" };
    if (cb_workload_parse(text, "w.yaml", &w, &err) == 0) {
        if (w.n_models < 1 || w.n_contexts < 1 || w.n_phases < 1 || w.n_threads < 1 || w.n_batches < 1) abort();
        for (int i = 0; i < w.n_contexts; i++)
            if (w.contexts[i] < 1 || w.contexts[i] > CB_WL_MAX_CONTEXT) abort();
        for (int i = 0; i < w.n_threads; i++)
            if (w.threads[i] < 0 || w.threads[i] > CB_WL_MAX_THREADS) abort();
        if (!(w.time_budget_point >= 0 && w.time_budget_point <= CB_WL_MAX_SECONDS)) abort();
        if (!(w.time_budget_run >= 0 && w.time_budget_run <= CB_WL_MAX_SECONDS)) abort();
        if (w.memory_budget_bytes == 0 && !(w.memory_budget_fraction > 0 && w.memory_budget_fraction <= 1)) abort();
        if (w.memory_budget_bytes < 0 || w.memory_budget_bytes > CB_WL_MAX_BUDGET_BYTES) abort();
    } else if (!err.msg[0]) {
        abort();
    }
    free(text);
    return 0;
}
