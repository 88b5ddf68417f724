/* The columns of `points`, defined once. Each row: name, SQL declaration, schema version that added it,
 * kind, when it has a value and which (from `rec`, a const cb_point_record *; no value stores NULL,
 * as does a NAN), and its docs/schema.md meaning. From this table come the CREATE TABLE of version 1
 * and the ADD COLUMN of later versions (store.c), the INSERT (point_store.c), the points copy of
 * `ctxbench merge` (merge.c), and the check of docs/schema.md (tests/test_store.c).
 *
 * Adding a column: one row here with `since` = CB_SCHEMA_VERSION + 1, CB_SCHEMA_VERSION bumped to it, and
 * the same row in docs/schema.md (with the version); when rows stored before it can be given their value,
 * a row in CB_POINT_BACKFILL too. Never add to a version already on main: a database at that version
 * would not get the column. Kinds: KEY (assigned by SQLite), INT, REAL, TEXT. */
#ifndef CB_COLUMNS_H
#define CB_COLUMNS_H

#include <stddef.h>

#include "point_record.h"

/* The schema version (PRAGMA user_version): the newest `since` below, or of store.c's migrations of the
 * other tables. */
#define CB_SCHEMA_VERSION 11

/* X(name, decl, since, kind, has_value, value, doc) */
#define CB_POINT_COLUMNS(X)                                                                                            \
    X(id, "INTEGER PRIMARY KEY", 1, KEY, 0, 0, "point id")                                                             \
    X(run_id, "INTEGER NOT NULL REFERENCES runs(id)", 1, INT, 1, rec->run_id, "`runs.id`")                             \
    X(point_key, "TEXT NOT NULL", 1, TEXT, 1, rec->key,                                                                \
      "engine\\|model\\|phase\\|context\\|batch\\|threads\\|mode\\|wdtype\\|kvdtype\\|fill (as asked): `--resume` identity") \
    X(engine, "TEXT NOT NULL", 1, TEXT, 1, rec->engine, "transformer / mamba2 / bamba / ...")                          \
    X(model, "TEXT NOT NULL", 1, TEXT, 1, rec->model, "preset name or checkpoint dir")                                 \
    X(arch, "TEXT NOT NULL", 1, TEXT, 1, rec->arch, "transformer / mamba2 / hybrid")                                   \
    X(phase, "TEXT NOT NULL", 1, TEXT, 1, cb_phase_name(rec->def->phase),                                              \
      "prefill / decode / prefill_chunk / throughput / memory")                                                        \
    X(context, "INTEGER NOT NULL", 1, INT, 1, rec->def->ctx,                                                           \
      "N: prefill length, or depth for decode / prefill_chunk / throughput")                                           \
    X(batch, "INTEGER NOT NULL", 1, INT, 1, rec->r->batch ? rec->r->batch : rec->def->batch,                           \
      "sequences (throughput: the batch used, the largest that fits for `max`)")                                       \
    X(threads, "INTEGER NOT NULL", 1, INT, 1, rec->def->threads,                                                       \
      "OpenMP threads used (a workload 0 = all is stored as the count it meant)")                                      \
    X(mode, "TEXT NOT NULL", 1, TEXT, 1, rec->mode, "exact / fast")                                                    \
    X(weight_dtype, "TEXT NOT NULL", 1, TEXT, 1, rec->weight_dtype,                                                    \
      "weight storage dtype asked for (workload `weight_dtype` or `--weights-dtype`): bf16 / f16 / f32 (a preset's "   \
      "dtype; a checkpoint keeps its stored dtypes), fp8 / int8 (linear projections in 8 bits, the rest kept: "        \
      "docs/quantization.md)")                                                                                         \
    X(kv_dtype, "TEXT NOT NULL", 1, TEXT, 1, rec->kv_dtype, "KV-cache dtype")                                          \
    X(fill, "TEXT NOT NULL", 1, TEXT, 1, rec->def->phase == CB_PH_MEMORY ? "none" : cb_fill_name(rec->r->fill),        \
      "how depth was reached: real / synthetic (none for memory points)")                                              \
    X(label, "TEXT NOT NULL CHECK (label IN ('measured','sampled','analytic','refused','failed'))", 1, TEXT, 1,         \
      cb_label_name(rec->r->label), "measured / sampled / analytic / refused / failed")                                \
    X(status, "TEXT NOT NULL", 1, TEXT, 1, rec->r->status,                                                             \
      "`ok`, the reason for a refusal or failure, or notes (validation, drift)")                                       \
    X(unit, "TEXT", 1, TEXT, 1, rec->r->unit,                                                                          \
      "what `median` measures: seconds (prefill, chunk), seconds_per_token (decode), seconds_per_step (throughput), "  \
      "bytes (memory)")                                                                                                \
    X(n_samples, "INTEGER", 1, INT, rec->r->have_stats, rec->r->st.n, "repetitions (sampled: k)")                      \
    X(median, "REAL", 1, REAL, rec->r->have_stats, rec->r->st.median,                                                  \
      "median of the samples (sampled: the integrated estimate)")                                                      \
    X(q1, "REAL", 1, REAL, rec->r->have_stats, rec->r->st.q1, "first quartile")                                        \
    X(q3, "REAL", 1, REAL, rec->r->have_stats, rec->r->st.q3, "third quartile")                                        \
    X(iqr, "REAL", 1, REAL, rec->r->have_stats, rec->r->st.q3 - rec->r->st.q1, "q3 - q1")                              \
    X(ci_lo, "REAL", 1, REAL, rec->r->have_stats, rec->r->st.ci_lo,                                                    \
      "95% bootstrap CI of the median, low (sampled: estimate from the chunk CIs' lows)")                              \
    X(ci_hi, "REAL", 1, REAL, rec->r->have_stats, rec->r->st.ci_hi, "high")                                            \
    X(cv, "REAL", 1, REAL, rec->r->have_stats, rec->r->st.cv, "coefficient of variation (sample stddev / mean)")       \
    X(noisy, "INTEGER", 1, INT, rec->r->have_stats, rec->r->st.noisy, "1 when cv > 5%")                                \
    X(tokens_per_s, "REAL", 1, REAL, rec->r->have_stats, rec->r->tokens_per_s,                                         \
      "prefill: N/median; chunk: c/median; decode: 1/median; throughput: B/median")                                    \
    X(samples_k, "INTEGER", 1, INT, rec->r->have_fit, rec->r->samples_k, "sampled: number of depths timed")            \
    X(fit_error, "REAL", 1, REAL, rec->r->have_fit, rec->r->fit_error,                                                 \
      "sampled: max relative residual of the linear per-token fit")                                                    \
    X(validation_rel_error, "REAL", 1, REAL, rec->r->have_validation, rec->r->validation,                              \
      "sampled: (sampled - measured)/measured at the largest measured prefill of the same engine/model")               \
    X(refused_bytes, "INTEGER", 1, INT, rec->r->refused_bytes != 0, rec->r->refused_bytes,                             \
      "refused: bytes the plan needs")                                                                                 \
    X(refused_seconds, "REAL", 1, REAL, rec->r->refused_seconds > 0, rec->r->refused_seconds,                          \
      "refused: estimated seconds")                                                                                    \
    X(peak_rss_bytes, "INTEGER", 1, INT, rec->r->have_engine, rec->r->peak_rss, "VmHWM after the point (reset before it)") \
    X(minor_faults, "INTEGER", 1, INT, rec->r->have_engine, rec->r->minor, "minor page faults during the point")       \
    X(major_faults, "INTEGER", 1, INT, rec->r->have_engine, rec->r->major, "major page faults during the point")       \
    X(gflops_per_s, "REAL", 1, REAL, 1, rec->rates.gflops_per_s, "SDE flops / timed seconds")                          \
    X(gbytes_per_s, "REAL", 1, REAL, 1, rec->rates.gbytes_per_s,                                                       \
      "SDE bytes (weights + KV read/written + state) / timed seconds")                                                 \
    X(arith_intensity, "REAL", 1, REAL, 1, rec->rates.arith_intensity, "flops / byte")                                 \
    X(pct_peak_flops, "REAL", 1, REAL, 1, rec->rates.pct_peak_flops,                                                   \
      "100 * gflops_per_s / the compute peak at the point's threads: the workload's `peak_gflops`, else the roof "     \
      "of the path that ran: `roof_amx_gflops(_1t)` for prefill phases on the amx path with bf16 weights, else "       \
      "`roof_fma_gflops_1t` for 1 thread, `roof_fma_gflops` for more")                                                 \
    X(pct_peak_bw, "REAL", 1, REAL, 1, rec->rates.pct_peak_bw,                                                         \
      "100 * gbytes_per_s / the bandwidth at the point's threads: the workload's `peak_gbps`, else the triad roof (1 " \
      "thread or all)")                                                                                                \
    X(seconds_total, "REAL", 1, REAL, rec->r->have_engine, rec->r->seconds_total,                                      \
      "wall time of the point including fills and warm-ups")                                                           \
    X(timed_seconds, "REAL", 3, REAL, 1, rec->rates.counted_seconds,                                                   \
      "the seconds the point's counters cover (its timed repetitions); NULL without counters")                         \
    X(triad_before_gbps, "REAL", 4, REAL, rec->r->triad_before > 0, rec->r->triad_before,                              \
      "decode / throughput points: the triad at the point's threads (the roofs' 3 × 128 MiB, best of ≥ 3 in 0.15 s "   \
      "after the first touch) measured right after the depth fill, before the warm-ups; NULL for other phases, with "  \
      "`bandwidth_probe: off`, or when the probe's arrays do not fit the memory budget (the status says so)")          \
    X(triad_after_gbps, "REAL", 4, REAL, rec->r->triad_after > 0, rec->r->triad_after,                                 \
      "the same probe right after the last timed repetition")                                                          \
    X(estimated_seconds, "REAL", 5, REAL, rec->r->estimated_seconds > 0, rec->r->estimated_seconds,                    \
      "the time estimate the budget check used (refused: = refused_seconds); NULL for the first point of its series "  \
      "when no rate was known yet; against seconds_total it shows how good the estimates are")                         \
    X(source, "TEXT NOT NULL DEFAULT 'ctxbench'", 7, TEXT, 1, rec->source ? rec->source : "ctxbench",                 \
      "who measured the point: `ctxbench` (a sweep), or `peer` (imported from another tool by `ctxbench import`, "    \
      "engine = the tool's name, details in `peer_tests`; docs/peers.md)")                                                                                        \
    X(params_total, "INTEGER", 9, INT, rec->params_total > 0, rec->params_total,                                       \
      "the model's parameters, every routed expert included (from its config); NULL when the config did not load")     \
    X(params_active, "INTEGER", 9, INT, rec->params_active > 0, rec->params_active,                                    \
      "the parameters one token reads: params_total less the routed experts it does not run (equal to params_total "   \
      "without routed experts)")                                                                                       \
    X(batch_asked, "INTEGER", 10, INT, 1, rec->def->batch,                                                             \
      "the batch the workload asked for (throughput `max`: 0; `batch` is the one used); rows stored before version "   \
      "10 get it from their point_key")

/* The value rows stored before a column existed get when the migration adds it (an SQL expression over
 * their other columns; a column not listed stays NULL there). X(name, expression) */
#define CB_POINT_BACKFILL(X) X(batch_asked, CB_KEY_FIELD_5)
/* point_key's fifth field (the batch as asked, as an integer): engine|model|phase|context|batch|... */
#define CB_KEY_AFTER_BAR(x) "substr(" x ", instr(" x ", '|') + 1)"
#define CB_KEY_FIELD_5_REST CB_KEY_AFTER_BAR(CB_KEY_AFTER_BAR(CB_KEY_AFTER_BAR(CB_KEY_AFTER_BAR("point_key"))))
#define CB_KEY_FIELD_5 "CAST(substr(" CB_KEY_FIELD_5_REST ", 1, instr(" CB_KEY_FIELD_5_REST ", '|') - 1) AS INTEGER)"

typedef enum { CB_COL_KEY, CB_COL_INT, CB_COL_REAL, CB_COL_TEXT } cb_col_kind;

typedef struct {
    const char *name, *decl; /* decl: SQL type and constraints; its first word is the documented type */
    int since;               /* schema version that added the column */
    cb_col_kind kind;
    const char *doc;         /* the docs/schema.md meaning, verbatim */
} cb_column;

extern const cb_column cb_point_columns[];
extern const int cb_point_column_count;

/* The SQL the table generates (malloc'd; NULL when out of memory). */
char *cb_points_create_sql(void);            /* CREATE TABLE points of schema version 1 */
/* ALTER TABLE ... ADD COLUMN of the columns `version` added, each followed by its CB_POINT_BACKFILL update
 * ("" if none) */
char *cb_points_add_columns_sql(int version);
char *cb_points_insert_sql(void);            /* INSERT INTO points (every column but id) VALUES (?, ...) */
/* "p1.c1, p1.c2, ..." over every column but id and run_id, each with `prefix` (merge copies those by name). */
char *cb_points_column_list(const char *prefix);

#endif
