/* Kernel path selection from CPUID, with an environment override for tests and benchmarks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static int selected = -1;

cb_kpath cb_kernels_best_path(void) {
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("fma");
    if (!avx512) return CB_PATH_PORTABLE;
    return __builtin_cpu_supports("avx512bf16") ? CB_PATH_AVX512_BF16 : CB_PATH_AVX512;
}

const char *cb_kpath_name(cb_kpath p) {
    switch (p) {
    case CB_PATH_AVX512: return "avx512";
    case CB_PATH_AVX512_BF16: return "avx512-bf16";
    default: return "portable";
    }
}

int cb_kernels_set_path(cb_kpath p) {
    if (p > cb_kernels_best_path()) return -1;
    selected = (int)p;
    return 0;
}

cb_kpath cb_kernels_path(void) {
    if (selected >= 0) return (cb_kpath)selected;
    cb_kpath best = cb_kernels_best_path(), p = best;
    const char *env = getenv("CTXBENCH_KERNELS");
    if (env && *env) {
        if (!strcmp(env, "portable")) p = CB_PATH_PORTABLE;
        else if (!strcmp(env, "avx512")) p = CB_PATH_AVX512;
        else if (!strcmp(env, "avx512bf16") || !strcmp(env, "avx512-bf16")) p = CB_PATH_AVX512_BF16;
        else fprintf(stderr, "ctxbench: CTXBENCH_KERNELS='%s' unknown (portable|avx512|avx512bf16); using %s\n", env,
                     cb_kpath_name(best));
        if (p > best) {
            fprintf(stderr, "ctxbench: CTXBENCH_KERNELS=%s not supported by this CPU; using %s\n", env,
                    cb_kpath_name(best));
            p = best;
        }
    }
    if (p == CB_PATH_PORTABLE && best == CB_PATH_PORTABLE)
        fprintf(stderr, "ctxbench: this CPU has no AVX-512; running the portable kernels (slower)\n");
    selected = (int)p;
    return p;
}
