/* Token files of `ctxbench ppl`: the fuzzed reader of tests/fuzz/fuzz_tokens.c. */
#ifndef CB_TOKENS_H
#define CB_TOKENS_H

#include <stdint.h>

#include "../../engines/common.h"

/* Read a token file: raw little-endian int32 when the name ends in .bin or .i32, input_ids of a
 * .safetensors file, otherwise whitespace separated decimal ids. Every id must be in [0, vocab)
 * (vocab <= 0: no check); errors name the file and the token index. *ids is malloc'd. */
int cb_tokens_read(const char *path, int vocab, int32_t **ids, int64_t *n, cb_err *err);

#endif
