/* The claims report's sections on an imported peer (llama.cpp): report.c calls them. docs/peers.md. */
#ifndef CB_REPORT_PEER_H
#define CB_REPORT_PEER_H

#include <sqlite3.h>
#include <stdio.h>

/* C2's subsection: ctxbench's speed-ups beside the peer's own bamba/transformer ratio (speedup_vs_peer);
 * `summary` gets one line for the claim's row ("" when the DB has no peer pairs). */
void cb_report_c2_peer(sqlite3 *db, FILE *md, char *summary, size_t n);
/* The "vs llama.cpp" section: ratio with CI per model, phase, depth and threads (vs_peer). */
void cb_report_vs_peer(sqlite3 *db, FILE *md);

#endif
