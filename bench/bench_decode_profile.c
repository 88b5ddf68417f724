/* `decode-profile` section: where the wall time of a batch-1 decode token of a preset goes, per part of the
 * layers (the engines' timers, counters.h cb_prof_part), at a synthetic depth, exact (or fast) mode, a bf16
 * (or the named 8-bit) KV cache, on the current thread count. For a model with routed experts it also gives the bytes the router and the k chosen
 * experts read per token and their GB/s, and the same for the whole MoE layer (router + shared expert + k
 * experts), against the larger of two triad probes taken before and after (the MoE decode target,
 * docs/performance.md "Granite 4.0-H: MoE decode on Zen 4"). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/counters.h"
#include "../engines/engine.h"
#include "../engines/layers/moe.h"
#include "../engines/model/presets.h"
#include "../harness/measure/roofs.h"
#include "../engines/kernels/kernels.h"
#include "bench.h"

/* Bytes one token reads from the routed experts (k of them per MoE layer), the router and the shared expert. */
static void moe_bytes(const cb_model *m, double *experts, double *router, double *shared) {
    const cb_config *c = &m->cfg;
    *experts = *router = *shared = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const cb_layer_weights *lw = &m->layers[l];
        *shared += (double)(cb_weight_bytes(&lw->mlp.gate) + cb_weight_bytes(&lw->mlp.up) + cb_weight_bytes(&lw->mlp.down));
        if (c->n_experts <= 0) continue;
        cb_weight gu, dn;
        cb_moe_expert(c, &lw->moe, 0, &gu, &dn);
        *experts += (double)c->top_k * (double)(cb_weight_bytes(&gu) + cb_weight_bytes(&dn));
        *router += (double)cb_weight_bytes(&lw->moe.router);
    }
}

static int run_decode_profile(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "granite-xs", *dts = argc > 2 ? argv[2] : "bf16";
    const int64_t depth = argc > 3 ? atoll(argv[3]) : 4096;
    const int tokens = argc > 4 ? atoi(argv[4]) : 64;
    const char *kvs = argc > 5 ? argv[5] : "bf16", *mode = argc > 6 ? argv[6] : "exact";
    const cb_dtype dt = !strcmp(dts, "fp8") ? CB_F8_E4M3 : !strcmp(dts, "int8") ? CB_I8 : CB_BF16;
    const cb_dtype kvt = !strcmp(kvs, "fp8") ? CB_F8_E4M3 : !strcmp(kvs, "int8") ? CB_I8 : CB_BF16;
    if ((dt == CB_BF16 && strcmp(dts, "bf16")) || (kvt == CB_BF16 && strcmp(kvs, "bf16")) || (strcmp(mode, "exact") && strcmp(mode, "fast")) || depth < 1 || tokens < 1) {
        printf("ctxbench-bench decode-profile [PRESET] [bf16|fp8|int8] [DEPTH] [TOKENS] [KV: bf16|fp8|int8] [exact|fast]   "
               "(default granite-xs bf16 4096 64 bf16 exact)\n");
        return 2;
    }
    cb_model m;
    cb_err err = { "" };
    if (cb_model_open(name, 1, dt, &m, &err)) {
        fprintf(stderr, "decode-profile: %s\n", err.msg);
        return 1;
    }
    const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.threads = omp_get_max_threads();
    o.kv_dtype = kvt;
    o.mode = strcmp(mode, "fast") ? CB_MODE_EXACT : CB_MODE_FAST;
    o.max_context = depth + tokens + 8; /* the warm-up tokens too */
    cb_engine *e = NULL;
    if (!ops || ops->create(&m, &o, &e, &err) || ops->fill_synthetic(e, 0, depth, 1, &err)) {
        fprintf(stderr, "decode-profile: %s: %s\n", name, err.msg);
        if (e) ops->destroy(e);
        cb_model_free(&m);
        return 1;
    }
    float *logits = malloc(sizeof(float) * (size_t)m.cfg.vocab);
    int seq = 0;
    int32_t tok = 7;
    for (int i = 0; i < 4; i++) ops->decode(e, 1, &seq, &tok, logits, &err); /* warm-up */
    double ex, ro, sh;
    moe_bytes(&m, &ex, &ro, &sh);
    const double before = cb_roofs_triad_probe(o.threads, 0.3, &err);
    long long p0[CB_PROF_N], b0 = cb_ctr.weight_bytes + cb_ctr.kv_bytes_read;
    memcpy(p0, cb_prof_ns, sizeof p0);
    const double t0 = cb_bench_now();
    for (int i = 0; i < tokens; i++) {
        tok = (int32_t)((i * 7919u + 13u) % (unsigned)m.cfg.vocab);
        if (ops->decode(e, 1, &seq, &tok, logits, &err)) {
            fprintf(stderr, "decode-profile: %s\n", err.msg);
            break;
        }
    }
    const double sec = (cb_bench_now() - t0) / tokens;
    const double read = (double)(cb_ctr.weight_bytes + cb_ctr.kv_bytes_read - b0) / tokens;
    const double after = cb_roofs_triad_probe(o.threads, 0.3, &err), roof = CB_MAX(before, after);
    printf("decode-profile %s %s, %s KV, %s mode, depth %lld, %d threads, %d tokens: %.3f ms/token, %.1f MB read/token = %.1f GB/s, "
           "triad %.1f / %.1f GB/s (%.0f %%), flash-decode prefetch into %s\n", name, dts, kvs, mode, (long long)depth, o.threads,
           tokens, sec * 1e3, read / 1e6, read / sec / 1e9, before, after,
           roof > 0 ? 100 * read / sec / 1e9 / roof : 0.0, cb_kernels_prefetch_l2(NULL) ? "L2" : "L1");
    double sum = 0;
    for (int k = 0; k < CB_PROF_N; k++) {
        const double ms = (double)(cb_prof_ns[k] - p0[k]) * 1e-6 / tokens;
        if (ms < 0.0005 || k == CB_PROF_SPLIT) continue;
        sum += ms;
        printf("  %-10s %7.3f ms %5.1f %%", cb_prof_name[k], ms, 100 * ms / (sec * 1e3));
        const double by = k == CB_PROF_EXPERTS ? ex : k == CB_PROF_ROUTER ? ro : 0;
        if (by > 0)
            printf("  %6.2f MB %5.1f GB/s %3.0f %% of the triad", by / 1e6, by / ms / 1e6,
                   roof > 0 ? 100 * by / ms / 1e6 / roof : 0.0);
        printf("\n");
    }
    printf("  parts %.3f of %.3f ms\n", sum, sec * 1e3);
    if (m.cfg.n_experts > 0) { /* the MoE target counts the router, the shared expert and the k chosen experts */
        const int parts[5] = { CB_PROF_ROUTER, CB_PROF_GATE_UP, CB_PROF_ACT, CB_PROF_DOWN, CB_PROF_EXPERTS };
        double ms = 0;
        for (int i = 0; i < 5; i++) ms += (double)(cb_prof_ns[parts[i]] - p0[parts[i]]) * 1e-6 / tokens;
        const double by = ro + sh + ex;
        printf("  MoE layers (router + shared expert + k experts) %.3f ms %5.1f %%  %6.2f MB %5.1f GB/s %3.0f %% of the "
               "triad\n", ms, 100 * ms / (sec * 1e3), by / 1e6, by / ms / 1e6, roof > 0 ? 100 * by / ms / 1e6 / roof : 0.0);
    }
    free(logits);
    ops->destroy(e);
    cb_model_free(&m);
    return 0;
}

static const cb_bench_section decode_profile_section = {
    "decode-profile", "batch-1 decode of a preset at a depth, ms per part of the layers [PRESET] [bf16|fp8|int8] [DEPTH] [TOKENS] [KV] [MODE]",
    run_decode_profile };
CB_REGISTER_BENCH(decode_profile_section)
