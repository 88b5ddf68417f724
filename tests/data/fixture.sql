-- A small results database for the plot/report tests: the schema that `ctxbench plot` and
-- `ctxbench report` read (issue 6's tables, the columns docs/figures.md lists), plus a handful of points
-- of every label. Numbers are invented but of the right shape; nothing here is a measurement.
PRAGMA user_version = 1;
CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT, workload TEXT, git_commit TEXT,
  cpu_model TEXT, cores INTEGER, threads INTEGER, compiler TEXT, kernel_path TEXT,
  papi_components TEXT, peak_gflops REAL, peak_gbps REAL);
CREATE TABLE points (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id), engine TEXT, model TEXT,
  arch TEXT, phase TEXT, context INTEGER, batch INTEGER, threads INTEGER, mode TEXT, weight_dtype TEXT,
  kv_dtype TEXT, fill TEXT, label TEXT, median_s REAL, ci_lo_s REAL, ci_hi_s REAL, iqr_s REAL, cv REAL,
  noisy INTEGER, sample_count INTEGER, needed_bytes INTEGER, needed_seconds REAL);
CREATE TABLE samples (point_id INTEGER REFERENCES points(id), rep INTEGER, seconds REAL);
CREATE TABLE memory (point_id INTEGER REFERENCES points(id), category TEXT, source TEXT, bytes INTEGER);
CREATE TABLE counters (point_id INTEGER REFERENCES points(id), event TEXT, value REAL, status TEXT);

INSERT INTO runs VALUES (1, '2026-11-22T08:00:00Z', 'fixture', 'abc1234', 'Fixture CPU (test data)', 2, 2,
  'gcc 12.2', 'avx512_bf16', 'perf_event:disabled sde:enabled', 660.0, 78.0);

-- Timed points, generated: three archs x contexts 4K..64K, prefill and decode, all 'measured';
-- 128K..256K 'sampled' prefill; 1M 'refused' for the transformer; analytic prefill at 512K.
WITH RECURSIVE ctx(c) AS (SELECT 4096 UNION ALL SELECT c * 2 FROM ctx WHERE c < 65536),
arch(a, e, m, kp, kd) AS (VALUES ('transformer', 'transformer', 'transformer-xs', 2.0e-4, 2.0e-9),
                                 ('mamba2', 'mamba2', 'mamba2-xs', 9.0e-5, 0.0),
                                 ('hybrid', 'bamba', 'bamba-xs', 1.1e-4, 3.0e-10))
INSERT INTO points (run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,
  fill, label, median_s, ci_lo_s, ci_hi_s, iqr_s, cv, noisy, sample_count)
SELECT 1, e, m, a, 'prefill', c, 1, 2, 'fast', 'bf16', 'bf16', 'real', 'measured',
       kp * c + kd * c * c, 0.97 * (kp * c + kd * c * c), 1.04 * (kp * c + kd * c * c), 0.02, 0.02, 0, NULL
FROM ctx, arch
UNION ALL
SELECT 1, e, m, a, 'decode', c, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'measured',
       0.01 + kd * 2000 * c, 0.95 * (0.01 + kd * 2000 * c), 1.06 * (0.01 + kd * 2000 * c), 0.001, 0.03, 0, NULL
FROM ctx, arch;

INSERT INTO points (run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,
  fill, label, median_s, ci_lo_s, ci_hi_s, sample_count, needed_bytes, needed_seconds) VALUES
 (1, 'transformer', 'transformer-xs', 'transformer', 'prefill', 131072, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'sampled', 60.5, 57.0, 64.0, 4, NULL, NULL),
 (1, 'bamba', 'bamba-xs', 'hybrid', 'prefill', 131072, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'sampled', 19.5, 18.8, 20.4, 4, NULL, NULL),
 (1, 'mamba2', 'mamba2-xs', 'mamba2', 'prefill', 131072, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'sampled', 11.8, 11.5, 12.2, 4, NULL, NULL),
 (1, 'bamba', 'bamba-xs', 'hybrid', 'prefill', 524288, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'analytic', 140.0, NULL, NULL, NULL, NULL, NULL),
 (1, 'transformer', 'transformer-xs', 'transformer', 'prefill', 524288, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'analytic', 650.0, NULL, NULL, NULL, NULL, NULL),
 (1, 'transformer', 'transformer-xs', 'transformer', 'prefill', 1048576, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'refused', NULL, NULL, NULL, NULL, NULL, 2400.0),
 (1, 'transformer', 'transformer-xs', 'transformer', 'decode', 1048576, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'refused', NULL, NULL, NULL, NULL, 34359738368, NULL),
 (1, 'bamba', 'bamba-xs', 'hybrid', 'decode', 1048576, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'measured', 0.0215, 0.0205, 0.0230, NULL, NULL, NULL);

-- Batched decode (throughput@N x B): median_s is the time of one decode step of the whole batch.
WITH RECURSIVE b(n) AS (SELECT 1 UNION ALL SELECT n * 2 FROM b WHERE n < 16),
ctx(c) AS (VALUES (4096), (32768), (131072)),
arch(a, e, m, kd) AS (VALUES ('transformer', 'transformer', 'transformer-xs', 2.0e-9),
                             ('mamba2', 'mamba2', 'mamba2-xs', 0.0), ('hybrid', 'bamba', 'bamba-xs', 3.0e-10))
INSERT INTO points (run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,
  fill, label, median_s, ci_lo_s, ci_hi_s)
SELECT 1, e, m, a, 'throughput', c, n, 2, 'fast', 'bf16', 'bf16', 'synthetic',
       CASE WHEN a = 'transformer' AND c = 131072 AND n > 4 THEN 'refused' ELSE 'measured' END,
       0.01 + 0.002 * n + kd * 2000 * c * n, 0.96 * (0.01 + 0.002 * n + kd * 2000 * c * n),
       1.05 * (0.01 + 0.002 * n + kd * 2000 * c * n)
FROM b, ctx, arch;
UPDATE points SET median_s = NULL, ci_lo_s = NULL, ci_hi_s = NULL, needed_bytes = 4294967296 * batch
 WHERE label = 'refused' AND phase = 'throughput';

-- Memory by category, analytic (from the plan) and engine-accounted, for every prefill point.
WITH per(arch, kvb, ssm, w) AS (VALUES ('transformer', 65536, 0, 500000000),
                                       ('mamba2', 0, 4194304, 480000000), ('hybrid', 6144, 3800000, 490000000))
INSERT INTO memory (point_id, category, source, bytes)
SELECT p.id, cat.c, src.s,
       CASE cat.c WHEN 'weights' THEN per.w WHEN 'kv_cache' THEN per.kvb * p.context
                  WHEN 'ssm_state' THEN per.ssm WHEN 'conv_state' THEN per.ssm / 64 ELSE 8388608 END
FROM points p JOIN per ON per.arch = p.arch,
     (SELECT 'weights' AS c UNION ALL SELECT 'kv_cache' UNION ALL SELECT 'ssm_state'
      UNION ALL SELECT 'conv_state' UNION ALL SELECT 'scratch') cat,
     (SELECT 'analytic' AS s UNION ALL SELECT 'engine') src
WHERE p.phase = 'prefill' AND (p.label != 'analytic' OR src.s = 'analytic') AND p.label != 'refused';

-- SDE counters (flops and bytes moved) for the measured prefill and decode points; the PMU is absent.
INSERT INTO counters (point_id, event, value, status)
SELECT id, 'sde:::ctxbench::flops', CASE phase WHEN 'prefill' THEN 2.0e7 * context ELSE 2.0e8 END, 'ok'
FROM points WHERE label = 'measured' AND phase IN ('prefill', 'decode') AND batch = 1
UNION ALL
SELECT id, 'sde:::ctxbench::weight_bytes_read', CASE phase WHEN 'prefill' THEN 1.0e7 * (context / 512) ELSE 2.0e8 END, 'ok'
FROM points WHERE label = 'measured' AND phase IN ('prefill', 'decode') AND batch = 1
UNION ALL
SELECT id, 'PAPI_TOT_CYC', NULL, 'unavailable: perf_event component disabled (no PMU)'
FROM points WHERE label = 'measured' AND phase = 'prefill' AND context = 4096;

-- An 8-bit weights point for C4 (storage only; no perplexity table in this fixture).
INSERT INTO points (id, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype,
  kv_dtype, fill, label, median_s, ci_lo_s, ci_hi_s) VALUES
 (900, 1, 'bamba', 'bamba-xs', 'hybrid', 'decode', 4096, 1, 2, 'fast', 'int8', 'bf16', 'synthetic', 'measured', 0.007, 0.0068, 0.0073);
INSERT INTO memory VALUES (900, 'weights', 'engine', 250000000), (900, 'weights', 'analytic', 250000000);
