/* The SQL views: every number derived across points (speed-ups and their intervals, tokens/s bounds,
 * bandwidth shares, 8-bit ratios). Views hold no data, so they are not migrated: every open installs the
 * current definitions (in the database when it is opened for writing, as TEMP views over a read-only
 * one), and a new derived number is one entry in views.c plus its rows in docs/schema.md. */
#ifndef CB_VIEWS_H
#define CB_VIEWS_H

#include <sqlite3.h>
#include <stdbool.h>

#include "../../engines/common.h"

typedef struct {
    const char *name;
    const char *body; /* the SELECT */
} cb_view;

/* The views in creation order (a view comes after the views it reads). */
const cb_view *cb_views(int *n);

/* (Re)create every view whose stored definition differs, in main (in one transaction) or, when temp,
 * as TEMP views that shadow main's (for read-only connections). */
int cb_views_install(sqlite3 *db, bool temp, cb_err *err);

#endif
