/* `ctxbench quantize DIR --to fp8|int8 --out DIR2`: write a pre-quantised checkpoint in the layout the
 * loader accepts (docs/quantization.md): each linear projection as F8_E4M3 / I8 [out, in] (routed experts
 * [E, out, in]) with a `<name>_scale` F32 [rows, 1] tensor, everything else copied, and config.json with a compressed-tensors
 * quantization_config. The codes are cb_model_quantize's, so loading DIR2 gives the same model as
 * quantising DIR at load. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../engines/kernels/gemm8.h"
#include "../../engines/model/quantize.h"
#include "cli.h"
#include "cli_options.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench quantize DIR --to fp8|int8 --out DIR2\n\n"
               "Quantise the checkpoint in DIR (config.json + model.safetensors[.index.json]) per output channel\n"
               "and write DIR2/config.json (with quantization_config: compressed-tensors, float-quantized for fp8,\n"
               "int-quantized for int8) and DIR2/model.safetensors: linear projections as F8_E4M3 / I8 with\n"
               "<name>_scale F32 [out, 1]; embeddings, norms, biases and SSM parameters copied unchanged.\n");
}

/* config.json of DIR plus quantization_config (the llm-compressor layout for channel-wise static weights). */
static int write_config(const char *src, const char *out, cb_dtype to, bool keep_lm_head, cb_err *err) {
    char in[4096], path[4096];
    snprintf(in, sizeof in, "%s/config.json", src);
    snprintf(path, sizeof path, "%s/config.json", out);
    json_error_t je;
    json_t *root = json_load_file(in, JSON_ALLOW_NUL, &je);
    if (!root || !json_is_object(root)) {
        cb_err_set(err, "%s: cannot read config (%s)", in, root ? "not an object" : je.text);
        json_decref(root);
        return -1;
    }
    const bool fp8 = to == CB_F8_E4M3;
    json_t *q = json_pack("{s:s, s:s, s:s, s:{s:{s:[s], s:{s:i, s:s, s:b, s:s, s:b}, s:n}}, s:[]}",
                          "quant_method", "compressed-tensors", "format", fp8 ? "float-quantized" : "int-quantized",
                          "quantization_status", "compressed", "config_groups", "group_0", "targets", "Linear",
                          "weights", "num_bits", 8, "type", fp8 ? "float" : "int", "symmetric", 1, "strategy",
                          "channel", "dynamic", 0, "input_activations", "ignore");
    if (keep_lm_head) json_array_append_new(json_object_get(q, "ignore"), json_string("lm_head"));
    json_object_set_new(root, "quantization_config", q);
    int rc = json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    if (rc) cb_err_set(err, "%s: cannot write", path);
    return rc ? -1 : 0;
}

/* The 8-bit codes and scales of the linears a tensor holds, in row order: one linear as it is bound,
 * two (granite's gate|up halves) joined into buffers `keep` owns. NULL codes: out of memory. */
static void join_linears(cb_weight *const *lin, const int *parts, int np, void **keep, const void **codes,
                         const float **scales, int64_t *rows) {
    if (np == 1) {
        *codes = lin[parts[0]]->data, *scales = lin[parts[0]]->scale, *rows = lin[parts[0]]->rows;
        return;
    }
    int64_t r = 0, cols = lin[parts[0]]->cols;
    for (int j = 0; j < np; j++) r += lin[parts[j]]->rows;
    uint8_t *c = malloc((size_t)(r * cols) + (size_t)r * sizeof(float));
    *keep = c, *codes = c, *rows = r;
    if (!c) return;
    float *sc = (float *)(void *)(c + (size_t)(r * cols));
    *scales = sc;
    for (int j = 0, at = 0; j < np; j++) {
        const cb_weight *w = lin[parts[j]];
        memcpy(c + (size_t)(at * cols), w->data, (size_t)(w->rows * cols));
        memcpy(sc + at, w->scale, (size_t)w->rows * sizeof(float));
        at += (int)w->rows;
    }
}

#define MAX_PARTS 2 /* linears per tensor */

static int quantize_dir(const char *src, cb_dtype to, const char *out, cb_err *err) {
    cb_model m;
    if (cb_model_load(src, &m, err)) return -1;
    int rc = -1, nl = 0, n = 0;
    cb_weight **lin = calloc(CB_MAX_LINEARS, sizeof *lin);
    int *owner = malloc(sizeof(int) * MAX_PARTS * (size_t)(m.st.n_tensors + 1)); /* tensor -> its linears */
    int *nparts = calloc((size_t)m.st.n_tensors + 1, sizeof *nparts);
    bool *skip = calloc((size_t)m.st.n_tensors + 1, sizeof *skip);    /* a source scale, replaced by ours */
    cb_st_write_item *items = calloc(2 * (size_t)m.st.n_tensors + 1, sizeof *items);
    char **names = calloc((size_t)m.st.n_tensors + 1, sizeof *names);
    void **joined = calloc((size_t)m.st.n_tensors + 1, sizeof *joined);
    if (!lin || !owner || !nparts || !skip || !items || !names || !joined) { cb_err_set(err, "out of memory"); goto out; }
    nl = cb_model_linears(&m, lin, CB_MAX_LINEARS);
    for (int i = 0; i < m.st.n_tensors; i++) {
        const cb_tensor *t = &m.st.tensors[i];
        for (int k = 0; k < nl; k++) { /* cb_model_linears lists a tensor's halves in row order */
            const char *d = lin[k]->data, *b = t->data;
            if (d >= b && d < b + t->nbytes && nparts[i] < MAX_PARTS) owner[MAX_PARTS * i + nparts[i]++] = k;
        }
        if (nparts[i] > 0) {
            const cb_tensor *sc = cb_quantized_find_scale(&m, t->name);
            if (sc) skip[sc - m.st.tensors] = true;
        }
    }
    if (cb_model_quantize(&m, to, err)) goto out;
    for (int i = 0; i < m.st.n_tensors; i++) {
        const cb_tensor *t = &m.st.tensors[i];
        if (skip[i]) continue;
        if (nparts[i] == 0) { /* kept as stored */
            items[n] = (cb_st_write_item){ t->name, t->dtype, t->ndim, { 0 }, t->data };
            memcpy(items[n].shape, t->shape, sizeof t->shape);
            n++;
            continue;
        }
        /* the bound rows (a Mamba2 in_proj drops unused d_mlp rows; granite's gate|up are joined back) */
        const void *codes = NULL;
        const float *scales = NULL;
        int64_t rows = 0;
        join_linears(lin, owner + MAX_PARTS * i, nparts[i], &joined[i], &codes, &scales, &rows);
        size_t len = strlen(t->name) + 8;
        if (!codes || !(names[i] = malloc(len))) { cb_err_set(err, "out of memory"); goto out; }
        snprintf(names[i], len, "%s_scale", t->name);
        const int64_t cols = lin[owner[MAX_PARTS * i]]->cols;
        items[n] = (cb_st_write_item){ t->name, to, 2, { rows, cols }, codes };
        if (t->ndim == 3) { /* routed experts keep their [E, rows, cols] shape; the scales run over (e, row) */
            items[n].ndim = 3;
            memcpy(items[n].shape, t->shape, sizeof t->shape);
        }
        n++;
        items[n++] = (cb_st_write_item){ names[i], CB_F32, 2, { rows, 1 }, scales };
    }
    if (mkdir(out, 0777) && errno != EEXIST) { cb_err_set(err, "%s: cannot create directory: %s", out, strerror(errno)); goto out; }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (cb_st_write(path, items, n, err)) goto out;
    bool keep = m.lm_head.data && m.lm_head.data != m.embed.data && !cb_dtype_is_q8(m.lm_head.dtype);
    if (write_config(src, out, to, keep, err)) goto out;
    rc = 0;
out:
    if (names) for (int i = 0; i < m.st.n_tensors; i++) free(names[i]);
    if (joined) for (int i = 0; i < m.st.n_tensors; i++) free(joined[i]);
    free(joined); free(names); free(items); free(skip); free(nparts); free(owner); free(lin);
    cb_model_free(&m);
    return rc;
}

static int run(int argc, char **argv) {
    const char *out = NULL;
    cb_dtype to = CB_DTYPE_COUNT;
    const cb_cli_opt opts[] = { CB_OPT("to", CB_OPT_Q8_DTYPE, &to), CB_OPT("out", CB_OPT_TEXT, &out), CB_OPT_END };
    int first, st = cb_cli_parse("quantize", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first != argc - 1 || !out || to == CB_DTYPE_COUNT) { usage(stderr); return 2; }
    cb_err err = { "" };
    if (quantize_dir(argv[first], to, out, &err)) { fprintf(stderr, "ctxbench quantize: %s\n", err.msg); return 1; }
    printf("quantize: %s -> %s (%s, per-channel scales)\n", argv[first], out, cb_dtype_name(to));
    return 0;
}

static const cb_command cmd_quantize = { "quantize", "write a checkpoint's fp8/int8 twin (compressed-tensors layout)", run };
CB_REGISTER_COMMAND(cmd_quantize)
