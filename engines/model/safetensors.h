/* safetensors reader: mmap, full validation before use, single file or sharded index. */
#ifndef CB_SAFETENSORS_H
#define CB_SAFETENSORS_H

#include "../common.h"

typedef struct {
    char *name;
    cb_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data;  /* points into the mmapped file */
    size_t nbytes;
    int file_index;    /* which shard it came from */
    bool used;         /* set when a model binds it (unused tensors are warned about) */
} cb_tensor;

typedef struct {
    char **paths;      /* one per shard */
    void **maps;
    size_t *map_sizes;
    int n_files;
    cb_tensor *tensors;
    int n_tensors;
} cb_safetensors;

/* Open one .safetensors file, a model.safetensors.index.json, or a directory containing either.
 * Validates: header length inside the file, JSON well-formed, dtypes known, offsets inside the data
 * region and non-overlapping, nbytes == prod(shape) * dtype size. Errors name file and tensor. */
int cb_st_open(const char *path, cb_safetensors *st, cb_err *err);
void cb_st_close(cb_safetensors *st);
const cb_tensor *cb_st_find(const cb_safetensors *st, const char *name);

/* Write tensors to a single safetensors file (tests, presets export). */
typedef struct { const char *name; cb_dtype dtype; int ndim; int64_t shape[8]; const void *data; } cb_st_write_item;
int cb_st_write(const char *path, const cb_st_write_item *items, int n, cb_err *err);

#endif
