/* Reading llama.cpp's `llama-bench` output (-o jsonl, -o json, -o csv) into records: one per test line.
 * Mapping onto ctxbench points (cmd_import.c): docs/peers.md. */
#ifndef CB_LLAMA_BENCH_H
#define CB_LLAMA_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "../../engines/common.h"

typedef struct {
    int line;                       /* 1-based line of the file (json: the array index + 1) */
    char build_commit[64];
    int64_t build_number;           /* -1 when absent */
    char cpu_info[160], backends[64];
    char model_filename[512], model_type[128];
    int64_t model_size, model_n_params; /* model_size -1 when absent */
    int64_t n_batch, n_ubatch;      /* -1 when absent */
    int n_threads, n_prompt, n_gen, n_depth;
    char type_k[16], type_v[16];
    int flash_attn;                 /* 0 / 1 (llama-bench's -fa) */
    char test_time[40];
    double avg_ns, stddev_ns;
    double *samples_ns;             /* NULL for CSV (llama-bench's CSV has mean and stddev only) */
    int n_samples;
} cb_lb_record;

typedef struct {
    cb_lb_record *rec;
    int n;
    char format[8];                 /* "jsonl", "json" or "csv" */
    char *text;                     /* the file verbatim (kept as the import's provenance) */
} cb_lb_file;

/* Parse `path` (format from its first non-blank character: '{' jsonl, '[' json, else csv with a header
 * line). Errors name the file, the line and the key: "f.jsonl:3: missing key 'n_depth'". */
int cb_lb_parse_file(const char *path, cb_lb_file *out, cb_err *err);
void cb_lb_free(cb_lb_file *f);

/* The file name without its directories and its ".gguf": "models/bamba-s.gguf" -> "bamba-s". */
void cb_lb_model_stem(const char *model_filename, char *out, size_t n);
/* The weights' dtype from llama.cpp's model description ("granitehybrid ?B BF16" -> "bf16"). */
void cb_lb_weight_dtype(const char *model_type, char *out, size_t n);

#endif
