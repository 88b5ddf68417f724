/* Process memory as the kernel reports it: peak RSS (VmHWM, reset per point), RSS, MemAvailable, page
 * faults. docs/methodology.md. */
#ifndef CB_MEMPROBE_H
#define CB_MEMPROBE_H

#include <stdint.h>

void cb_mem_reset_peak(void);          /* write 5 to /proc/self/clear_refs (VmHWM := VmRSS) */
const char *cb_mem_peak_note(void);    /* "" if the last reset worked, else why the peak is the process peak */
int64_t cb_mem_peak_rss_bytes(void);   /* VmHWM */
int64_t cb_mem_rss_bytes(void);        /* VmRSS */
int64_t cb_mem_available_bytes(void);  /* MemAvailable from /proc/meminfo */
void cb_mem_page_faults(int64_t *minor, int64_t *major); /* getrusage, cumulative */
/* "Key:   123 kB" from a /proc file (status, meminfo), in bytes; -1 if absent */
int64_t cb_proc_kb_bytes(const char *path, const char *key);

#endif
