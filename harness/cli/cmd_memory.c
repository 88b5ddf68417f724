/* `ctxbench memory`: the analytic memory table of a model (from ops->plan; nothing allocated). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/engine.h"
#include "../../engines/model/presets.h"
#include "cli.h"
#include "cli_options.h"
#include "../measure/workload.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench memory --model PRESET|DIR [--contexts 4K..1M] [--kv-dtype bf16|f16|f32|fp8|int8]\n"
               "                       [--batch B] [--engine NAME] [--weights-dtype bf16|f16|f32|fp8|int8]\n\n"
               "Print the analytic memory (weights, KV cache, SSM state, conv state, scratch, total) per sequence\n"
               "and at batch B, from the engine's plan: no weights are loaded and nothing is allocated, so it\n"
               "works for the 9b presets on any machine. Bytes, and GiB in parentheses for the totals.\n"
               "--weights-dtype fp8|int8 plans 8-bit linear projections (per-row fp32 scales; embeddings, norms and\n"
               "SSM parameters kept) and prints the weight bytes by storage and the saving over the original.\n");
}

static int run(int argc, char **argv) {
    const char *model = NULL, *ctxs = "4K..1M", *engine = NULL;
    cb_dtype kv = CB_BF16, wdt = CB_DTYPE_COUNT;
    int batch = 1;
    const cb_cli_opt opts[] = {
        CB_OPT("model", CB_OPT_TEXT, &model),         CB_OPT("contexts", CB_OPT_TEXT, &ctxs),
        CB_OPT("kv-dtype", CB_OPT_KV_DTYPE, &kv),     CB_OPT("batch", CB_OPT_INT, &batch, .lo = 1, .hi = 1 << 20),
        CB_OPT("engine", CB_OPT_TEXT, &engine),       CB_OPT("weights-dtype", CB_OPT_WEIGHTS_DTYPE, &wdt), CB_OPT_END,
    };
    int first, st = cb_cli_parse("memory", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (!model || first != argc) { usage(stderr); return 2; }
    int64_t cv[CB_WL_MAX_LIST];
    int n = 0;
    if (cb_parse_contexts(ctxs, cv, &n, CB_WL_MAX_LIST)) {
        fprintf(stderr, "ctxbench memory: bad --contexts '%s' (expected e.g. 4K..1M or 4K,32K)\n", ctxs);
        return 2;
    }
    cb_config cfg;
    cb_err err = { "" };
    if (cb_model_config(model, &cfg, &err)) { fprintf(stderr, "ctxbench memory: %s\n", err.msg); return 1; }
    const cb_engine_ops *ops = engine ? cb_engine_find(engine) : cb_engine_for_config(&cfg);
    if (!ops) { fprintf(stderr, "ctxbench memory: no engine %s for %s\n", engine ? engine : "registered", model); return 1; }
    if (!ops->supports(&cfg)) { fprintf(stderr, "ctxbench memory: engine %s does not run %s\n", ops->name, model); return 1; }
    cb_weight_split orig, ws;
    cb_config_weight_split(&cfg, &orig);
    const cb_dtype odt = cb_config_is_q8(&cfg) ? cfg.q8 : cfg.weights_dtype;
    if (wdt != CB_DTYPE_COUNT) cb_config_for_weights(model, wdt, &cfg);
    cb_config_weight_split(&cfg, &ws);
    printf("model %s  engine %s  arch %s  kv %s  (analytic: from %s's plan, nothing allocated)\n", model, ops->name,
           cb_arch_name(cfg.arch), cb_dtype_name(kv), ops->name);
    printf("weights %s: %zu bytes = 8-bit codes %zu + fp32 scales %zu + kept in %s %zu", cb_config_is_q8(&cfg) ?
           cb_dtype_name(cfg.q8) : cb_dtype_name(cfg.weights_dtype), ws.total, ws.q8, ws.scales,
           cb_dtype_name(cfg.weights_dtype), ws.kept);
    if (ws.total != orig.total)
        printf("\n  vs %s weights %zu bytes: saving %zu bytes (%.3f GiB), ratio %.4f", cb_dtype_name(odt), orig.total, orig.total - ws.total,
               (double)(orig.total - ws.total) / 1073741824.0, (double)ws.total / (double)orig.total);
    printf("\n");
    if (cfg.n_experts > 0)
        printf("parameters %lld, active per token %lld (%d of %d routed experts per layer): one token reads %zu weight "
               "bytes of %zu\n", (long long)cb_config_param_count(&cfg), (long long)cb_config_active_param_count(&cfg),
               cfg.top_k, cfg.n_experts, cb_config_active_weight_bytes(&cfg), ws.total);
    printf("%10s %15s %15s %13s %12s %12s %15s %10s", "context", "weights", "kv_cache", "ssm_state", "conv_state",
           "scratch", "total", "GiB");
    if (batch > 1) printf(" %15s %10s", "total@B", "GiB@B");
    printf("\n");
    bool saturated = false;
    for (int i = 0; i < n; i++) {
        cb_engine_opts o;
        cb_engine_opts_default(&o);
        o.kv_dtype = kv; o.max_context = cv[i]; o.max_batch = 1;
        cb_memory_report m, mb;
        ops->plan(&cfg, &o, cv[i], 1, &m);
        printf("%10lld %15zu %15zu %13zu %12zu %12zu %15zu %10.3f", (long long)cv[i], m.weights, m.kv_cache, m.ssm_state,
               m.conv_state, m.scratch, m.total, m.total / 1073741824.0);
        if (batch > 1) {
            o.max_batch = batch;
            ops->plan(&cfg, &o, cv[i], batch, &mb);
            printf(" %15zu %10.3f", mb.total, mb.total / 1073741824.0);
            saturated |= mb.total == CB_BYTES_MAX;
        }
        saturated |= m.total == CB_BYTES_MAX;
        printf("\n");
    }
    if (saturated)
        printf("%zu: more bytes than 63 bits hold (the plan saturates there; every memory budget refuses it)\n",
               CB_BYTES_MAX);
    return 0;
}

static const cb_command cmd_memory = { "memory", "analytic memory table of a model over contexts (nothing allocated)", run };
CB_REGISTER_COMMAND(cmd_memory)
