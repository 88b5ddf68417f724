-- Rows for a small results database used by the plot/report tests: the tests create the schema with the
-- harness's store API (cb_store_open, docs/schema.md) and then run this file. A handful of points of every
-- label; numbers are invented but of the right shape — nothing here is a measurement.
INSERT INTO runs (id, started_utc, workload_name, workload_text, workload_hash, shard, git_commit, compiler, cpu_model, cores_online, threads_used,
  kernel_path, papi_components, peak_gflops, peak_gbps, peak_source)
VALUES (1, '2026-11-22T08:00:00Z', 'fixture', 'name: fixture', '0', '0/1', 'abc1234', 'gcc 12.2', 'Fixture CPU (test data)', 2, 2,
  'avx512-bf16', 'perf_event:disabled (no PMU) sde:active', 660.0, 78.0, 'fixture');

-- Timed points: three archs x contexts 4K..64K, prefill and decode, all 'measured'.
WITH RECURSIVE ctx(c) AS (SELECT 4096 UNION ALL SELECT c * 2 FROM ctx WHERE c < 65536),
arch(a, e, m, kp, kd) AS (VALUES ('transformer', 'transformer', 'transformer-xs', 2.0e-4, 2.0e-9),
                                 ('mamba2', 'mamba2', 'mamba2-xs', 9.0e-5, 0.0),
                                 ('hybrid', 'bamba', 'bamba-xs', 1.1e-4, 3.0e-10))
INSERT INTO points (point_key, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,
  fill, label, status, unit, n_samples, median, ci_lo, ci_hi, cv, noisy)
SELECT 'fixture', 1, e, m, a, 'prefill', c, 1, 2, 'fast', 'bf16', 'bf16', 'real', 'measured', 'ok', 'seconds', 5,
       kp * c + kd * c * c, 0.97 * (kp * c + kd * c * c), 1.04 * (kp * c + kd * c * c), 0.02, 0
FROM ctx, arch
UNION ALL
SELECT 'fixture', 1, e, m, a, 'decode', c, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'measured', 'ok', 'seconds_per_token', 5,
       0.01 + kd * 2000 * c, 0.95 * (0.01 + kd * 2000 * c), 1.06 * (0.01 + kd * 2000 * c), 0.03, 0
FROM ctx, arch;

-- 128K sampled prefill, 512K analytic, 1M refused (transformer) and a 1M bamba decode.
INSERT INTO points (point_key, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,
  fill, label, status, unit, median, ci_lo, ci_hi, samples_k, refused_bytes, refused_seconds) VALUES
 ('fixture', 1, 'transformer', 'transformer-xs', 'transformer', 'prefill', 131072, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'sampled', 'ok', 'seconds', 60.5, 57.0, 64.0, 4, NULL, NULL),
 ('fixture', 1, 'bamba', 'bamba-xs', 'hybrid', 'prefill', 131072, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'sampled', 'ok', 'seconds', 19.5, 18.8, 20.4, 4, NULL, NULL),
 ('fixture', 1, 'mamba2', 'mamba2-xs', 'mamba2', 'prefill', 131072, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'sampled', 'ok', 'seconds', 11.8, 11.5, 12.2, 4, NULL, NULL),
 ('fixture', 1, 'bamba', 'bamba-xs', 'hybrid', 'prefill', 524288, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'analytic', 'ok', 'seconds', 140.0, NULL, NULL, NULL, NULL, NULL),
 ('fixture', 1, 'transformer', 'transformer-xs', 'transformer', 'prefill', 524288, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'analytic', 'ok', 'seconds', 650.0, NULL, NULL, NULL, NULL, NULL),
 ('fixture', 1, 'transformer', 'transformer-xs', 'transformer', 'prefill', 1048576, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'refused', 'over the time budget', 'seconds', NULL, NULL, NULL, NULL, NULL, 2400.0),
 ('fixture', 1, 'transformer', 'transformer-xs', 'transformer', 'decode', 1048576, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'refused', 'over the memory budget', 'seconds_per_token', NULL, NULL, NULL, NULL, 34359738368, NULL),
 ('fixture', 1, 'bamba', 'bamba-xs', 'hybrid', 'decode', 1048576, 1, 2, 'fast', 'bf16', 'bf16', 'synthetic', 'measured', 'ok', 'seconds_per_token', 0.0215, 0.0205, 0.0230, NULL, NULL, NULL);

-- Batched decode (throughput@N x B): median is the time of one decode step of the whole batch.
WITH RECURSIVE b(n) AS (SELECT 1 UNION ALL SELECT n * 2 FROM b WHERE n < 16),
ctx(c) AS (VALUES (4096), (32768), (131072)),
arch(a, e, m, kd) AS (VALUES ('transformer', 'transformer', 'transformer-xs', 2.0e-9),
                             ('mamba2', 'mamba2', 'mamba2-xs', 0.0), ('hybrid', 'bamba', 'bamba-xs', 3.0e-10))
INSERT INTO points (point_key, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,
  fill, label, status, unit, median, ci_lo, ci_hi)
SELECT 'fixture', 1, e, m, a, 'throughput', c, n, 2, 'fast', 'bf16', 'bf16', 'synthetic',
       CASE WHEN a = 'transformer' AND c = 131072 AND n > 4 THEN 'refused' ELSE 'measured' END, 'ok', 'seconds_per_step',
       0.01 + 0.002 * n + kd * 2000 * c * n, 0.96 * (0.01 + 0.002 * n + kd * 2000 * c * n),
       1.05 * (0.01 + 0.002 * n + kd * 2000 * c * n)
FROM b, ctx, arch;
UPDATE points SET median = NULL, ci_lo = NULL, ci_hi = NULL, refused_bytes = 4294967296 * batch,
  status = 'over the memory budget' WHERE label = 'refused' AND phase = 'throughput';

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

-- SDE counters and the derived roofline columns for the measured prefill and decode points; no PMU.
INSERT INTO counters (point_id, event, value, status)
SELECT id, 'sde:::ctxbench::flops', CAST(CASE phase WHEN 'prefill' THEN 2.0e7 * context ELSE 2.0e8 END AS INTEGER), 'ok'
FROM points WHERE label = 'measured' AND phase IN ('prefill', 'decode') AND batch = 1
UNION ALL
SELECT id, 'PAPI_TOT_CYC', NULL, 'unavailable: perf_event component disabled (no PMU)'
FROM points WHERE label = 'measured' AND phase = 'prefill' AND context = 4096;
UPDATE points SET gflops_per_s = CASE phase WHEN 'prefill' THEN 2.0e7 * context ELSE 2.0e8 END / median / 1e9,
  arith_intensity = CASE phase WHEN 'prefill' THEN 1024.0 ELSE 1.0 END
WHERE label = 'measured' AND phase IN ('prefill', 'decode') AND batch = 1;

-- An 8-bit weights point for C4 (storage only; no perplexity table in this fixture).
INSERT INTO points (point_key, id, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype,
  kv_dtype, fill, label, status, unit, median, ci_lo, ci_hi) VALUES
 ('fixture', 900, 1, 'bamba', 'bamba-xs', 'hybrid', 'decode', 4096, 1, 2, 'fast', 'int8', 'bf16', 'synthetic', 'measured', 'ok',
  'seconds_per_token', 0.007, 0.0068, 0.0073);
INSERT INTO memory (point_id, category, source, bytes) VALUES (900, 'weights', 'engine', 250000000),
  (900, 'weights', 'analytic', 250000000);

-- C1: analytic memory points of the 9b presets (what `ctxbench run workloads/claims` stores for phase memory):
-- KV bytes/token = layers_with_kv x 8 KV heads x 128 x 2 (K and V) x 2 (bf16); SSM state 128 x 64 x 128 x 4 B per layer.
WITH ctx(c) AS (VALUES (4096), (32768), (131072), (1048576)),
m(e, model, a, kvl, ssml) AS (VALUES ('transformer', 'transformer-9b', 'transformer', 32, 0),
                                   ('mamba2', 'mamba2-9b', 'mamba2', 0, 32), ('bamba', 'bamba-9b', 'hybrid', 3, 29))
INSERT INTO points (point_key, run_id, engine, model, arch, phase, context, batch, threads, mode, weight_dtype, kv_dtype,
  fill, label, status, unit, median)
SELECT 'fixture-c1', 1, e, model, a, 'memory', c, 1, 2, 'fast', 'bf16', 'bf16', 'none', 'analytic', 'ok', 'bytes',
       kvl * 4096 * c + ssml * 4194304
FROM ctx, m;
INSERT INTO memory (point_id, category, source, bytes)
SELECT p.id, 'kv_cache', 'analytic', CASE p.arch WHEN 'transformer' THEN 32 WHEN 'hybrid' THEN 3 ELSE 0 END * 4096 * p.context
FROM points p WHERE p.point_key = 'fixture-c1'
UNION ALL
SELECT p.id, 'ssm_state', 'analytic', CASE p.arch WHEN 'mamba2' THEN 32 WHEN 'hybrid' THEN 29 ELSE 0 END * 4194304
FROM points p WHERE p.point_key = 'fixture-c1';

-- tokens/s as the sweep stores it (harness/results/derive.c): prefill N/median, decode 1/median,
-- throughput B/median.
UPDATE points SET tokens_per_s = CASE phase WHEN 'prefill' THEN context / median WHEN 'decode' THEN 1 / median
  WHEN 'throughput' THEN batch / median END
WHERE median IS NOT NULL AND phase <> 'memory';
