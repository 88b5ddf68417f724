/* Deterministic mutation fuzzing of the checkpoint reader: thousands of corrupted copies of a fixture's
 * model.safetensors (header bytes, digits, header length, truncation), each opened and, when it opens,
 * bound to the fixture's config. Nothing may crash or trip a sanitizer; every accepted file must have
 * all tensor data inside the mapping. The file lives in a memfd and only the mutated bytes are rewritten. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../engines/model/model.h"

typedef struct {
    uint8_t *orig;
    size_t size, hlen;
    int fd;
    char path[64];
    cb_config cfg;
    int opened, rejected, bound;
} fuzz_ctx;

static void setup(fuzz_ctx *c, const char *dir) {
    memset(c, 0, sizeof *c);
    char p[256];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    c->size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    c->orig = malloc(c->size);
    cr_assert_eq(fread(c->orig, 1, c->size, f), c->size);
    fclose(f);
    memcpy(&c->hlen, c->orig, 8);
    cr_assert(c->hlen + 8 <= c->size);
    c->fd = memfd_create("cb_fuzz", MFD_CLOEXEC);
    cr_assert(c->fd >= 0);
    cr_assert_eq(pwrite(c->fd, c->orig, c->size, 0), (ssize_t)c->size);
    snprintf(c->path, sizeof c->path, "/proc/self/fd/%d", c->fd);
    cb_err err;
    cr_assert_eq(cb_config_load(dir, &c->cfg, &err), 0, "%s", err.msg);
}

static void teardown(fuzz_ctx *c) {
    close(c->fd);
    free(c->orig);
}

/* Open the current file; if it opens, check the invariants and bind. */
static void try_case(fuzz_ctx *c) {
    cb_model *m = calloc(1, sizeof *m);
    cb_err err = { { 0 } };
    if (cb_st_open(c->path, &m->st, &err) != 0) {
        cr_assert(err.msg[0] != 0, "rejected without a message");
        c->rejected++;
        free(m);
        return;
    }
    c->opened++;
    for (int i = 0; i < m->st.n_tensors; i++) {
        const cb_tensor *t = &m->st.tensors[i];
        const uint8_t *base = m->st.maps[t->file_index];
        cr_assert((const uint8_t *)t->data >= base && (const uint8_t *)t->data + t->nbytes <= base + m->st.map_sizes[t->file_index],
                  "tensor %s outside the mapping", t->name);
    }
    m->cfg = c->cfg;
    snprintf(m->source, sizeof m->source, "%s", c->path);
    m->from_checkpoint = true;
    if (cb_model_bind(m, &err) == 0) c->bound++;
    else cr_assert(err.msg[0] != 0);
    cb_model_free(m);
    free(m);
}

static void restore(fuzz_ctx *c, size_t off, size_t n) {
    cr_assert_eq(pwrite(c->fd, c->orig + off, n, (off_t)off), (ssize_t)n);
}

static void run_fuzz(const char *dir, uint64_t seed) {
    fuzz_ctx c;
    setup(&c, dir);
    cb_rng rng = { seed };
    const size_t hend = 8 + c.hlen;

    /* 1. the untouched file binds */
    try_case(&c);
    cr_assert_eq(c.bound, 1, "%s: unmodified fixture does not bind", dir);

    /* 2. random byte overwrites / bit flips in the header region */
    for (int k = 0; k < 1000; k++) {
        int nmut = 1 + (int)(cb_rng_next(&rng) % 4);
        size_t pos[4];
        for (int j = 0; j < nmut; j++) {
            pos[j] = cb_rng_next(&rng) % hend;
            uint8_t b = c.orig[pos[j]];
            uint64_t r = cb_rng_next(&rng);
            b = (r & 1) ? (uint8_t)(b ^ (1u << ((r >> 1) % 8))) : (uint8_t)(r >> 8);
            cr_assert_eq(pwrite(c.fd, &b, 1, (off_t)pos[j]), 1);
        }
        try_case(&c);
        for (int j = 0; j < nmut; j++) restore(&c, pos[j], 1);
    }

    /* 3. digit edits: reach shape / offset / bind validation with still-valid JSON */
    size_t digits[8192];
    int nd = 0;
    for (size_t i = 8; i < hend && nd < 8192; i++)
        if (c.orig[i] >= '0' && c.orig[i] <= '9') digits[nd++] = i;
    for (int k = 0; k < 800 && nd > 0; k++) {
        size_t p = digits[cb_rng_next(&rng) % nd];
        uint8_t b = (uint8_t)('0' + cb_rng_next(&rng) % 10);
        cr_assert_eq(pwrite(c.fd, &b, 1, (off_t)p), 1);
        try_case(&c);
        restore(&c, p, 1);
    }

    /* 4. header length values: random, near the true one, near the file size, huge */
    for (int k = 0; k < 400; k++) {
        uint64_t v, r = cb_rng_next(&rng);
        switch (k % 5) {
        case 0: v = r; break;
        case 1: v = c.hlen + (r % 64) - 32; break;
        case 2: v = c.size - 8 + (r % 32) - 16; break;
        case 3: v = r % c.size; break;
        default: v = UINT64_MAX - (r % 16); break;
        }
        uint8_t b[8];
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
        cr_assert_eq(pwrite(c.fd, b, 8, 0), 8);
        try_case(&c);
        restore(&c, 0, 8);
    }

    /* 5. truncation: every length through the header start, random lengths in header and data */
    for (int k = 0; k < 250; k++) {
        size_t len = k < 64 ? (size_t)k : k < 200 ? cb_rng_next(&rng) % (hend + 16) : cb_rng_next(&rng) % c.size;
        cr_assert_eq(ftruncate(c.fd, (off_t)len), 0);
        try_case(&c);
        cr_assert_eq(ftruncate(c.fd, (off_t)c.size), 0);
        restore(&c, len, c.size - len);
    }
    cr_assert(c.rejected > 700, "%s: only %d rejected", dir, c.rejected);
    cr_assert(c.opened > 10, "%s: only %d opened", dir, c.opened);
    teardown(&c);
}

/* stderr swallowed: accepted mutants legitimately warn about unexpected tensors */
Test(fuzz_checkpoint, bamba_tiny, .init = cr_redirect_stderr, .timeout = 60) { run_fuzz("tests/fixtures/bamba-tiny", 1); }
Test(fuzz_checkpoint, mamba2_tiny, .init = cr_redirect_stderr, .timeout = 60) { run_fuzz("tests/fixtures/mamba2-tiny", 2); }
Test(fuzz_checkpoint, llama_tiny, .init = cr_redirect_stderr, .timeout = 60) { run_fuzz("tests/fixtures/llama-tiny", 3); }
Test(fuzz_checkpoint, granite_tiny, .init = cr_redirect_stderr, .timeout = 60) { run_fuzz("tests/fixtures/granite-tiny", 4); }

/* A pre-quantised checkpoint (F8_E4M3 weights + <name>_scale tensors, written by `ctxbench quantize`): mutants
 * reach the 8-bit binder (scale shapes, dtypes, missing companions). */
#include "../harness/cli/cli.h"
Test(fuzz_checkpoint, bamba_tiny_fp8, .init = cr_redirect_stderr, .timeout = 60) {
    char dir[] = "/tmp/ctxbench-fuzz8-XXXXXX", out[64], cmd[96];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/q", dir);
    char *argv[] = { "ctxbench", "quantize", "tests/fixtures/bamba-tiny", "--to", "fp8", "--out", out, NULL };
    cr_assert_eq(cb_cli_main(7, argv), 0);
    run_fuzz(out, 4);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
