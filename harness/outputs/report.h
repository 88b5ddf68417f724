/* The claims report: for each Bamba claim C1-C4 (docs/figures.md, "The claims report") what was
 * measured, the number with its CI, the analytic expectation beside it and a verdict, every number
 * traceable to point ids of the results database. Markdown plus a LaTeX table fragment.
 * Reads the database only through SQL; analytic memory comes from the engines' plan() on the presets. */
#ifndef CB_REPORT_H
#define CB_REPORT_H

#include <stdio.h>

#include "../../engines/common.h"

typedef enum { CB_VERDICT_REPRODUCED = 0, CB_VERDICT_PARTLY, CB_VERDICT_NOT_REPRODUCED, CB_VERDICT_NOT_MEASURED } cb_verdict;
const char *cb_verdict_name(cb_verdict v); /* "reproduced", "partly", "not reproduced", "not measured" */

/* Write the report for the database at db_path to md (Markdown) and tex (LaTeX tabular; may be NULL).
 * Returns 0, or -1 with err set when the database cannot be read. */
int cb_report_write(const char *db_path, FILE *md, FILE *tex, cb_err *err);

#endif
