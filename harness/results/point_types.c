/* The stored spellings of phases, fills and labels (point_types.h). */
#include "point_types.h"

const char *cb_phase_name(cb_phase p) {
    static const char *const names[CB_PH_COUNT] = { "prefill", "decode", "prefill_chunk", "throughput", "memory" };
    return p >= 0 && p < CB_PH_COUNT ? names[p] : "?";
}

const char *cb_fill_name(cb_fill f) {
    static const char *const names[CB_FILL_COUNT] = { "auto", "real", "synthetic" };
    return f >= 0 && f < CB_FILL_COUNT ? names[f] : "?";
}

const char *cb_label_name(cb_label l) {
    static const char *const names[CB_LABEL_COUNT] = { "measured", "sampled", "analytic", "refused", "failed" };
    return l >= 0 && l < CB_LABEL_COUNT ? names[l] : "failed";
}
