/* `ctxbench models`: every preset and every workloads/models/<name>/config.json, with the parameter
 * count and the weight bytes each storage dtype implies. Reads configs only; allocates no weights. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/model/presets.h"
#include "cli.h"
#include "cli_options.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench models [--dir DIR] [--help]\n\n"
               "List the built-in presets and the real model configs under DIR (default workloads/models):\n"
               "name, model_type, architecture, layers (attention/mamba), width, parameters (all, and active: what\n"
               "one token reads when only num_experts_per_tok routed experts run), and weight\n"
               "bytes at f32, bf16 and 8-bit storage (plus one fp32 scale per row for 8-bit).\n");
}

static void fmt_bytes(char *b, size_t n, double bytes) {
    const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (bytes >= 1024 && i < 4) bytes /= 1024, i++;
    snprintf(b, n, "%.2f %s", bytes, u[i]);
}

/* Rows of all weight matrices: 8-bit storage keeps one fp32 scale per row. */
static int64_t matrix_rows(const cb_config *c) {
    int64_t r = (int64_t)c->vocab * (c->tie_embeddings ? 1 : 2);
    for (int i = 0; i < c->n_layers; i++) {
        if (c->mixer[i] == CB_MIXER_ATTENTION) r += (int64_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim + c->d_model;
        else r += c->m_in_proj_rows + c->d_model;
        if (c->has_mlp) r += 2 * (int64_t)c->d_ff + c->d_model;
        r += (int64_t)c->n_experts * (1 + 2 * (int64_t)c->d_ff_expert + c->d_model); /* router + experts */
    }
    return r;
}

static void row(const char *name, const cb_config *c) {
    int64_t p = cb_config_param_count(c);
    char layers[32], f32[32], bf16[32], q8[32];
    snprintf(layers, sizeof layers, "%d (%d/%d)", c->n_layers, c->n_attn_layers, c->n_mamba_layers);
    fmt_bytes(f32, sizeof f32, (double)p * 4);
    fmt_bytes(bf16, sizeof bf16, (double)p * 2);
    fmt_bytes(q8, sizeof q8, (double)p + 4.0 * (double)matrix_rows(c));
    printf("%-20s %-16s %-12s %-12s %6d %9.3fB %9.3fB %12s %12s %12s\n", name, c->model_type_str, cb_arch_name(c->arch),
           layers, c->d_model, (double)p / 1e9, (double)cb_config_active_param_count(c) / 1e9, f32, bf16, q8);
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run(int argc, char **argv) {
    const char *dir = "workloads/models";
    const cb_cli_opt opts[] = { CB_OPT("dir", CB_OPT_TEXT, &dir), CB_OPT_END };
    int first, st = cb_cli_parse("models", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first < argc) return cb_cli_unexpected_argument("models", argv[first]);
    printf("%-20s %-16s %-12s %-12s %6s %10s %10s %12s %12s %12s\n", "name", "type", "arch", "layers(a/m)", "d", "params",
           "active", "f32", "bf16", "8-bit");
    int status = 0;
    cb_err err;
    for (int i = 0; i < cb_preset_count(); i++) {
        cb_config c;
        if (cb_preset_config(cb_preset_name(i), &c, &err)) { fprintf(stderr, "ctxbench models: %s\n", err.msg); status = 1; continue; }
        row(cb_preset_name(i), &c);
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ctxbench models: %s: cannot open (real model configs not listed)\n", dir);
        return 1;
    }
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name))) n++;
    closedir(d);
    qsort(names, n, sizeof *names, by_str);
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/config.json", dir, names[i]);
        cb_config c;
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            if (cb_config_load(path, &c, &err)) { fprintf(stderr, "ctxbench models: %s\n", err.msg); status = 1; }
            else row(names[i], &c);
        }
        free(names[i]);
    }
    return status;
}

static const cb_command models_cmd = { "models", "list presets and real model configs with parameters and bytes", run };
CB_REGISTER_COMMAND(models_cmd)
