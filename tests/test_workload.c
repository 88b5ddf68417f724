#include <criterion/criterion.h>
#include <string.h>

#include "../harness/measure/workload.h"

Test(workload, good_file_with_comments_ranges_lists) {
    const char *t = "# a comment\n"
                    "name: demo   # trailing comment\n"
                    "engines: auto\n"
                    "models: [transformer-tiny, bamba-tiny]\n"
                    "contexts: [4K..16K, 1M]\n"
                    "phases: [prefill, decode, throughput]\n"
                    "batch: [1, 4, max]\n"
                    "threads: 2\n"
                    "repetitions: 7\n"
                    "warmups: 0\n"
                    "memory_budget: 50%\n"
                    "time_budget_point: 2m\n"
                    "kv_dtype: f16\n"
                    "mode: fast\n"
                    "papi_events:\n  - PAPI_TOT_CYC\n  - sde:::ctxbench::flops\n";
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse(t, "t.yaml", &w, &err), 0, "%s", err.msg);
    cr_assert_str_eq(w.name, "demo");
    cr_assert_eq(w.n_engines, 0);
    cr_assert_eq(w.n_models, 2);
    cr_assert_eq(w.n_contexts, 4);
    cr_assert_eq(w.contexts[0], 4096);
    cr_assert_eq(w.contexts[2], 16384);
    cr_assert_eq(w.contexts[3], 1 << 20);
    cr_assert_eq(w.n_phases, 3);
    cr_assert_eq(w.phases[2], CB_PH_THROUGHPUT);
    cr_assert_eq(w.n_batches, 3);
    cr_assert_eq(w.batches[2], 0);
    cr_assert_eq(w.threads[0], 2);
    cr_assert_eq(w.repetitions, 7);
    cr_assert_eq(w.warmups, 0);
    cr_assert_float_eq(w.memory_budget_fraction, 0.5, 1e-12);
    cr_assert_float_eq(w.time_budget_point, 120.0, 1e-12);
    cr_assert_eq(w.kv_dtype, CB_F16);
    cr_assert_eq(w.mode, CB_MODE_FAST);
    cr_assert_eq(w.n_events, 2);
    cr_assert_str_eq(w.events[1], "sde:::ctxbench::flops");
}

Test(workload, bandwidth_probe_on_off) {
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\n", "w", &w, &err), 0, "%s", err.msg);
    cr_assert(w.bandwidth_probe);
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\nbandwidth_probe: off\n", "w", &w, &err), 0, "%s", err.msg);
    cr_assert(!w.bandwidth_probe);
}

Test(workload, unknown_key_names_file_and_line) {
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\n# c\nrepetitons: 3\n", "w.yaml", &w, &err), -1);
    cr_assert(strstr(err.msg, "w.yaml:4: unknown key 'repetitons' (expected one of") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "repetitions") != NULL);
}

Test(workload, bad_values_are_errors_with_line) {
    static const struct { const char *text, *want; } cases[] = {
        { "models: [a]\ncontexts: 3K..1M\n", "w:2: bad context '3K..1M'" },
        { "models: [a]\ncontexts: 4K\nphases: [prefil]\n", "w:3: unknown phase 'prefil'" },
        { "models: [a]\ncontexts: 4K\nrepetitions: 0\n", "w:3: 'repetitions' must be" },
        { "models: [a]\ncontexts: 4K\nmemory_budget: 150%\n", "w:3: bad memory_budget" },
        { "models: [a]\ncontexts: 4K\nbandwidth_probe: maybe\n", "w:3: 'bandwidth_probe' must be on or off, got 'maybe'" },
        { "models: [a]\ncontexts: 4K\nfill: fake\n", "w:3: bad fill 'fake'" },
        { "models: [a]\ncontexts: 4K\nkv_dtype: int3\n", "w:3: bad kv_dtype" },
        { "models: [a]\ncontexts: 4K\nbatch: [0]\n", "w:3: bad batch '0'" },
        { "models: [a]\nmodels: [b]\ncontexts: 4K\n", "w:2: key 'models' given twice" },
        { "models: [a]\ncontexts: {x: 1}\n", "w:2: nested mappings" },
        { "models: [a\n", "w:" },
        { "contexts: 4K\n", "no models" },
        { "", "empty workload" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cb_workload w;
        cb_err err = { "" };
        cr_assert_eq(cb_workload_parse(cases[i].text, "w", &w, &err), -1, "case %zu accepted", i);
        cr_assert(strstr(err.msg, cases[i].want) != NULL, "case %zu: got '%s', want '%s'", i, err.msg, cases[i].want);
    }
}

Test(workload, sizes_and_ranges) {
    int64_t v[64];
    int n = 0;
    cr_assert_eq(cb_parse_contexts("4K..1M", v, &n, 64), 0);
    cr_assert_eq(n, 9);
    cr_assert_eq(v[8], 1 << 20);
    int64_t b;
    cr_assert_eq(cb_parse_size("64k", &b), 0);
    cr_assert_eq(b, 65536);
    cr_assert_eq(cb_parse_size("1.5G", &b), 0);
    cr_assert_eq(b, 3ll << 29);
    cr_assert_eq(cb_parse_size("x", &b), -1);
}

Test(workload, shipped_workloads_parse) {
    static const char *const files[] = { "workloads/quick.yaml", "workloads/claims.yaml", "workloads/full.yaml",
                                         "workloads/engines.yaml", "workloads/cluster.yaml", "workloads/long1m.yaml",
                                         "workloads/quick-9b.yaml", "workloads/quick-throughput.yaml",
                                         "workloads/quick-peer.yaml", "workloads/granite.yaml", "workloads/kv8.yaml",
                                         "workloads/prefill128k.yaml" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        cb_workload w;
        cb_err err = { "" };
        cr_assert_eq(cb_workload_load(files[i], &w, NULL, &err), 0, "%s", err.msg);
    }
}

/* weight_dtype and kv_dtype take the 8-bit formats; other names are refused with the line. */
Test(workload, dtypes_8bit) {
    cb_workload w;
    cb_err err = { "" };
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\nweight_dtype: fp8\n", "w", &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w.weight_dtype, CB_F8_E4M3);
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\nweight_dtype: int8\n", "w", &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w.weight_dtype, CB_I8);
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\nkv_dtype: fp8\n", "w", &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w.kv_dtype, CB_F8_E4M3);
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\nkv_dtype: int8\n", "w", &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w.kv_dtype, CB_I8);
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\nkv_dtype: q4\n", "w", &w, &err), -1);
    cr_assert(strstr(err.msg, "w:3") && strstr(err.msg, "kv_dtype"), "%s", err.msg);
    cr_assert_eq(cb_workload_parse("models: [a]\ncontexts: 4K\nweight_dtype: int4\n", "w", &w, &err), -1);
    cr_assert(strstr(err.msg, "fp8 / int8"), "%s", err.msg);
}
