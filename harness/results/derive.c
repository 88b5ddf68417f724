/* Per-point derived numbers (derive.h). */
#include "derive.h"

#include <math.h>
#include <string.h>

double cb_tokens_per_s(cb_phase phase, int64_t ctx, int prefill_chunk, int batch, double median) {
    switch (phase) {
    case CB_PH_PREFILL: return (double)ctx / median;
    case CB_PH_PREFILL_CHUNK: return prefill_chunk / median;
    case CB_PH_DECODE: return 1 / median;
    default: return (batch > 1 ? batch : 1) / median;
    }
}

static const char *sde_suffix(const char *name) {
    const char *p = strstr(name, "ctxbench::");
    return p ? p + 10 : NULL;
}

void cb_point_rates_compute(const cb_point_result *r, cb_phase phase, int decode_tokens, double peak_gflops,
                            double peak_gbps, cb_point_rates *out) {
    double flops = -1, bytes = 0;
    bool have_bytes = false;
    for (int i = 0; i < r->n_counters; i++) {
        const char *sfx = sde_suffix(r->counters[i].name);
        if (!sfx || !r->counters[i].ok) continue;
        if (!strcmp(sfx, "flops")) flops = (double)r->counters[i].value;
        else if (strstr(sfx, "_bytes")) { bytes += (double)r->counters[i].value; have_bytes = true; } /* not the timers */
    }
    double timed = 0;
    for (int i = 0; i < r->n_samples; i++) timed += r->samples[i];
    if (phase == CB_PH_DECODE || phase == CB_PH_THROUGHPUT) timed *= decode_tokens;
    bool counted = r->n_counters > 0 && timed > 0, rates = counted && flops >= 0, byte_rates = rates && have_bytes;
    double gf = rates ? flops / timed / 1e9 : NAN, gb = byte_rates ? bytes / timed / 1e9 : NAN;
    out->counted_seconds = counted ? timed : NAN;
    out->gflops_per_s = gf;
    out->gbytes_per_s = gb;
    out->arith_intensity = byte_rates && bytes > 0 ? flops / bytes : NAN;
    out->pct_peak_flops = rates && peak_gflops > 0 ? 100 * gf / peak_gflops : NAN;
    out->pct_peak_bw = byte_rates && peak_gbps > 0 ? 100 * gb / peak_gbps : NAN;
}
