/* Build identity baked in at compile time (harness/measure/build_info.c, rebuilt whenever the commit or the
 * flags change): recorded with every run. */
#ifndef CB_BUILD_INFO_H
#define CB_BUILD_INFO_H

extern const char cb_build_commit[]; /* git describe --always --dirty, or "unknown" */
extern const char cb_build_cflags[]; /* flags of portable objects; *_avx512.c add cb_build_avx512_flags */
extern const char cb_build_avx512_flags[];
extern const char cb_build_compiler[]; /* "gcc " __VERSION__ */

#endif
