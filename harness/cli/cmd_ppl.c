/* ctxbench ppl: teacher-forced NLL per context-length bucket on a token file, optionally with 8-bit
 * weights, or comparing the original model with its 8-bit twin (KL, top-1 agreement, ΔNLL). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/model/presets.h"
#include "../../engines/kernels/gemm8.h"
#include "../../engines/model/quantize.h"
#include "cli.h"
#include "cli_options.h"
#include "../measure/build_info.h"
#include "../measure/tokens.h"
#include "../measure/workload.h" /* CB_WL_MAX_THREADS */
#include "../results/ppl_store.h"
#include "../stats/quality.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ctxbench ppl --model DIR|PRESET --tokens FILE [options]\n"
            "  Teacher-forced negative log-likelihood per context-length bucket (log-softmax in double).\n"
            "  --tokens FILE          raw little-endian int32 ids (*.bin, *.i32) or whitespace-separated decimal ids\n"
            "  --context N            window length (default: whole file, at most 4096)\n"
            "  --stride S             window stride when the file is longer than N (default N/2; S <= N); each\n"
            "                         window rescoring only tokens the previous ones did not score\n"
            "  --weights-dtype D      orig|bf16|f16|f32|fp8|int8: weights of the evaluated model (default orig: a\n"
            "                         preset in bf16, a checkpoint as stored; fp8/int8 quantise the linear layers)\n"
            "  --compare fp8|int8     also run the 8-bit twin on the same tokens: KL(orig||q), top-1, dNLL\n"
            "  --kv-dtype D           KV cache of the evaluated model: f32|bf16|f16|fp8|int8 (default f32 exact,\n"
            "                         bf16 fast; bf16 with --compare-kv)\n"
            "  --compare-kv fp8|int8  also run the same weights with an 8-bit KV cache: KL, top-1, dNLL against\n"
            "                         the --kv-dtype cache (docs/quantization.md, \"8-bit KV cache\")\n"
            "  --buckets LIST         upper bounds of context-length buckets, e.g. 16,64,256 (default powers of 4)\n"
            "  --mode exact|fast      activations fp32 (default) or bf16 / int8 (fast)\n"
            "  --threads N            OpenMP threads (default all)\n"
            "  --seed N               preset weight seed (default 1)\n"
            "  --db FILE              also store the results in the results database (tables ppl_runs and\n"
            "                         ppl_buckets, docs/schema.md), for `ctxbench report` (C4)\n");
}

/* --weights-dtype: orig (a preset in bf16, a checkpoint as stored: CB_DTYPE_COUNT), a preset's bf16 / f16 /
 * f32, or fp8 / int8. */
static int parse_weights(const char *cmd, const char *flag, const char *v, void *dest) {
    cb_dtype t;
    if (strcmp(v, "orig") == 0) t = CB_DTYPE_COUNT;
    else if (cb_dtype_parse(v, &t) || !(cb_dtype_is_q8(t) || t == CB_F32 || t == CB_F16 || t == CB_BF16)) {
        fprintf(stderr, "ctxbench %s: bad %s '%s' (expected orig, bf16, f16, f32, fp8 or int8)\n", cmd, flag, v);
        return -1;
    }
    *(cb_dtype *)dest = t;
    return 0;
}

static int run_ppl(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *buckets = NULL, *db = NULL;
    int64_t context = 0, stride = 0, threads = 0, seed = 1;
    cb_dtype wdt = CB_DTYPE_COUNT, cmp = CB_DTYPE_COUNT, kv = CB_DTYPE_COUNT, cmp_kv = CB_DTYPE_COUNT;
    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.mode = CB_MODE_EXACT;
    const cb_cli_opt opts[] = {
        CB_OPT("model", CB_OPT_TEXT, &model),
        CB_OPT("tokens", CB_OPT_TEXT, &tokens),
        CB_OPT("context", CB_OPT_I64, &context, .lo = 2, .hi = 1 << 24),
        CB_OPT("stride", CB_OPT_I64, &stride, .lo = 1, .hi = 1 << 24),
        CB_OPT("weights-dtype", CB_OPT_CUSTOM, &wdt, .parse = parse_weights),
        CB_OPT("compare", CB_OPT_Q8_DTYPE, &cmp),
        CB_OPT("buckets", CB_OPT_TEXT, &buckets),
        CB_OPT("mode", CB_OPT_MODE, &o.mode),
        CB_OPT("threads", CB_OPT_I64, &threads, .lo = 0, .hi = CB_WL_MAX_THREADS),
        CB_OPT("seed", CB_OPT_I64, &seed, .lo = 0, .hi = INT64_MAX),
        CB_OPT("db", CB_OPT_TEXT, &db),
        CB_OPT("kv-dtype", CB_OPT_KV_DTYPE, &kv),
        CB_OPT("compare-kv", CB_OPT_Q8_DTYPE, &cmp_kv),
        CB_OPT_END,
    };
    int first, st = cb_cli_parse("ppl", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first != argc || !model || !tokens) {
        fprintf(stderr, "ctxbench ppl: --model and --tokens are required (and no positional arguments)\n");
        usage(stderr);
        return 2;
    }
    if (cmp != CB_DTYPE_COUNT && cb_dtype_is_q8(wdt)) {
        fprintf(stderr, "ctxbench ppl: --compare runs the original weights against the 8-bit ones; --weights-dtype %s "
                "is already 8-bit\n", cb_dtype_name(wdt));
        return 2;
    }
    if (cmp != CB_DTYPE_COUNT && cmp_kv != CB_DTYPE_COUNT) {
        fprintf(stderr, "ctxbench ppl: --compare and --compare-kv measure one 8-bit approximation each; give one\n");
        return 2;
    }
    o.threads = (int)threads;
    o.kv_dtype = kv != CB_DTYPE_COUNT ? kv : cmp_kv != CB_DTYPE_COUNT ? CB_BF16 : o.mode == CB_MODE_EXACT ? CB_F32 : CB_BF16;
    cb_engine_opts oq = o;
    if (cmp_kv != CB_DTYPE_COUNT) oq.kv_dtype = cmp_kv;
    const bool qkv = cmp_kv != CB_DTYPE_COUNT;
    cb_err err = { "" };
    cb_model m, mq;
    memset(&m, 0, sizeof m);
    memset(&mq, 0, sizeof mq);
    int32_t *ids = NULL;
    int64_t T = 0;
    int rc = 1;
    cb_quality_bucket b[64];
    /* 8-bit presets are generated as the quantisation of the bf16 preset: mq is m's 8-bit twin */
    if (cb_model_open(model, (uint64_t)seed, wdt == CB_DTYPE_COUNT ? CB_BF16 : wdt, &m, &err)) goto fail;
    if (cmp != CB_DTYPE_COUNT && cb_model_open(model, (uint64_t)seed, cmp, &mq, &err)) goto fail;
    if (cb_tokens_read(tokens, m.cfg.vocab, &ids, &T, &err)) goto fail;
    if (context == 0) context = CB_MIN(T, 4096);
    if (stride == 0) stride = CB_MAX(1, context / 2);
    if (stride > context) {
        fprintf(stderr, "ctxbench ppl: --stride %lld > --context %lld would leave tokens unscored\n",
                (long long)stride, (long long)context);
        rc = 2;
        goto out;
    }
    int nb = cb_quality_buckets(buckets, context, b, 64, &err);
    if (nb < 0) { fprintf(stderr, "ctxbench ppl: %s\n", err.msg); rc = 2; goto out; }
    if (cb_ppl_eval(&m, cmp != CB_DTYPE_COUNT ? &mq : qkv ? &m : NULL, &o, &oq, ids, T, context, stride, b, nb, &err))
        goto fail;

    bool q = cmp != CB_DTYPE_COUNT || qkv;
    printf("ppl: model=%s weights=%s kv=%s tokens=%lld context=%lld stride=%lld mode=%s%s%s\n", m.name,
           wdt == CB_DTYPE_COUNT ? "orig" : cb_dtype_name(wdt), cb_dtype_name(o.kv_dtype), (long long)T,
           (long long)context, (long long)stride, o.mode == CB_MODE_EXACT ? "exact" : "fast",
           q ? (qkv ? " compare-kv=" : " compare=") : "", q ? cb_dtype_name(qkv ? cmp_kv : cmp) : "");
    printf("%-15s %8s %10s %10s", "context", "tokens", "nll", "ppl");
    if (q) printf(" %10s %10s %10s %8s", "nll_q", "dnll", "kl", "top1");
    printf("\n");
    cb_quality_bucket all = { .lo = 1, .hi = context };
    for (int i = 0; i <= nb; i++) {
        cb_quality_bucket *k = i < nb ? &b[i] : &all;
        if (i < nb) {
            all.n += k->n; all.nll += k->nll; all.nll_q += k->nll_q; all.kl += k->kl; all.top1_agree += k->top1_agree;
        }
        if (k->n == 0) continue;
        char label[40];
        if (i < nb) snprintf(label, sizeof label, "%lld-%lld", (long long)k->lo, (long long)k->hi);
        else snprintf(label, sizeof label, "all");
        double nll = k->nll / (double)k->n;
        printf("%-15s %8lld %10.6f %10.4f", label, (long long)k->n, nll, exp(nll));
        if (q) {
            double nq = k->nll_q / (double)k->n;
            printf(" %10.6f %+10.6f %10.3e %7.3f%%", nq, nq - nll, k->kl / (double)k->n,
                   100.0 * (double)k->top1_agree / (double)k->n);
        }
        printf("\n");
    }
    if (db) {
        char wname[16];
        snprintf(wname, sizeof wname, "%s", cb_dtype_name(cb_config_is_q8(&m.cfg) ? m.cfg.q8 : m.cfg.weights_dtype));
        cb_ppl_record rec = { .git_commit = cb_build_commit, .model = model, .weight_dtype = wname,
                              .compare_dtype = cmp != CB_DTYPE_COUNT ? cb_dtype_name(cmp) : NULL,
                              .kv_dtype = cb_dtype_name(o.kv_dtype), .compare_kv_dtype = qkv ? cb_dtype_name(cmp_kv) : NULL,
                              .mode = o.mode == CB_MODE_EXACT ? "exact" : "fast", .tokens_file = tokens, .seed = seed,
                              .n_tokens = T, .context = context, .stride = stride, .weight_bytes = m.weight_bytes,
                              .compare_weight_bytes = cmp != CB_DTYPE_COUNT ? mq.weight_bytes : qkv ? m.weight_bytes : 0 };
        int64_t id = cb_ppl_store(db, &rec, b, nb, &err);
        if (id < 0) goto fail;
        printf("stored: ppl_runs.id = %lld in %s\n", (long long)id, db);
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "ctxbench ppl: %s\n", err.msg);
out:
    free(ids);
    cb_model_quant_release(&m);
    cb_model_quant_release(&mq);
    cb_model_free(&m);
    cb_model_free(&mq);
    return rc;
}

static const cb_command ppl_cmd = { "ppl", "teacher-forced NLL per context bucket; 8-bit vs original (KL, top-1)",
                                    run_ppl };
CB_REGISTER_COMMAND(ppl_cmd);
