/* The build's identity. build_info_gen.h is written by the Makefile on every make (only when its
 * content changes), so this object is recompiled exactly when the commit or the flags change. */
#include "build_info.h"
#include "build_info_gen.h"

#ifndef CB_GIT_COMMIT
#define CB_GIT_COMMIT "unknown"
#endif
#ifndef CB_AVX512_FLAGS
#define CB_AVX512_FLAGS "unknown"
#endif
#ifndef CB_CFLAGS
#define CB_CFLAGS "unknown"
#endif

const char cb_build_commit[] = CB_GIT_COMMIT;
const char cb_build_cflags[] = CB_CFLAGS;
const char cb_build_avx512_flags[] = CB_AVX512_FLAGS;
#if defined(__clang__)
const char cb_build_compiler[] = "clang " __clang_version__;
#elif defined(__GNUC__)
const char cb_build_compiler[] = "gcc " __VERSION__;
#else
const char cb_build_compiler[] = __VERSION__;
#endif
