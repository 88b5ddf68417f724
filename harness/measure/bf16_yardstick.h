/* Fast mode's yardstick for one reference file: how far transformers' own bf16 forward lands from the
 * fp32 reference logits (max |Δ logit| and argmax agreement), measured by scripts/hf_bf16_yardstick.py and
 * stored beside the checkpoint as bf16_yardstick.json (format: docs/engines.md, "The fast-mode bar"). Fast mode
 * is accepted when it is no worse than that (docs/engines.md, "The fast-mode bar"). */
#ifndef CB_BF16_YARDSTICK_H
#define CB_BF16_YARDSTICK_H

#include <stdbool.h>

#include "../../engines/common.h"

#define CB_BF16_YARDSTICK_FILE "bf16_yardstick.json"

typedef struct {
    bool found;              /* the folder has a yardstick for this reference file */
    double max_abs;          /* transformers bf16 vs the fp32 reference */
    double argmax_agreement; /* 0..1 */
    char source[200];        /* who measured it, with what (the file's "measured_with") */
} cb_bf16_yardstick;

/* Read DIR/bf16_yardstick.json's entry for `reference` (a file name inside DIR). A missing file or a file
 * without that reference: 0 with y->found false. A present but malformed file: -1 with err naming the
 * file, the key and what was expected — never a silent default. */
int cb_bf16_yardstick_read(const char *dir, const char *reference, cb_bf16_yardstick *y, cb_err *err);

#endif
