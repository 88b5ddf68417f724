/* safetensors reader/writer. Every byte of the header is distrusted: lengths, offsets, shapes and
 * dtypes are all checked against the mapped file before any tensor pointer is handed out. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *st_basename(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int dtype_from_st(const char *s, cb_dtype *out) {
    for (int t = 0; t < CB_DTYPE_COUNT; t++)
        if (strcmp(s, cb_dtype_safetensors_name((cb_dtype)t)) == 0) { *out = (cb_dtype)t; return 0; }
    return -1;
}

static int add_file(cb_safetensors *st, const char *path, cb_err *err) {
    int n = st->n_files + 1;
    char **p = realloc(st->paths, n * sizeof *p);
    if (p) st->paths = p;
    void **m = realloc(st->maps, n * sizeof *m);
    if (m) st->maps = m;
    size_t *s = realloc(st->map_sizes, n * sizeof *s);
    if (s) st->map_sizes = s;
    if (!p || !m || !s || !(st->paths[n - 1] = strdup(path))) {
        cb_err_set(err, "%s: out of memory", path);
        return -1;
    }
    st->maps[n - 1] = NULL;
    st->map_sizes[n - 1] = 0;
    st->n_files = n;
    return 0;
}

typedef struct { uint64_t b, e; int idx; } span;
static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

/* Map file `fi` of st and append its tensors (all of them, or only validate). */
static int open_one(cb_safetensors *st, int fi, cb_err *err) {
    const char *path = st->paths[fi];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cb_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        cb_err_set(err, "%s: not a regular file", path);
        return -1;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        cb_err_set(err, "%s: truncated: %zu bytes, expected at least 8 (header length)", path, size);
        return -1;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        cb_err_set(err, "%s: mmap failed: %s", path, strerror(errno));
        return -1;
    }
    st->maps[fi] = map;
    st->map_sizes[fi] = size;
    const uint8_t *bytes = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes[i];
    if (hlen > size - 8) {
        cb_err_set(err, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                   (unsigned long long)hlen, size);
        return -1;
    }
    if (hlen < 2) {
        cb_err_set(err, "%s: header length %llu is too small for a JSON object", path, (unsigned long long)hlen);
        return -1;
    }
    const uint8_t *data = bytes + 8 + hlen;
    const uint64_t data_size = size - 8 - hlen;
    json_error_t je;
    json_t *h = json_loadb((const char *)bytes + 8, hlen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!h) {
        cb_err_set(err, "%s: header is not valid JSON (line %d column %d: %s)", path, je.line, je.column, je.text);
        return -1;
    }
    int rc = -1;
    span *spans = NULL;
    if (!json_is_object(h)) {
        cb_err_set(err, "%s: header is not a JSON object", path);
        goto out;
    }
    size_t nt = json_object_size(h);
    cb_tensor *nt_arr = realloc(st->tensors, (st->n_tensors + nt + 1) * sizeof *nt_arr);
    spans = malloc((nt + 1) * sizeof *spans);
    if (!nt_arr || !spans) {
        if (nt_arr) st->tensors = nt_arr;
        cb_err_set(err, "%s: out of memory", path);
        goto out;
    }
    st->tensors = nt_arr;
    int ns = 0;
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        if (!json_is_object(v)) {
            cb_err_set(err, "%s: tensor %s: header entry is not an object", path, key);
            goto out;
        }
        json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
               *jo = json_object_get(v, "data_offsets");
        if (!json_is_string(jd)) {
            cb_err_set(err, "%s: tensor %s: missing or non-string \"dtype\"", path, key);
            goto out;
        }
        cb_tensor t = { 0 };
        if (dtype_from_st(json_string_value(jd), &t.dtype) != 0) {
            cb_err_set(err, "%s: tensor %s: unsupported dtype \"%.32s\" (expected F32, F16, BF16, I32, I64, F8_E4M3 or I8)",
                       path, key, json_string_value(jd));
            goto out;
        }
        if (!json_is_array(js) || json_array_size(js) > 8) {
            cb_err_set(err, "%s: tensor %s: \"shape\" must be an array of at most 8 integers", path, key);
            goto out;
        }
        t.ndim = (int)json_array_size(js);
        uint64_t count = 1;
        bool overflow = false;
        for (int d = 0; d < t.ndim; d++) {
            json_t *x = json_array_get(js, d);
            if (!json_is_integer(x) || json_integer_value(x) < 0) {
                cb_err_set(err, "%s: tensor %s: shape[%d] must be a non-negative integer", path, key, d);
                goto out;
            }
            t.shape[d] = json_integer_value(x);
            if (t.shape[d] != 0 && count > (UINT64_MAX >> 4) / (uint64_t)t.shape[d]) overflow = true;
            else count *= (uint64_t)t.shape[d];
        }
        if (overflow || count > (UINT64_MAX >> 4)) {
            cb_err_set(err, "%s: tensor %s: shape element count overflows", path, key);
            goto out;
        }
        if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
            !json_is_integer(json_array_get(jo, 1)) || json_integer_value(json_array_get(jo, 0)) < 0 ||
            json_integer_value(json_array_get(jo, 1)) < 0) {
            cb_err_set(err, "%s: tensor %s: \"data_offsets\" must be [begin, end] (non-negative integers)", path, key);
            goto out;
        }
        uint64_t b = (uint64_t)json_integer_value(json_array_get(jo, 0));
        uint64_t e = (uint64_t)json_integer_value(json_array_get(jo, 1));
        if (b > e || e > data_size) {
            cb_err_set(err, "%s: tensor %s: data_offsets [%llu, %llu] outside the data region of %llu bytes", path,
                       key, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_size);
            goto out;
        }
        uint64_t want = count * cb_dtype_size(t.dtype);
        if (e - b != want) {
            cb_err_set(err, "%s: tensor %s: %llu bytes in data_offsets, expected %llu (shape x %s size)", path, key,
                       (unsigned long long)(e - b), (unsigned long long)want, json_string_value(jd));
            goto out;
        }
        /* kernels read elements through typed pointers: a misaligned tensor would be undefined behaviour */
        if (((uintptr_t)(data + b)) % cb_dtype_size(t.dtype) != 0) {
            cb_err_set(err, "%s: tensor %s: data at file offset %llu is not aligned to its %zu-byte %s elements", path,
                       key, (unsigned long long)(8 + hlen + b), cb_dtype_size(t.dtype), json_string_value(jd));
            goto out;
        }
        t.name = strdup(key);
        if (!t.name) {
            cb_err_set(err, "%s: out of memory", path);
            goto out;
        }
        t.data = data + b;
        t.nbytes = (size_t)want;
        t.file_index = fi;
        spans[ns++] = (span){ b, e, st->n_tensors };
        st->tensors[st->n_tensors++] = t;
    }
    qsort(spans, ns, sizeof *spans, span_cmp);
    /* each non-empty span against the one reaching furthest among those before it: empty tensors hold no
     * bytes, so they neither overlap nor hide an overlap between their neighbours */
    int reach = -1;
    for (int i = 0; i < ns; i++) {
        if (spans[i].b == spans[i].e) continue;
        if (reach >= 0 && spans[i].b < spans[reach].e) {
            cb_err_set(err, "%s: tensor %s: data [%llu, %llu) overlaps tensor %s [%llu, %llu)", path,
                       st->tensors[spans[i].idx].name, (unsigned long long)spans[i].b,
                       (unsigned long long)spans[i].e, st->tensors[spans[reach].idx].name,
                       (unsigned long long)spans[reach].b, (unsigned long long)spans[reach].e);
            goto out;
        }
        if (reach < 0 || spans[i].e > spans[reach].e) reach = i;
    }
    rc = 0;
out:
    free(spans);
    json_decref(h);
    return rc;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const cb_tensor *)a)->name, ((const cb_tensor *)b)->name);
}

static int open_index(cb_safetensors *st, const char *index_path, cb_err *err) {
    json_error_t je;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        cb_err_set(err, "%s: invalid JSON (line %d: %s)", index_path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        cb_err_set(err, "%s: key \"weight_map\": expected an object {tensor: file}", index_path);
        goto out;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    const char *key;
    json_t *v;
    /* each distinct shard once, in first-seen order */
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v)) {
            cb_err_set(err, "%s: weight_map entry %s: expected a file name string", index_path, key);
            goto out;
        }
        const char *f = json_string_value(v);
        if (strchr(f, '/') || strcmp(f, "..") == 0 || !*f) {
            cb_err_set(err, "%s: weight_map entry %s: shard \"%.200s\" must be a plain file name", index_path, key, f);
            goto out;
        }
        char full[8192];
        snprintf(full, sizeof full, "%s%s", dir, f);
        bool seen = false;
        for (int i = 0; i < st->n_files && !seen; i++) seen = strcmp(st->paths[i], full) == 0;
        if (!seen) {
            if (add_file(st, full, err) || open_one(st, st->n_files - 1, err)) goto out;
        }
    }
    /* every indexed tensor in its named shard */
    json_object_foreach(wm, key, v) {
        char full[8192];
        snprintf(full, sizeof full, "%s%s", dir, json_string_value(v));
        /* tensors are not sorted yet: linear search (index files list each tensor once) */
        bool found = false;
        for (int i = 0; i < st->n_tensors && !found; i++)
            found = strcmp(st->tensors[i].name, key) == 0 && strcmp(st->paths[st->tensors[i].file_index], full) == 0;
        if (!found) {
            cb_err_set(err, "%s: tensor %s is listed in %s but not present in that shard", full, key,
                       st_basename(index_path));
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int cb_st_open(const char *path, cb_safetensors *st, cb_err *err) {
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        cb_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char buf[4096];
    const char *target = path;
    bool index = false;
    if (S_ISDIR(sb.st_mode)) {
        snprintf(buf, sizeof buf, "%s/model.safetensors", path);
        if (access(buf, F_OK) != 0) {
            snprintf(buf, sizeof buf, "%s/model.safetensors.index.json", path);
            if (access(buf, F_OK) != 0) {
                cb_err_set(err, "%s: no model.safetensors or model.safetensors.index.json in this directory", path);
                return -1;
            }
            index = true;
        }
        target = buf;
    } else {
        size_t n = strlen(path);
        index = n >= 5 && strcmp(path + n - 5, ".json") == 0;
    }
    int rc = index ? open_index(st, target, err) : (add_file(st, target, err) || open_one(st, 0, err)) ? -1 : 0;
    if (rc == 0 && st->n_tensors > 0) {
        qsort(st->tensors, st->n_tensors, sizeof *st->tensors, name_cmp);
        for (int i = 1; i < st->n_tensors; i++) {
            if (strcmp(st->tensors[i].name, st->tensors[i - 1].name) == 0) {
                cb_err_set(err, "%s: tensor %s appears twice (also in %s)", st->paths[st->tensors[i].file_index],
                           st->tensors[i].name, st->paths[st->tensors[i - 1].file_index]);
                rc = -1;
                break;
            }
        }
    }
    if (rc != 0) cb_st_close(st);
    return rc;
}

void cb_st_close(cb_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_files; i++) {
        if (st->maps && st->maps[i]) munmap(st->maps[i], st->map_sizes[i]);
        if (st->paths) free(st->paths[i]);
    }
    free(st->tensors);
    free(st->paths);
    free(st->maps);
    free(st->map_sizes);
    memset(st, 0, sizeof *st);
}

const cb_tensor *cb_st_find(const cb_safetensors *st, const char *name) {
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int cb_st_write(const char *path, const cb_st_write_item *items, int n, cb_err *err) {
    json_t *h = json_object();
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t count = 1;
        json_t *shape = json_array();
        for (int d = 0; d < items[i].ndim; d++) {
            count *= (uint64_t)items[i].shape[d];
            json_array_append_new(shape, json_integer(items[i].shape[d]));
        }
        uint64_t nb = count * cb_dtype_size(items[i].dtype);
        json_object_set_new(h, items[i].name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", cb_dtype_safetensors_name(items[i].dtype),
                                      "shape", shape, "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(h);
    if (!text) {
        cb_err_set(err, "%s: cannot encode header", path);
        return -1;
    }
    size_t hl = strlen(text), padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(text);
        cb_err_set(err, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(text, 1, hl, f) == hl;
    for (size_t i = hl; i < padded && ok; i++) ok = fputc(' ', f) != EOF;
    free(text);
    for (int i = 0; i < n && ok; i++) {
        uint64_t count = 1;
        for (int d = 0; d < items[i].ndim; d++) count *= (uint64_t)items[i].shape[d];
        size_t nb = count * cb_dtype_size(items[i].dtype);
        ok = nb == 0 || fwrite(items[i].data, 1, nb, f) == nb;
    }
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        cb_err_set(err, "%s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
