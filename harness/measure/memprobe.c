/* Process memory: peak and current RSS from /proc/self/status, MemAvailable, page faults. The peak
 * (VmHWM) is reset per point by writing 5 to /proc/self/clear_refs (Linux >= 4.0). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "memprobe.h"

static char peak_note[128];

const char *cb_mem_peak_note(void) { return peak_note; }

void cb_mem_reset_peak(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0 || write(fd, "5", 1) != 1) {
        snprintf(peak_note, sizeof peak_note, "peak RSS not reset (/proc/self/clear_refs: %m): VmHWM is the process peak");
    } else {
        peak_note[0] = 0;
    }
    if (fd >= 0) close(fd);
}

/* "Key:   123 kB" from a /proc file, in bytes; -1 if absent */
int64_t cb_proc_kb_bytes(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    int64_t v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            long long kb;
            if (sscanf(line + klen + 1, "%lld", &kb) == 1) v = (int64_t)kb * 1024;
            break;
        }
    fclose(f);
    return v;
}

int64_t cb_mem_peak_rss_bytes(void) { return cb_proc_kb_bytes("/proc/self/status", "VmHWM"); }
int64_t cb_mem_rss_bytes(void) { return cb_proc_kb_bytes("/proc/self/status", "VmRSS"); }
int64_t cb_mem_available_bytes(void) { return cb_proc_kb_bytes("/proc/meminfo", "MemAvailable"); }

void cb_mem_page_faults(int64_t *minor, int64_t *major) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        if (minor) *minor = -1;
        if (major) *major = -1;
        return;
    }
    if (minor) *minor = ru.ru_minflt;
    if (major) *major = ru.ru_majflt;
}
