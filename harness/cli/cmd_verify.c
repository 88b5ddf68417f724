/* ctxbench verify DIR: run the engine registered for a fixture's model_type and compare every produced
 * logit row with the reference (transformers fp32 full forward): prefill the first P tokens (all-position
 * logits), then decode the rest one token at a time. With --batch B, B copies of the sequence with
 * different prefill lengths are decoded together in one batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../engines/engine.h"
#include "../../engines/model/model.h"
#include "../../engines/kernels/gemm8.h"
#include "../../engines/model/quantize.h"
#include "cli.h"
#include "cli_options.h"
#include "../measure/bf16_yardstick.h"
#include "../measure/verify_reference.h"

typedef struct {
    const char *dir, *reference;
    cb_engine_opts o;
    int prefill, batch;
    double tol, min_agree; /* < 0: the mode's default */
    bool layers, kv_given;
    cb_dtype wdt; /* CB_DTYPE_COUNT: as stored; fp8 / int8: quantised at load */
} verify_args;

typedef struct {
    double prefill_max, decode_max;
    long argmax_agree, rows;
    double flip_margin; /* widest reference top-1 - top-2 margin among rows whose argmax differs */
} verify_result;

static void usage(FILE *f) {
    fprintf(f,
            "usage: ctxbench verify DIR [options]\n"
            "  Load the checkpoint in DIR, run the engine for its model_type, prefill the first P tokens of\n"
            "  DIR/reference.safetensors' input_ids, decode the rest one at a time, and compare every logit row.\n"
            "  --mode exact|fast      exact: fp32 activations, f32 KV cache, tol 1e-3 (default);\n"
            "                         fast: bf16 activations, bf16 KV; tol and argmax agreement: those of transformers'\n"
            "                         own bf16 forward on the reference (DIR/bf16_yardstick.json), else 5e-2 and 99%%\n"
            "  --threads N            OpenMP threads (default: all)\n"
            "  --prefill P            tokens prefilled before decoding (default 3/4 of T)\n"
            "  --batch B              decode B sequences together (prefill lengths P, P-d, P-2d, ...)\n"
            "  --reference FILE       reference file in DIR (default reference.safetensors)\n"
            "  --ssd-chunk C          Mamba2 SSD chunk size (default: the config's)\n"
            "  --prefill-chunk C      tokens per prefill step (default 512)\n"
            "  --kv-dtype f32|bf16|f16|fp8|int8  KV cache storage (default: f32 exact, bf16 fast). fp8/int8: codes\n"
            "                         with per-token scales. In exact mode a cache other than f32 is judged\n"
            "                         against the same engine whose f32 cache holds each row as that dtype\n"
            "                         stores it (rounded twin, same tolerances); the error against the\n"
            "                         reference is printed, not judged\n"
            "  --tol X                max |logit difference| accepted (default: the mode's)\n"
            "  --min-agree F          fast mode: least argmax agreement accepted, 0..1 (default: as --mode says)\n"
            "  --layers               also compare the residual stream after every layer (prefill)\n"
            "  --weights-dtype fp8|int8  quantise the linear projections at load; the 8-bit path is judged against\n"
            "                         its dequantised fp32 twin (same tolerances); the error against the\n"
            "                         reference is printed, not judged (bf16/f16/f32: the stored weights)\n"
            "Last line: verify: model_type=X tokens=T prefill_max_abs=A decode_max_abs=B max_abs=M tol=E result=PASS|FAIL\n");
}

static int parse_args(int argc, char **argv, verify_args *a) {
    cb_engine_opts_default(&a->o);
    a->reference = "reference.safetensors";
    a->batch = 1;
    a->prefill = -1;
    a->tol = a->min_agree = -1;
    a->wdt = CB_DTYPE_COUNT;
    const cb_cli_opt opts[] = {
        CB_OPT("mode", CB_OPT_MODE, &a->o.mode),
        CB_OPT("threads", CB_OPT_INT, &a->o.threads, .lo = 1, .hi = 1 << 30),
        CB_OPT("prefill", CB_OPT_INT, &a->prefill, .lo = 1, .hi = 1 << 30),
        CB_OPT("batch", CB_OPT_INT, &a->batch, .lo = 1, .hi = 1 << 30),
        CB_OPT("reference", CB_OPT_TEXT, &a->reference),
        CB_OPT("ssd-chunk", CB_OPT_INT, &a->o.ssd_chunk, .lo = 1, .hi = 1 << 30),
        CB_OPT("prefill-chunk", CB_OPT_INT, &a->o.prefill_chunk, .lo = 1, .hi = 1 << 30),
        CB_OPT("kv-dtype", CB_OPT_KV_DTYPE, &a->o.kv_dtype, .given = &a->kv_given),
        CB_OPT("tol", CB_OPT_REAL, &a->tol, .lo = 0, .hi = 1000),
        CB_OPT("min-agree", CB_OPT_REAL, &a->min_agree, .lo = 0, .hi = 1),
        CB_OPT("layers", CB_OPT_FLAG, &a->layers),
        CB_OPT("weights-dtype", CB_OPT_WEIGHTS_DTYPE, &a->wdt),
        CB_OPT_END,
    };
    int first, st = cb_cli_parse("verify", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (!cb_dtype_is_q8(a->wdt)) a->wdt = CB_DTYPE_COUNT; /* a checkpoint keeps its stored precision */
    if (first != argc - 1) {
        fprintf(stderr, "ctxbench verify: expected exactly one checkpoint directory\n");
        usage(stderr);
        return 2;
    }
    a->dir = argv[first];
    if (cb_dtype_is_q8(a->wdt) && a->o.mode == CB_MODE_FAST) {
        fprintf(stderr, "ctxbench verify: --weights-dtype %s is verified in exact mode (fast mode also rounds or "
                "quantises activations; measure its accuracy with ctxbench ppl --mode fast)\n", cb_dtype_name(a->wdt));
        return 2;
    }
    if ((cb_dtype_is_q8(a->wdt) || a->o.mode == CB_MODE_FAST) && cb_dtype_is_q8(a->o.kv_dtype)) {
        fprintf(stderr, "ctxbench verify: --kv-dtype %s is verified in exact mode with the stored weights (one 8-bit "
                "approximation at a time; ctxbench ppl measures the others)\n", cb_dtype_name(a->o.kv_dtype));
        return 2;
    }
    if (!a->kv_given) a->o.kv_dtype = a->o.mode == CB_MODE_EXACT ? CB_F32 : CB_BF16;
    return CB_CLI_GO;
}

static void compare_row(const float *got, const float *want, int vocab, double *max_abs, verify_result *r) {
    int ga = 0, wa = 0;
    for (int v = 0; v < vocab; v++) {
        double d = fabs((double)got[v] - (double)want[v]);
        if (!(d <= *max_abs)) *max_abs = isnan(d) ? INFINITY : d;
        if (got[v] > got[ga]) ga = v;
        if (want[v] > want[wa]) wa = v;
    }
    r->argmax_agree += ga == wa;
    if (ga != wa) { /* a flip is only meaningful if the reference's margin was wider than the tolerance */
        double second = -INFINITY;
        for (int v = 0; v < vocab; v++)
            if (v != wa && want[v] > second) second = want[v];
        r->flip_margin = fmax(r->flip_margin, (double)want[wa] - second);
    }
    r->rows++;
}

/* Per-layer residual-stream report for the prefill of the first n tokens (debugging aid). */
static void report_layers(const cb_engine_ops *ops, const cb_model *m, const cb_engine_opts *run_opts,
                          const cb_verify_reference *ref, const char *path, const int32_t *ids, int n) {
    int L = m->cfg.n_layers, d = m->cfg.d_model;
    if (!ref->hidden || !ops->capture_hidden) {
        fprintf(stderr, "verify: --layers: %s: %s\n", path, ref->hidden ? "the engine cannot capture layers" : ref->hidden_why);
        return;
    }
    int64_t T = ref->T;
    cb_engine_opts o = *run_opts; /* same mode, KV dtype, chunks and threads as the logits comparison */
    o.max_context = n;
    o.max_batch = 1;
    cb_engine *e;
    cb_err err = { 0 };
    float *buf = calloc((size_t)(L + 1) * n * d, sizeof(float));
    if (!buf || ops->create(m, &o, &e, &err)) {
        fprintf(stderr, "verify: --layers: %s\n", err.msg);
        free(buf);
        return;
    }
    ops->capture_hidden(e, buf);
    if (ops->prefill(e, 0, ids, n, NULL, false, &err) == 0) {
        const float *want = ref->hidden;
        for (int l = 0; l <= L; l++) {
            double mx = 0;
            for (int t = 0; t < n; t++)
                for (int i = 0; i < d; i++) {
                    double dd = fabs((double)buf[((size_t)l * n + t) * d + i] - want[((size_t)l * T + t) * d + i]);
                    if (!(dd <= mx)) mx = dd;
                }
            printf("layer %2d (%s): hidden max_abs=%.3g\n", l, l == 0 ? "embedding" : (m->cfg.mixer[l - 1] == CB_MIXER_ATTENTION ? "attention" : "mamba2"), mx);
        }
    } else fprintf(stderr, "verify: --layers: %s\n", err.msg);
    ops->destroy(e);
    free(buf);
}

/* Run o's engine over the reference tokens and compare every row with want (NULL: compare nothing);
 * keep (non-NULL): sequence 0's logits by position [T][vocab]. */
static int run_engine(const verify_args *a, const cb_engine_opts *run_o, cb_model *m, const cb_engine_ops *ops,
                      const int32_t *ids, const float *want, int T, verify_result *r, float *keep, cb_err *err) {
    int vocab = m->cfg.vocab, B = a->batch;
    int P = a->prefill > 0 ? a->prefill : CB_MAX(1, 3 * T / 4);
    if (P > T) {
        cb_err_set(err, "--prefill %d exceeds the reference's %d tokens", P, T);
        return -1;
    }
    if (B > T) { /* one logit row per decoded sequence is compared against the reference's T rows */
        cb_err_set(err, "--batch %d exceeds the reference's %d tokens (expected 1 <= B <= %d)", B, T, T);
        return -1;
    }
    cb_engine_opts o = *run_o;
    o.max_context = T;
    o.max_batch = B;
    cb_engine *e;
    if (ops->create(m, &o, &e, err)) return -1;
    int rc = -1;
    float *logits = malloc((size_t)T * vocab * sizeof(float));
    int *pos = calloc((size_t)B, sizeof(int)), *seqs = calloc((size_t)B, sizeof(int));
    int32_t *toks = calloc((size_t)B, sizeof(int32_t));
    if (!logits || !pos || !seqs || !toks) { cb_err_set(err, "out of memory"); goto done; }
    /* sequence b prefills P - b*step tokens (at least 1), so the batch mixes depths */
    int step = B > 1 ? CB_MAX(1, P / (2 * B)) : 0;
    for (int b = 0; b < B; b++) {
        int pb = CB_MAX(1, P - b * step);
        if (ops->prefill(e, b, ids, pb, logits, true, err)) goto done;
        for (int t = 0; t < pb; t++) {
            if (want) compare_row(logits + (size_t)t * vocab, want + (size_t)t * vocab, vocab, &r->prefill_max, r);
            if (keep && b == 0) memcpy(keep + (size_t)t * vocab, logits + (size_t)t * vocab, sizeof(float) * (size_t)vocab);
        }
        pos[b] = pb;
    }
    for (;;) {
        int n = 0;
        for (int b = 0; b < B; b++)
            if (pos[b] < T) { seqs[n] = b; toks[n] = ids[pos[b]]; n++; }
        if (n == 0) break;
        if (ops->decode(e, n, seqs, toks, logits, err)) goto done;
        for (int i = 0; i < n; i++) {
            int t = pos[seqs[i]]++;
            if (want) compare_row(logits + (size_t)i * vocab, want + (size_t)t * vocab, vocab, &r->decode_max, r);
            if (keep && seqs[i] == 0) memcpy(keep + (size_t)t * vocab, logits + (size_t)i * vocab, sizeof(float) * (size_t)vocab);
        }
    }
    rc = 0;
done:
    free(logits); free(pos); free(seqs); free(toks);
    ops->destroy(e);
    return rc;
}

static int run_verify(const verify_args *a, cb_model *m, const cb_engine_ops *ops, const int32_t *ids,
                      const float *want, int T, verify_result *r, cb_err *err) {
    return run_engine(a, &a->o, m, ops, ids, want, T, r, NULL, err);
}

/* Logits [T, vocab] of a reduced KV cache's twin: the same engine, same prefill / decode schedule, whose
 * f32 cache holds every K/V row as the reduced cache stores it (bf16/f16 rounding, or the 8-bit
 * reconstruction scale · value(code)). */
static float *kv_twin_logits(const verify_args *a, cb_model *m, const cb_engine_ops *ops, const int32_t *ids, int T,
                             cb_err *err) {
    float *out = malloc((size_t)T * (size_t)m->cfg.vocab * sizeof(float));
    if (!out) { cb_err_set(err, "out of memory for %d logit rows", T); return NULL; }
    cb_engine_opts o = a->o;
    o.kv_round = o.kv_dtype;
    o.kv_dtype = CB_F32;
    verify_args one = *a;
    one.batch = 1;
    verify_result r = { 0 };
    if (run_engine(&one, &o, m, ops, ids, NULL, T, &r, out, err)) { free(out); return NULL; }
    return out;
}

/* Logits [T, vocab] of m's dequantised twin (a fresh load of the same checkpoint, quantised the same
 * way, then every 8-bit projection expanded to fp32), all positions from one prefill. */
static float *dequantised_logits(const verify_args *a, const cb_model *m, const cb_engine_ops *ops, const int32_t *ids,
                                 int T, cb_err *err) {
    cb_model d;
    memset(&d, 0, sizeof d);
    float *out = malloc((size_t)T * (size_t)m->cfg.vocab * sizeof(float));
    cb_engine *e = NULL;
    cb_engine_opts o = a->o;
    o.max_context = T;
    o.max_batch = 1;
    int rc = !out || cb_model_load(a->dir, &d, err) || cb_model_quantize(&d, a->wdt, err) || cb_model_dequantize(&d, err) ||
             ops->create(&d, &o, &e, err) || ops->prefill(e, 0, ids, T, out, true, err);
    if (!out) cb_err_set(err, "out of memory for %d logit rows", T);
    if (e) ops->destroy(e);
    cb_model_free(&d);
    if (rc) { free(out); return NULL; }
    return out;
}

/* A reduced path (8-bit weights, or with kv a KV cache other than f32; parse_args allows one 8-bit one at
 * a time): its distance to the reference is printed, not judged; it is judged against its dequantised
 * (rounded) twin, whose logits are returned (malloc'd; NULL with err on failure). */
static float *reduced_twin(const verify_args *a, cb_model *m, const cb_engine_ops *ops, const int32_t *ids,
                             const float *ref_logits, int T, bool kv, cb_err *err) {
    const char *dt = cb_dtype_name(kv ? a->o.kv_dtype : a->wdt), *what = kv ? "KV cache" : "weights";
    verify_result q = { 0 };
    if (run_verify(a, m, ops, ids, ref_logits, T, &q, err) == 0)
        printf("verify: %s %s vs reference (%s error, not judged): max_abs=%.3g argmax agreement "
               "%.4f over %ld rows\n", dt, what, kv && !cb_dtype_is_q8(a->o.kv_dtype) ? "rounding" : "quantisation",
               fmax(q.prefill_max, q.decode_max),
               q.rows ? (double)q.argmax_agree / (double)q.rows : 0.0, q.rows);
    float *twin = kv ? kv_twin_logits(a, m, ops, ids, T, err) : dequantised_logits(a, m, ops, ids, T, err);
    if (!twin) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        cb_err_set(err, "dequantised %stwin: %s", kv ? "KV " : "", why);
        return NULL;
    }
    printf("verify: judging the %s %s against its %s %s twin\n", dt, kv ? "KV cache" : "path",
           kv && !cb_dtype_is_q8(a->o.kv_dtype) ? "rounded" : "dequantised", kv ? "f32" : "fp32");
    return twin;
}

/* Fast mode is judged against transformers' own bf16 forward on the same reference when the checkpoint
 * folder holds that yardstick (bf16_yardstick.h); otherwise against the generic bar already in tol. */
static int fast_mode_bar(const char *ref_path, double *tol, double *min_agree, cb_err *err) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", ref_path);
    char *slash = strrchr(dir, '/');
    const char *name = slash ? ref_path + (slash - dir) + 1 : ref_path;
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    cb_bf16_yardstick y;
    if (cb_bf16_yardstick_read(dir, name, &y, err)) return -1;
    if (!y.found) {
        printf("verify: no transformers-bf16 yardstick for %s in %s/%s; fast mode uses the generic bar "
               "(max_abs <= %g, argmax agreement >= %g)\n", name, dir, CB_BF16_YARDSTICK_FILE, *tol, *min_agree);
        return 0;
    }
    *tol = y.max_abs;
    *min_agree = y.argmax_agreement;
    printf("verify: fast-mode bar: transformers' bf16 forward on %s, max_abs %g, argmax agreement %g (%s/%s: %s)\n",
           name, y.max_abs, y.argmax_agreement, dir, CB_BF16_YARDSTICK_FILE, y.source);
    return 0;
}

static int cmd_verify(int argc, char **argv) {
    verify_args a = { 0 };
    int prc = parse_args(argc, argv, &a);
    if (prc != CB_CLI_GO) return prc;
    cb_err err = { 0 };
    cb_model m;
    memset(&m, 0, sizeof m);
    if (cb_model_load(a.dir, &m, &err) || (cb_dtype_is_q8(a.wdt) && cb_model_quantize(&m, a.wdt, &err))) {
        fprintf(stderr, "ctxbench verify: %s\n", err.msg);
        cb_model_free(&m);
        return 1;
    }
    const cb_engine_ops *ops = cb_engine_for_config(&m.cfg);
    if (!ops) {
        fprintf(stderr, "ctxbench verify: no engine registered for model_type '%s'\n", m.cfg.model_type_str);
        printf("verify: model_type=%s tokens=0 prefill_max_abs=nan decode_max_abs=nan max_abs=nan tol=nan result=FAIL\n",
               m.cfg.model_type_str);
        cb_model_free(&m);
        return 1;
    }
    char path[1024];
    if (strchr(a.reference, '/')) snprintf(path, sizeof path, "%s", a.reference);
    else snprintf(path, sizeof path, "%s/%s", a.dir, a.reference);
    cb_verify_reference ref;
    if (cb_verify_reference_open(path, m.cfg.vocab, m.cfg.n_layers, m.cfg.d_model, &ref, &err)) {
        fprintf(stderr, "ctxbench verify: %s\n", err.msg);
        cb_model_free(&m);
        return 1;
    }
    int T = ref.T;
    double tol = a.o.mode == CB_MODE_EXACT ? 1e-3 : 5e-2, min_agree = 0.99;
    if (a.o.mode == CB_MODE_FAST && fast_mode_bar(path, &tol, &min_agree, &err)) {
        fprintf(stderr, "ctxbench verify: %s\n", err.msg);
        cb_verify_reference_close(&ref);
        cb_model_free(&m);
        return 1;
    }
    if (a.tol >= 0) tol = a.tol;
    if (a.min_agree >= 0) min_agree = a.min_agree;
    printf("verify: %s engine=%s mode=%s kv=%s threads=%d batch=%d prefill=%d of %d\n", a.dir, ops->name,
           a.o.mode == CB_MODE_EXACT ? "exact" : "fast", cb_dtype_name(a.o.kv_dtype), a.o.threads, a.batch,
           a.prefill > 0 ? a.prefill : CB_MAX(1, 3 * T / 4), T);
    if (a.layers) report_layers(ops, &m, &a.o, &ref, path, ref.ids, a.prefill > 0 ? a.prefill : CB_MAX(1, 3 * T / 4));
    verify_result r = { 0 };
    const float *want = ref.logits;
    float *twin = NULL;
    /* 8-bit weights are judged against their dequantised twin, which keeps the same cache dtype; with the
     * stored weights, an exact-mode cache other than f32 against its rounded twin (fast mode's bar already
     * allows for its bf16 cache) */
    const bool kv_twin = !cb_dtype_is_q8(a.wdt) && a.o.mode == CB_MODE_EXACT && a.o.kv_dtype != CB_F32;
    if (cb_dtype_is_q8(a.wdt) || kv_twin) {
        twin = reduced_twin(&a, &m, ops, ref.ids, ref.logits, T, kv_twin, &err);
        if (!twin) {
            fprintf(stderr, "ctxbench verify: %s\n", err.msg);
            cb_verify_reference_close(&ref);
            cb_model_free(&m);
            return 1;
        }
        want = twin;
    }
    int rc = run_verify(&a, &m, ops, ref.ids, want, T, &r, &err);
    free(twin);
    if (rc) fprintf(stderr, "ctxbench verify: %s\n", err.msg);
    double mx = fmax(r.prefill_max, r.decode_max);
    double agree = r.rows ? (double)r.argmax_agree / (double)r.rows : 0.0;
    bool pass = rc == 0 && mx <= tol && (a.o.mode == CB_MODE_EXACT || agree >= min_agree);
    if (a.o.mode == CB_MODE_FAST)
        printf("verify: argmax agreement %.4f over %ld rows (%ld differ; widest reference top-2 margin among them %.3g)\n",
               agree, r.rows, r.rows - r.argmax_agree, r.flip_margin);
    printf("verify: model_type=%s tokens=%d prefill_max_abs=%.3g decode_max_abs=%.3g max_abs=%.3g tol=%g result=%s\n",
           m.cfg.model_type_str, T, r.prefill_max, r.decode_max, mx, tol, pass ? "PASS" : "FAIL");
    cb_verify_reference_close(&ref);
    cb_model_free(&m);
    return pass ? 0 : 1;
}

static const cb_command verify_command = { "verify", "compare an engine's logits with a fixture's reference, prefill and decode paths", cmd_verify };
CB_REGISTER_COMMAND(verify_command)
