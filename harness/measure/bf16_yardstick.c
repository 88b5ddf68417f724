/* Reading bf16_yardstick.json (see bf16_yardstick.h). */
#include "bf16_yardstick.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int number_in(const json_t *obj, const char *path, const char *ref, const char *key, double lo, double hi,
                     double *out, cb_err *err) {
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < lo || json_number_value(v) > hi) {
        cb_err_set(err, "%s: references.\"%s\".%s: expected a number in [%g, %g]", path, ref, key, lo, hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

int cb_bf16_yardstick_read(const char *dir, const char *reference, cb_bf16_yardstick *y, cb_err *err) {
    memset(y, 0, sizeof *y);
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, CB_BF16_YARDSTICK_FILE);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        cb_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!root) {
        cb_err_set(err, "%s: line %d: %s", path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    const json_t *refs = json_object_get(root, "references"), *with = json_object_get(root, "measured_with");
    if (!json_is_object(root) || !json_is_object(refs)) {
        cb_err_set(err, "%s: expected an object with \"references\": {file name: {max_abs, argmax_agreement}}", path);
        goto done;
    }
    if (!json_is_string(with) || json_string_length(with) == 0) {
        cb_err_set(err, "%s: \"measured_with\": expected a non-empty string (tool, versions, machine, date)", path);
        goto done;
    }
    const json_t *entry = json_object_get(refs, reference);
    if (!entry) { rc = 0; goto done; }
    if (!json_is_object(entry)) {
        cb_err_set(err, "%s: references.\"%s\": expected an object {max_abs, argmax_agreement}", path, reference);
        goto done;
    }
    if (number_in(entry, path, reference, "max_abs", 0, 1e6, &y->max_abs, err) ||
        number_in(entry, path, reference, "argmax_agreement", 0, 1, &y->argmax_agreement, err))
        goto done;
    snprintf(y->source, sizeof y->source, "%s", json_string_value(with));
    y->found = true;
    rc = 0;
done:
    json_decref(root);
    if (rc) memset(y, 0, sizeof *y);
    return rc;
}
