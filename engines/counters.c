#include "counters.h"

cb_counters cb_ctr;

long long cb_prof_ns[CB_PROF_N];
const char *const cb_prof_name[CB_PROF_N] = {
    "norm", "residual", "qkv", "rope+kv", "attn", "o", "gate/up", "act", "down",
    "in_proj", "conv", "ssd", "gate+norm", "out_proj", "router", "experts", "other", "(split)",
};
