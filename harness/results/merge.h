/* Merging results databases (machines, or shards of one workload) into one: every run of each input with
 * its points, samples, memory, counters and peer_tests rows, and its ppl_runs / ppl_buckets, appended to
 * the output with ids renumbered. Inputs are only read; a run already in the output is skipped with a
 * note, so merging twice changes nothing (docs/promises.md). */
#ifndef CB_MERGE_H
#define CB_MERGE_H

#include <stdint.h>

#include "../../engines/common.h"

/* What a merge tells its caller on the way (either may be NULL). */
typedef struct {
    void (*note)(void *ctx, const char *msg);                     /* a run or ppl run skipped */
    void (*merged)(void *ctx, const char *in, int64_t runs_added); /* one input is in */
    void *ctx;
} cb_merge_report;

/* Merge in[0..n) into out, each input in one transaction. A missing out is built beside its name and
 * renamed into place only once every input is in. On failure err names the input and the reason (and,
 * when earlier inputs are already in an existing out, says so). Inputs must exist, be files, and none
 * be out itself (by inode). */
int cb_merge_databases(const char *out, char *const *in, int n, const cb_merge_report *rep, cb_err *err);

#endif
