/* Quality maths (NLL, KL, windows, buckets, token files) and, on every fixture, the NLL computed through
 * the engine against the NLL of the reference logits, and the 8-bit models' KL / ΔNLL / top-1 bounds
 * (docs/quantization.md says where the bounds come from). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engines/model/quantize.h"
#include "../harness/measure/tokens.h"
#include "../harness/stats/quality.h"

Test(ppl, nll_and_kl_maths) {
    float l[3] = { 1.0f, 2.0f, 3.0f };
    double z = log(exp(1.0) + exp(2.0) + exp(3.0));
    cr_assert_float_eq(cb_nll(l, 3, 0), z - 1.0, 1e-12);
    cr_assert_float_eq(cb_nll(l, 3, 2), z - 3.0, 1e-12);
    float big[2] = { 1000.0f, 0.0f }; /* no overflow: max-shifted */
    cr_assert_float_eq(cb_nll(big, 2, 1), 1000.0, 1e-9);
    bool same;
    cr_assert_eq(cb_kl(l, l, 3, &same), 0.0);
    cr_assert(same);
    float s[3] = { 1.0f, 2.0f, 3.0f + 10.0f }; /* shift of one logit */
    float sh[3] = { 11.0f, 12.0f, 13.0f };     /* constant shift: same distribution */
    cr_assert_float_eq(cb_kl(l, sh, 3, NULL), 0.0, 1e-12);
    double kl = cb_kl(l, s, 3, &same), want = 0;
    double zs = log(exp(1.0) + exp(2.0) + exp(13.0));
    for (int i = 0; i < 3; i++) want += exp(l[i] - z) * ((l[i] - z) - (s[i] - zs));
    cr_assert_float_eq(kl, want, 1e-12);
    cr_assert(same);
    float flip[3] = { 3.0f, 2.0f, 1.0f };
    cb_kl(l, flip, 3, &same);
    cr_assert_not(same);
}

Test(ppl, windows_score_every_token_once) {
    int64_t b[64], e[64], f[64];
    for (int64_t T = 2; T < 40; T += 3)
        for (int64_t N = 2; N < 20; N += 5)
            for (int64_t S = 1; S <= N; S += 2) {
                int64_t nw = cb_quality_windows(T, N, S, b, e, f, 64);
                if (nw == 64) continue; /* too many windows for this buffer */
                int hits[64] = { 0 };
                for (int64_t w = 0; w < nw; w++) {
                    cr_assert_leq(e[w] - b[w], N);
                    for (int64_t t = f[w]; t < e[w]; t++) {
                        cr_assert_gt(t, b[w], "a token is scored only with context before it");
                        hits[t]++;
                    }
                }
                cr_assert_eq(e[nw - 1], T);
                cr_assert_eq(hits[0], 0);
                for (int64_t t = 1; t < T; t++) cr_assert_eq(hits[t], 1, "T %lld N %lld S %lld t %lld", (long long)T, (long long)N, (long long)S, (long long)t);
            }
}

Test(ppl, buckets) {
    cb_quality_bucket b[16];
    int n = cb_quality_buckets(NULL, 300, b, 16, NULL);
    cr_assert_eq(n, 4); /* 1-16, 17-64, 65-256, 257-300 */
    cr_assert_eq(b[3].lo, 257);
    cr_assert_eq(b[3].hi, 300);
    cr_assert_eq(cb_quality_bucket_of(b, n, 17), 1);
    n = cb_quality_buckets("10,20", 100, b, 16, NULL);
    cr_assert_eq(n, 3);
    cr_assert_eq(b[1].lo, 11);
    cb_err e;
    cr_assert_eq(cb_quality_buckets("20,10", 100, b, 16, &e), -1);
    cr_assert_eq(cb_quality_buckets("x", 100, b, 16, &e), -1);
}

static char *tmpfile_with(const char *suffix, const void *data, size_t n) {
    static char path[4][64];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 64, "/tmp/cb_tokens_XXXXXX%s", suffix);
    int fd = mkstemps(p, (int)strlen(suffix));
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
    return p;
}

Test(ppl, token_files) {
    int32_t raw[3] = { 5, 0, 9 };
    char *p = tmpfile_with(".bin", raw, sizeof raw);
    int32_t *ids;
    int64_t n;
    cr_assert_eq(cb_tokens_read(p, 10, &ids, &n, NULL), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[2], 9);
    free(ids);
    cb_err e;
    cr_assert_eq(cb_tokens_read(p, 9, &ids, &n, &e), -1);
    cr_assert(strstr(e.msg, "token 2 = 9") && strstr(e.msg, p), "%s", e.msg);
    unlink(p);
    p = tmpfile_with(".bin", raw, 7);
    cr_assert_eq(cb_tokens_read(p, 10, &ids, &n, &e), -1);
    cr_assert(strstr(e.msg, "multiple of 4"), "%s", e.msg);
    unlink(p);
    const char *txt = " 3 4\n5\t6 \n";
    p = tmpfile_with(".txt", txt, strlen(txt));
    cr_assert_eq(cb_tokens_read(p, 10, &ids, &n, NULL), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(ids[3], 6);
    free(ids);
    unlink(p);
    const char *badtxt = "3 four 5";
    p = tmpfile_with(".txt", badtxt, strlen(badtxt));
    cr_assert_eq(cb_tokens_read(p, 10, &ids, &n, &e), -1);
    cr_assert(strstr(e.msg, "token 1"), "%s", e.msg);
    unlink(p);
    cr_assert_eq(cb_tokens_read("/nonexistent/t.bin", 10, &ids, &n, &e), -1);
}

/* ---- fixtures through the engines ---- */

typedef struct {
    const char *name;
    double kl_max[2], dnll_max[2], top1_min[2]; /* [fp8, int8]: mean KL, |mean ΔNLL|, top-1 agreement */
} fixture_bounds;

/* Bounds: see docs/quantization.md ("Quality bounds on the fixtures"). */
/* Measured (exact mode, AVX-512 and portable agree to 4 digits): KL fp8/int8 llama 7.4e-3/5.0e-4,
 * mamba2 3.8e-3/2.6e-4, bamba 1.3e-2/9.5e-4; dNLL llama +1.2e-2/+1.9e-3, mamba2 +3.0e-4/+3.1e-4,
 * bamba -2.1e-2/-9.4e-4; top-1 llama .786/.956, mamba2 .874/.956, bamba .786/.943. Bounds ≈ 2× KL and
 * |dNLL| (floored for dNLL, whose sign is noise), top-1 ≈ 8 points below: a kernel or scale bug moves
 * KL by orders of magnitude, a doubling of the quantisation error fails. */
static const fixture_bounds FIX[] = {
    { "llama-tiny", { 1.5e-2, 1e-3 }, { 2.5e-2, 4e-3 }, { 0.70, 0.90 } },
    { "mamba2-tiny", { 8e-3, 6e-4 }, { 2e-3, 1e-3 }, { 0.80, 0.90 } },
    { "bamba-tiny", { 2.6e-2, 2e-3 }, { 4e-2, 2e-3 }, { 0.70, 0.88 } },
};

static void load_or_skip(const char *dir, cb_model *m) {
    cb_err e = { "" };
    memset(m, 0, sizeof *m);
    if (cb_model_load(dir, m, &e)) {
        if (strstr(e.msg, "not built yet")) cr_skip_test("ENGINE MISSING in this checkout: %s", e.msg);
        cr_assert_fail("%s: %s", dir, e.msg);
    }
}

static void fixture_quality(const fixture_bounds *fx) {
    char dir[256], ref[300];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", fx->name);
    snprintf(ref, sizeof ref, "%s/reference.safetensors", dir);
    cb_model m;
    load_or_skip(dir, &m);
    cb_safetensors st;
    cb_err e = { "" };
    cr_assert_eq(cb_st_open(ref, &st, &e), 0, "%s", e.msg);
    const cb_tensor *ti = cb_st_find(&st, "input_ids"), *tl = cb_st_find(&st, "logits");
    cr_assert(ti && tl && ti->dtype == CB_I32 && tl->dtype == CB_F32);
    const int64_t T = ti->shape[0];
    const int V = m.cfg.vocab;
    /* the token file path of `ctxbench ppl` */
    char *tok = tmpfile_with(".i32", ti->data, (size_t)T * 4);
    int32_t *ids;
    int64_t n;
    cr_assert_eq(cb_tokens_read(tok, V, &ids, &n, &e), 0, "%s", e.msg);
    unlink(tok);
    cr_assert_eq(n, T);
    double ref_nll = 0;
    for (int64_t t = 1; t < T; t++) ref_nll += cb_nll((const float *)tl->data + (t - 1) * V, V, ids[t]);
    ref_nll /= (double)(T - 1);

    cb_engine_opts o;
    cb_engine_opts_default(&o);
    o.mode = CB_MODE_EXACT;
    o.kv_dtype = CB_F32;
    cb_quality_bucket b[8];
    memset(b, 0, sizeof b);
    int nb = cb_quality_buckets(NULL, T, b, 8, NULL);
    if (cb_ppl_eval(&m, NULL, &o, NULL, ids, T, T, T, b, nb, &e)) {
        if (strstr(e.msg, "not built yet")) cr_skip_test("ENGINE MISSING in this checkout: %s", e.msg);
        cr_assert_fail("%s", e.msg);
    }
    double nll = 0;
    int64_t cnt = 0;
    for (int i = 0; i < nb; i++) { nll += b[i].nll; cnt += b[i].n; }
    cr_assert_eq(cnt, T - 1);
    nll /= (double)cnt;
    cr_assert_leq(fabs(nll - ref_nll), 1e-4, "%s: engine NLL %.8f vs reference %.8f", fx->name, nll, ref_nll);
    /* windows: context T/2, stride T/4 still scores every token once */
    memset(b, 0, sizeof b);
    nb = cb_quality_buckets(NULL, T / 2, b, 8, NULL);
    cr_assert_eq(cb_ppl_eval(&m, NULL, &o, NULL, ids, T, T / 2, T / 4, b, nb, &e), 0, "%s", e.msg);
    cnt = 0;
    for (int i = 0; i < nb; i++) cnt += b[i].n;
    cr_assert_eq(cnt, T - 1);

    cb_dtype fmts[2] = { CB_F8_E4M3, CB_I8 };
    for (int f = 0; f < 2; f++) {
        cb_model q;
        load_or_skip(dir, &q);
        cr_assert_eq(cb_model_quantize(&q, fmts[f], &e), 0, "%s", e.msg);
        memset(b, 0, sizeof b);
        nb = cb_quality_buckets(NULL, T, b, 8, NULL);
        cr_assert_eq(cb_ppl_eval(&m, &q, &o, NULL, ids, T, T, T, b, nb, &e), 0, "%s", e.msg);
        cb_quality_bucket all = { 0 };
        for (int i = 0; i < nb; i++) { all.n += b[i].n; all.nll += b[i].nll; all.nll_q += b[i].nll_q; all.kl += b[i].kl; all.top1_agree += b[i].top1_agree; }
        double kl = all.kl / all.n, dnll = (all.nll_q - all.nll) / all.n, top1 = (double)all.top1_agree / all.n;
        cr_log_info("%s %s: KL %.3e dNLL %+.3e top1 %.4f", fx->name, cb_dtype_name(fmts[f]), kl, dnll, top1);
        fprintf(stderr, "quality %s %s: KL %.3e dNLL %+.3e top1 %.4f\n", fx->name, cb_dtype_name(fmts[f]), kl, dnll, top1);
        cr_assert_gt(kl, 0.0, "8-bit weights must change something (else the quantisation was not applied)");
        cr_assert_leq(kl, fx->kl_max[f], "%s %s KL %.3e", fx->name, cb_dtype_name(fmts[f]), kl);
        cr_assert_leq(fabs(dnll), fx->dnll_max[f], "%s %s dNLL %.3e", fx->name, cb_dtype_name(fmts[f]), dnll);
        cr_assert_geq(top1, fx->top1_min[f], "%s %s top1 %.4f", fx->name, cb_dtype_name(fmts[f]), top1);
        cb_model_quant_release(&q);
        cb_model_free(&q);
    }
    /* the same weights with an 8-bit KV cache against a bf16 one (docs/quantization.md, "8-bit KV cache"):
     * ΔNLL within 0.01 nats, KL small but not zero; only models with attention layers have a KV cache */
    bool has_kv = false;
    for (int i = 0; i < m.cfg.n_layers; i++) has_kv |= m.cfg.mixer[i] == CB_MIXER_ATTENTION;
    for (int f = 0; f < 2 && has_kv; f++) {
        cb_engine_opts ob = o, oq = o;
        ob.kv_dtype = CB_BF16, oq.kv_dtype = fmts[f];
        memset(b, 0, sizeof b);
        nb = cb_quality_buckets(NULL, T, b, 8, NULL);
        cr_assert_eq(cb_ppl_eval(&m, &m, &ob, &oq, ids, T, T, T, b, nb, &e), 0, "%s", e.msg);
        cb_quality_bucket all = { 0 };
        for (int i = 0; i < nb; i++) { all.n += b[i].n; all.nll += b[i].nll; all.nll_q += b[i].nll_q; all.kl += b[i].kl; }
        double kl = all.kl / all.n, dnll = (all.nll_q - all.nll) / all.n;
        fprintf(stderr, "quality %s kv %s: KL %.3e dNLL %+.3e\n", fx->name, cb_dtype_name(fmts[f]), kl, dnll);
        cr_assert_gt(kl, 0.0, "an 8-bit KV cache must change something");
        cr_assert_leq(kl, 3e-3, "%s kv %s KL %.3e", fx->name, cb_dtype_name(fmts[f]), kl);
        cr_assert_leq(fabs(dnll), 0.01, "%s kv %s dNLL %.3e", fx->name, cb_dtype_name(fmts[f]), dnll);
    }
    free(ids);
    cb_st_close(&st);
    cb_model_free(&m);
}

Test(ppl, fixture_llama) { fixture_quality(&FIX[0]); }
Test(ppl, fixture_mamba2) { fixture_quality(&FIX[1]); }
Test(ppl, fixture_bamba) { fixture_quality(&FIX[2]); }

#include "../harness/cli/cli.h"

Test(ppl, cli_rejects_bad_arguments) {
    char *a1[] = { "ctxbench", "ppl", "--bogus", NULL };
    cr_assert_eq(cb_cli_main(3, a1), 2);
    /* a bad value of a known option is bad input (1), a missing one a usage error (2): docs/promises.md */
    char *a2[] = { "ctxbench", "ppl", "--model", "x", "--tokens", "y", "--compare", "fp16", NULL };
    cr_assert_eq(cb_cli_main(8, a2), 1);
    char *a3[] = { "ctxbench", "ppl", "--model", "x", NULL };
    cr_assert_eq(cb_cli_main(4, a3), 2, "--tokens is required");
    char *a4[] = { "ctxbench", "ppl", "--model", "x", "--tokens", "y", "--context", "1", NULL };
    cr_assert_eq(cb_cli_main(8, a4), 1);
    char *a5[] = { "ctxbench", "ppl", "--help", NULL };
    cr_assert_eq(cb_cli_main(3, a5), 0);
}

/* `ctxbench ppl --db`: the run and its buckets land in ppl_runs / ppl_buckets, the total row consistent with
 * the buckets, the comparison columns filled only with --compare. */
#include <sqlite3.h>
Test(ppl, db_stores_buckets_and_comparison) {
    cb_safetensors st;
    cb_err e = { "" };
    cr_assert_eq(cb_st_open("tests/fixtures/bamba-tiny/reference.safetensors", &st, &e), 0, "%s", e.msg);
    const cb_tensor *ti = cb_st_find(&st, "input_ids");
    char *tok = tmpfile_with(".i32", ti->data, (size_t)ti->shape[0] * 4);
    const int64_t T = ti->shape[0];
    cb_st_close(&st);
    char db[] = "/tmp/ctxbench-ppldb-XXXXXX";
    int fd = mkstemp(db);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(db);
    char *a[] = { "ctxbench", "ppl", "--model", "tests/fixtures/bamba-tiny", "--tokens", tok, "--compare", "fp8",
                  "--db", db, NULL };
    cr_assert_eq(cb_cli_main(10, a), 0);
    char *b[] = { "ctxbench", "ppl", "--model", "tests/fixtures/bamba-tiny", "--tokens", tok, "--db", db, NULL };
    cr_assert_eq(cb_cli_main(8, b), 0);
    unlink(tok);
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(s, "SELECT r.compare_dtype, r.weight_bytes, r.compare_weight_bytes, b.n_scored, b.nll, "
                                       "b.nll_q, b.dnll, b.kl, b.top1_agree, (SELECT SUM(n_scored) FROM ppl_buckets x WHERE "
                                       "x.run_id = r.id AND x.is_total = 0), r.n_tokens FROM ppl_runs r JOIN ppl_buckets b "
                                       "ON b.run_id = r.id AND b.is_total = 1 ORDER BY r.id", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "fp8");
    cr_assert_gt(sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 2), "the 8-bit twin has fewer weight bytes");
    cr_assert_eq(sqlite3_column_int64(q, 3), T - 1);
    cr_assert_eq(sqlite3_column_int64(q, 9), T - 1, "buckets add up to the total");
    cr_assert_eq(sqlite3_column_int64(q, 10), T);
    double nll = sqlite3_column_double(q, 4), nq = sqlite3_column_double(q, 5);
    cr_assert_float_eq(sqlite3_column_double(q, 6), nq - nll, 1e-12);
    cr_assert_gt(sqlite3_column_double(q, 7), 0.0);
    cr_assert_leq(sqlite3_column_double(q, 7), FIX[2].kl_max[0], "stored KL within the fp8 bound");
    cr_assert_geq(sqlite3_column_double(q, 8), FIX[2].top1_min[0]);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_type(q, 0), SQLITE_NULL, "no comparison: compare_dtype NULL");
    cr_assert_eq(sqlite3_column_type(q, 7), SQLITE_NULL);
    cr_assert_float_eq(sqlite3_column_double(q, 4), nll, 1e-12, "same model, same NLL");
    sqlite3_finalize(q);
    sqlite3_close(s);
    unlink(db);
}

/* ctxbench merge carries ppl_runs / ppl_buckets, renumbered; merging the same input twice adds nothing. */
#include "../harness/results/store.h"
Test(ppl, merge_carries_ppl_tables) {
    char a[] = "/tmp/ctxbench-pplm-a-XXXXXX", out[] = "/tmp/ctxbench-pplm-o-XXXXXX";
    close(mkstemp(a)), close(mkstemp(out));
    unlink(out);
    sqlite3 *db;
    cb_err e = { "" };
    cr_assert_eq(cb_store_open(a, &db, &e), 0, "%s", e.msg);
    cr_assert_eq(cb_store_exec(db, "INSERT INTO ppl_runs VALUES (1, 't', 'c', 'm', 'bf16', 'fp8', 'exact', 1, 'f', 10, 10, 5, 2, 1, 'bf16', NULL);"
                                   "INSERT INTO ppl_buckets VALUES (1, 1, 10, 1, 9, 1.0, 2.7, 1.1, 0.1, 0.01, 0.9);", &e), 0, "%s", e.msg);
    cb_store_close(db);
    char *m1[] = { "ctxbench", "merge", out, a, NULL };
    cr_assert_eq(cb_cli_main(4, m1), 0);
    cr_assert_eq(cb_cli_main(4, m1), 0);
    cr_assert_eq(cb_store_open(out, &db, &e), 0, "%s", e.msg);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*), COUNT(DISTINCT r.id) FROM ppl_runs r JOIN ppl_buckets b ON b.run_id = r.id",
                                    -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), 1);
    cr_assert_eq(sqlite3_column_int(q, 1), 1);
    sqlite3_finalize(q);
    cb_store_close(db);
    unlink(a), unlink(out);
}

/* A safetensors file is a token file too: its `input_ids` tensor (e.g. a fixture's reference). */
Test(ppl_tokens, safetensors_input_ids) {
    const char *ref = "tests/fixtures/bamba-tiny/reference.safetensors";
    cb_safetensors st;
    cb_err e = { "" };
    cr_assert_eq(cb_st_open(ref, &st, &e), 0, "%s", e.msg);
    const cb_tensor *ti = cb_st_find(&st, "input_ids");
    cr_assert_not_null(ti);
    int32_t *ids;
    int64_t n;
    cr_assert_eq(cb_tokens_read(ref, 384, &ids, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, ti->shape[ti->ndim - 1]);
    cr_assert_eq(memcmp(ids, ti->data, (size_t)n * sizeof(int32_t)), 0);
    free(ids);
    cb_st_close(&st);
    cr_assert_eq(cb_tokens_read(ref, 10, &ids, &n, &e), -1, "ids >= vocab 10 must be rejected");
    cr_assert_eq(cb_tokens_read("tests/fixtures/bamba-tiny/model.safetensors", 384, &ids, &n, &e), -1);
    cr_assert(strstr(e.msg, "input_ids") != NULL, "error names the tensor: %s", e.msg);
}
