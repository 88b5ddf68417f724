/* Kernel path selection: one CPU-feature record filled once from CPUID (and, for AMX, the kernel's
 * permission to use tile state), the path it allows, and the CTXBENCH_KERNELS override. Every kernel
 * entry point asks cb_kernels_path() (through dispatch.c); see docs/performance.md "Kernel paths". */
#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels.h"

#define ARCH_REQ_XCOMP_PERM 0x1023 /* asm/prctl.h; not in glibc's headers */
#define XFEATURE_XTILEDATA 18

static int selected = -1;
static cb_cpu_features feat;
static bool feat_done;

static unsigned xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

/* AMX needs the CPU bits, XCR0 tile state enabled by the OS, and (Linux ≥ 5.16) a per-process request
 * for the large XTILEDATA state: without it the first tile instruction faults. */
static void probe_amx(cb_cpu_features *f, unsigned edx7, bool osxsave) {
    f->amx_bf16 = edx7 >> 22 & 1;
    f->amx_tile = edx7 >> 24 & 1;
    f->amx_int8 = edx7 >> 25 & 1;
    if (!f->amx_tile) {
        snprintf(f->amx_why, sizeof f->amx_why, "CPUID reports no AMX tiles");
        return;
    }
    if (!osxsave || (xgetbv0() & 0x60000) != 0x60000) {
        snprintf(f->amx_why, sizeof f->amx_why, "CPUID has AMX but the OS did not enable tile state (XCR0)");
        return;
    }
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        snprintf(f->amx_why, sizeof f->amx_why, "arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) refused");
        return;
    }
    f->amx_os = true;
    snprintf(f->amx_why, sizeof f->amx_why, "AMX tiles%s%s, tile state granted by the OS",
             f->amx_bf16 ? " + bf16" : "", f->amx_int8 ? " + int8" : "");
}

const cb_cpu_features *cb_cpu(void) {
    if (feat_done) return &feat;
    cb_cpu_features f = { 0 };
    unsigned a, b, c, d, b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    bool osxsave = false, zmm_os = false, ymm_os = false;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        f.fma = c >> 12 & 1;
        f.f16c = c >> 29 & 1;
        osxsave = c >> 27 & 1;
        zmm_os = osxsave && (xgetbv0() & 0xe6) == 0xe6; /* SSE, AVX, opmask, ZMM state enabled */
        ymm_os = osxsave && (xgetbv0() & 0x6) == 0x6;   /* SSE, AVX state enabled */
    }
    if (__get_cpuid_count(7, 0, &a, &b7, &c7, &d7)) {
        f.bmi2 = b7 >> 8 & 1;
        f.avx2 = ymm_os && (b7 >> 5 & 1);
        f.avx512f = zmm_os && (b7 >> 16 & 1);
        f.avx512dq = zmm_os && (b7 >> 17 & 1);
        f.avx512bw = zmm_os && (b7 >> 30 & 1);
        f.avx512vl = zmm_os && (b7 >> 31 & 1);
        f.avx512vnni = zmm_os && (c7 >> 11 & 1);
        if (__get_cpuid_count(7, 1, &a71, &b, &c, &d)) f.avx512bf16 = zmm_os && (a71 >> 5 & 1);
    }
    probe_amx(&f, d7, osxsave);
    f.avx2 = f.avx2 && f.fma && f.f16c && f.bmi2;
    f.avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.f16c && f.bmi2;
    feat = f;
    feat_done = true;
    return &feat;
}

static bool vnni_off;
bool cb_kernels_vnni(void) { return cb_cpu()->avx512vnni && !vnni_off; }
void cb_kernels_set_vnni(bool on) { vnni_off = !on; }

cb_kpath cb_kernels_best_path(void) {
    const cb_cpu_features *f = cb_cpu();
    if (!f->avx512) return f->avx2 ? CB_PATH_AVX2 : CB_PATH_PORTABLE;
    if (!f->avx512bf16) return CB_PATH_AVX512;
    return f->amx_bf16 && f->amx_os ? CB_PATH_AMX : CB_PATH_AVX512_BF16;
}

const char *cb_kpath_name(cb_kpath p) {
    switch (p) {
    case CB_PATH_AVX2: return "avx2";
    case CB_PATH_AVX512: return "avx512";
    case CB_PATH_AVX512_BF16: return "avx512-bf16";
    case CB_PATH_AMX: return "amx";
    default: return "portable";
    }
}

int cb_kernels_parse_path(const char *s, cb_kpath *p) {
    if (!strcmp(s, "portable")) *p = CB_PATH_PORTABLE;
    else if (!strcmp(s, "avx2")) *p = CB_PATH_AVX2;
    else if (!strcmp(s, "avx512")) *p = CB_PATH_AVX512;
    else if (!strcmp(s, "avx512bf16") || !strcmp(s, "avx512-bf16")) *p = CB_PATH_AVX512_BF16;
    else if (!strcmp(s, "amx")) *p = CB_PATH_AMX;
    else return -1;
    return 0;
}

int cb_kernels_set_path(cb_kpath p) {
    if (p > cb_kernels_best_path()) return -1;
    selected = (int)p;
    return 0;
}

static int prefetch_forced = -1;
void cb_kernels_set_prefetch_l2(int on) { prefetch_forced = on < 0 ? -1 : on != 0; }

static bool prefetch_env(bool *l2) {
    const char *env = getenv("CTXBENCH_PREFETCH");
    if (!env || !*env) return false;
    if (!strcmp(env, "l1")) *l2 = false;
    else if (!strcmp(env, "l2")) *l2 = true;
    else return false;
    return true;
}

/* The default (or CTXBENCH_PREFETCH), filled once: the flash loops ask on every call, from every thread. */
static pthread_once_t prefetch_once = PTHREAD_ONCE_INIT;
static bool prefetch_default;
static char prefetch_reason[96];
static void prefetch_init(void) {
    bool l2;
    if (prefetch_env(&l2)) {
        prefetch_default = l2;
        snprintf(prefetch_reason, sizeof prefetch_reason, "CTXBENCH_PREFETCH=%s", l2 ? "l2" : "l1");
        return;
    }
    const long l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE); /* glibc reads it from CPUID; <= 0: unknown */
    prefetch_default = l1d > 0 && l1d <= 32 * 1024;
    if (l1d > 0)
        snprintf(prefetch_reason, sizeof prefetch_reason, "default for a %ld KiB L1 data cache: L2 up to 32 KiB, L1 above",
                 l1d / 1024);
    else snprintf(prefetch_reason, sizeof prefetch_reason, "default: L1 (the L1 data cache size is unknown)");
}

bool cb_kernels_prefetch_l2(const char **why) {
    if (prefetch_forced >= 0) {
        if (why) *why = "forced by the caller";
        return prefetch_forced;
    }
    pthread_once(&prefetch_once, prefetch_init);
    if (why) *why = prefetch_reason;
    return prefetch_default;
}

int cb_kernels_check_env(char *why, size_t n) {
    const char *pf = getenv("CTXBENCH_PREFETCH");
    bool l2;
    if (pf && *pf && !prefetch_env(&l2)) {
        snprintf(why, n, "CTXBENCH_PREFETCH='%s' is not a prefetch target (expected l1|l2)", pf);
        return -1;
    }
    const char *go = getenv("CTXBENCH_GEMV_ORDER");
    if (go && *go && strcmp(go, "rows") && strcmp(go, "blocks")) {
        snprintf(why, n, "CTXBENCH_GEMV_ORDER='%s' is not a GEMV order (expected rows|blocks)", go);
        return -1;
    }
    const char *env = getenv("CTXBENCH_KERNELS");
    if (!env || !*env) return 0;
    cb_kpath p, best = cb_kernels_best_path();
    if (cb_kernels_parse_path(env, &p) != 0) {
        snprintf(why, n, "CTXBENCH_KERNELS='%s' is not a kernel path (expected portable|avx2|avx512|avx512bf16|amx)", env);
        return -1;
    }
    if (p > best) {
        snprintf(why, n, "CTXBENCH_KERNELS=%s is not supported by this CPU (the best it allows is %s%s%s)", env,
                 cb_kpath_name(best), p == CB_PATH_AMX ? ": " : "", p == CB_PATH_AMX ? cb_cpu()->amx_why : "");
        return -1;
    }
    return 0;
}

cb_kpath cb_kernels_path(void) {
    if (selected >= 0) return (cb_kpath)selected;
    cb_kpath best = cb_kernels_best_path(), p = best;
    char why[256];
    if (cb_kernels_check_env(why, sizeof why) != 0) { /* the CLI checks first; this catches library users */
        fprintf(stderr, "ctxbench: %s\n", why);
        exit(1);
    }
    const char *env = getenv("CTXBENCH_KERNELS");
    if (env && *env) cb_kernels_parse_path(env, &p);
    if (p == CB_PATH_PORTABLE && best == CB_PATH_PORTABLE)
        fprintf(stderr, "ctxbench: this CPU has neither AVX-512 nor AVX2; running the portable kernels (slower)\n");
    else if (p == CB_PATH_AVX2 && best == CB_PATH_AVX2)
        fprintf(stderr, "ctxbench: this CPU has no AVX-512; running the AVX2 kernels (slower than AVX-512 would be; "
                        "no AMX, no VNNI)\n");
    selected = (int)p;
    return p;
}
