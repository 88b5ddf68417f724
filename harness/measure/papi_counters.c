/* PAPI counters for the harness. The engines' software-defined counters (cb_ctr, engines/counters.h)
 * are exported through libsde as library "ctxbench" and read back through PAPI's sde component like
 * any other event; hardware presets are added where a PMU exists. PAPI binds an event set to one
 * component, so a cb_counter_set holds one PAPI event set per component. An event that cannot be
 * counted is kept with ok=false and the reason: counters never fail a run. */
#include <papi.h>
#include <pthread.h>
#include <sde_lib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/counters.h"
#include "papi_counters.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_status = -1;
static char init_why[160];

/* libsde 7.0 leaks a strdup()'d copy of each registered counter's full name ("ctxbench::flops", ...:
 * a few bytes for each of ours, once per process, even after PAPI_shutdown): not ours to fix, so LeakSanitizer (make asan) is told
 * to ignore that library's allocations. The sanitizer runtime calls this hook when it exists. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libsde.so\n"; }

/* The engines' counters (engines/counters.h), one table for registration, validation and the default list. */
static const struct { const char *name, *event, *desc; long long *field; } sde_ctr[] = {
    { "flops", "sde:::ctxbench::flops", "floating-point operations (a multiply-add counts 2), from shapes", &cb_ctr.flops },
    { "weight_bytes", "sde:::ctxbench::weight_bytes", "weight bytes streamed from memory", &cb_ctr.weight_bytes },
    { "kv_bytes_read", "sde:::ctxbench::kv_bytes_read", "KV-cache bytes read", &cb_ctr.kv_bytes_read },
    { "kv_bytes_written", "sde:::ctxbench::kv_bytes_written", "KV-cache bytes written", &cb_ctr.kv_bytes_written },
    { "state_bytes", "sde:::ctxbench::state_bytes", "SSM and conv state bytes read + written", &cb_ctr.state_bytes },
    { "tokens", "sde:::ctxbench::tokens", "tokens processed (prefill + decode)", &cb_ctr.tokens },
    { "ssd_ns", "sde:::ctxbench::ssd_ns", "wall ns in the chunked SSD kernel of prefill", &cb_ctr.ssd_ns },
    { "attention_ns", "sde:::ctxbench::attention_ns", "wall ns in flash attention of prefill", &cb_ctr.attention_ns },
};
#define N_SDE (sizeof sde_ctr / sizeof sde_ctr[0])

static void papi_init_once(void) {
    papi_handle_t h = papi_sde_init("ctxbench");
    if (!h) {
        snprintf(init_why, sizeof init_why, "papi_sde_init(\"ctxbench\") failed");
    } else {
        for (size_t i = 0; i < N_SDE; i++) {
            int rc = papi_sde_register_counter(h, sde_ctr[i].name, PAPI_SDE_RO | PAPI_SDE_DELTA, PAPI_SDE_long_long,
                                               sde_ctr[i].field);
            if (rc != SDE_OK) {
                snprintf(init_why, sizeof init_why, "papi_sde_register_counter(%s) failed: %d", sde_ctr[i].name, rc);
                break;
            }
            papi_sde_describe_counter(h, sde_ctr[i].name, sde_ctr[i].desc);
        }
    }
    int rc = PAPI_library_init(PAPI_VER_CURRENT);
    if (rc != PAPI_VER_CURRENT) {
        snprintf(init_why, sizeof init_why, "PAPI_library_init: %s",
                 rc > 0 ? "header/library version mismatch" : PAPI_strerror(rc));
        return;
    }
    init_status = init_why[0] ? -1 : 0;
}

int cb_papi_init(char *why, size_t why_len) {
    pthread_once(&init_once, papi_init_once);
    if (why && why_len) snprintf(why, why_len, "%s", init_status == 0 ? "ok" : init_why);
    return init_status;
}

/* ---- event sets ---- */
#define CB_MAX_GROUPS 8

typedef struct {
    int cidx;       /* PAPI component index */
    int eventset;   /* PAPI event set handle */
    int n;          /* events added */
    bool running;
    char start_error[96];
} group;

struct cb_counter_set {
    int n;
    cb_counter_value *ev; /* name, ok, status; value filled at stop */
    int *grp, *pos;       /* per event: its group (-1: unavailable) and position in that group */
    group groups[CB_MAX_GROUPS];
    int n_groups;
};

__attribute__((format(printf, 2, 3))) static void set_status(cb_counter_value *v, const char *fmt, ...) {
    v->ok = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->status, sizeof v->status, fmt, ap); /* a long reason is cut, never overflows */
    va_end(ap);
}

/* PAPI's sde component accepts any name under a library's prefix (a placeholder for a counter that may be
 * registered later, reading 0 forever): a misspelt ctxbench counter must not pass as ok. */
static bool sde_name_valid(const char *name) {
    static const char prefix[] = "sde:::ctxbench::";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0) return true; /* another library's: PAPI decides */
    for (size_t i = 0; i < N_SDE; i++)
        if (!strcmp(name, sde_ctr[i].event)) return true;
    return false;
}

/* Add one event; on failure leave ok=false and say why. */
static void add_event(cb_counter_set *s, int i) {
    cb_counter_value *v = &s->ev[i];
    int code = 0, rc = PAPI_event_name_to_code(v->name, &code);
    if (rc != PAPI_OK) {
        set_status(v, "unknown event (%s)", PAPI_strerror(rc));
        return;
    }
    int cidx = PAPI_get_event_component(code);
    const PAPI_component_info_t *ci = cidx >= 0 ? PAPI_get_component_info(cidx) : NULL;
    if (!ci) {
        set_status(v, "no PAPI component for this event");
        return;
    }
    if (ci->disabled) {
        set_status(v, "%s component disabled: %s", ci->name, ci->disabled_reason);
        return;
    }
    if (!sde_name_valid(v->name)) {
        set_status(v, "no such software-defined counter (ctxbench registers flops, weight_bytes, kv_bytes_read, "
                      "kv_bytes_written, state_bytes, tokens, ssd_ns, attention_ns)");
        return;
    }
    int g = 0;
    while (g < s->n_groups && s->groups[g].cidx != cidx) g++;
    if (g == s->n_groups) {
        if (g == CB_MAX_GROUPS) {
            set_status(v, "too many PAPI components in one set");
            return;
        }
        int es = PAPI_NULL;
        rc = PAPI_create_eventset(&es);
        if (rc != PAPI_OK) {
            set_status(v, "PAPI_create_eventset: %s", PAPI_strerror(rc));
            return;
        }
        s->groups[g] = (group){ .cidx = cidx, .eventset = es };
        s->n_groups++;
    }
    rc = PAPI_add_event(s->groups[g].eventset, code);
    if (rc != PAPI_OK) {
        set_status(v, "%s (%s)", rc == PAPI_ENOEVNT ? "not available on this CPU" : "cannot be counted here",
                   PAPI_strerror(rc));
        return;
    }
    s->grp[i] = g;
    s->pos[i] = s->groups[g].n++;
    v->ok = true;
    snprintf(v->status, sizeof v->status, "ok");
}

cb_counter_set *cb_counters_open(const char *const *names, int n) {
    if (n < 0) n = 0;
    cb_counter_set *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n = n;
    s->ev = calloc((size_t)n + 1, sizeof *s->ev);
    s->grp = calloc((size_t)n + 1, sizeof *s->grp);
    s->pos = calloc((size_t)n + 1, sizeof *s->pos);
    if (!s->ev || !s->grp || !s->pos) {
        cb_counters_close(s);
        return NULL;
    }
    char why[160];
    int init = cb_papi_init(why, sizeof why);
    for (int i = 0; i < n; i++) {
        snprintf(s->ev[i].name, sizeof s->ev[i].name, "%s", names[i] ? names[i] : "");
        s->grp[i] = -1;
        if (init != 0) set_status(&s->ev[i], "PAPI unavailable: %s", why);
        else add_event(s, i);
    }
    return s;
}

void cb_counters_start(cb_counter_set *s) {
    if (!s) return;
    for (int g = 0; g < s->n_groups; g++) {
        group *gr = &s->groups[g];
        gr->start_error[0] = 0;
        if (gr->n == 0 || gr->running) continue;
        int rc = PAPI_start(gr->eventset);
        if (rc == PAPI_OK) gr->running = true;
        else snprintf(gr->start_error, sizeof gr->start_error, "PAPI_start failed: %s", PAPI_strerror(rc));
    }
}

void cb_counters_stop(cb_counter_set *s, cb_counter_value *out) {
    if (!s) return;
    long long *vals = calloc((size_t)s->n + 1, sizeof *vals);
    char stop_error[CB_MAX_GROUPS][96] = { { 0 } };
    for (int g = 0; g < s->n_groups; g++) {
        group *gr = &s->groups[g];
        if (!gr->running) continue;
        long long *gv = calloc((size_t)gr->n + 1, sizeof *gv);
        int rc = gv ? PAPI_stop(gr->eventset, gv) : PAPI_ENOMEM;
        gr->running = false;
        if (rc != PAPI_OK) snprintf(stop_error[g], sizeof stop_error[g], "PAPI_stop failed: %s", PAPI_strerror(rc));
        else if (vals)
            for (int i = 0; i < s->n; i++)
                if (s->grp[i] == g) vals[i] = gv[s->pos[i]];
        free(gv);
    }
    for (int i = 0; out && i < s->n; i++) {
        out[i] = s->ev[i];
        out[i].value = 0;
        int g = s->grp[i];
        if (g < 0) continue; /* unavailable: keeps its reason */
        const char *err = s->groups[g].start_error[0] ? s->groups[g].start_error : stop_error[g];
        if (!vals) err = "out of memory reading counters";
        if (err[0]) {
            out[i].ok = false;
            snprintf(out[i].status, sizeof out[i].status, "%s", err);
        } else {
            out[i].value = vals[i];
        }
    }
    free(vals);
}

void cb_counters_close(cb_counter_set *s) {
    if (!s) return;
    for (int g = 0; g < s->n_groups; g++) {
        if (s->groups[g].running) {
            long long *scratch = calloc((size_t)s->groups[g].n + 1, sizeof *scratch);
            if (scratch) PAPI_stop(s->groups[g].eventset, scratch); /* closed while running: values discarded */
            free(scratch);
        }
        PAPI_cleanup_eventset(s->groups[g].eventset);
        PAPI_destroy_eventset(&s->groups[g].eventset);
    }
    free(s->ev);
    free(s->grp);
    free(s->pos);
    free(s);
}

/* ---- the default event list ---- */

static bool preset_available(const char *name) {
    int code;
    return PAPI_event_name_to_code(name, &code) == PAPI_OK && PAPI_query_event(code) == PAPI_OK;
}

int cb_counters_default_names(const char **names, int max) {
    char why[160];
    bool papi = cb_papi_init(why, sizeof why) == 0;
    const char *list[8 + N_SDE];
    int k = 0;
    list[k++] = "PAPI_TOT_CYC";
    list[k++] = "PAPI_TOT_INS";
    /* Last-level cache misses, or the closest level the CPU exposes. With no PMU nothing is available:
     * keep the first choice so the run records it as unavailable, with the reason. */
    static const char *const cache[] = { "PAPI_L3_TCM", "PAPI_L2_TCM", "PAPI_L1_TCM" };
    const char *c = cache[0];
    for (size_t i = 0; papi && i < sizeof cache / sizeof cache[0]; i++)
        if (preset_available(cache[i])) { c = cache[i]; break; }
    list[k++] = c;
    bool fp = papi && preset_available("PAPI_FP_OPS"), vec = papi && preset_available("PAPI_VEC_SP");
    if (fp || !vec) list[k++] = "PAPI_FP_OPS"; /* recorded as unavailable where neither exists */
    if (vec) list[k++] = "PAPI_VEC_SP";
    for (size_t i = 0; i < N_SDE; i++) list[k++] = sde_ctr[i].event;
    int n = k < max ? k : max;
    for (int i = 0; i < n; i++) names[i] = list[i];
    return n;
}
