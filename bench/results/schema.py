"""The results-file contract: version, statuses, required fields and the check a file must pass.

A results file is one JSON document per run (DESIGN.md, "The results file"):
``schema_version``, a ``run`` block, a ``machine`` block and ``measurements``.
Each measurement names ``suite case mode backend status``; everything else is
optional and read through :class:`xpubench.results.view.Measurement`.

Fields added since version 1 (old files without them still read; a suite that adds
a field documents it here):

- ``time_s.samples``: per-round seconds per step (the significance tests read them);
- ``memory.device_method`` / ``memory.host_method``: the method of each peak;
- ``energy.joules_per_unit`` / ``energy.is_estimate``: per unit of work; a modelled estimate;
- ``roofline``: achieved FLOP/s and bytes/s against the ceilings (``xpubench.hardware.roofline.FIELDS``);
- ``warnings`` (list of text) and ``notes`` (what a builder noted, e.g. the implementation);
- ``run.leg``: the nightly-matrix leg a run belongs to.
- distributed suite: ``world_size``, ``nnodes``, ``scaling`` (weak|strong),
  ``per_device_throughput_per_s`` (``throughput_per_s`` is global), ``scaling_efficiency``
  (throughput(W) / (W x throughput(1)) of the same run) with ``scaling_efficiency_ci95`` and
  ``scaling_efficiency_method``, ``communication`` {``share``, ``step_without_exchange_s``,
  ``method``}, ``ranks`` (every rank's own median), ``devices``, ``simulated_devices``,
  ``launch`` {``command``, ``wall_s``, ``threads_per_rank``, ``stragglers_killed``}, and on a
  failure ``failed_rank`` (time_s is the slowest rank's per round);
- ``time_s.confidence`` / ``time_s.n_eff`` / ``time_s.tau``: what the median's CI reaches (below 0.95
  only with too few rounds), the rounds counted as independent ones, their autocorrelation time;
- ``time_s.processes`` (``--repeat K``): one entry per fresh process ``{pass, status, median, ci95,
  rounds, samples, worker_pid, host: {cpu_affinity, numa_nodes, thp, malloc}, ...}``; the headline ``median``
  and ``ci95`` are then the process-level ones (``time_s.level = "processes"``, ``process_spread``);
- ``pass``: the pass of the interleaved plan that measured a record (0-based; gone once K passes merge);
- ``paired`` (the confirmation's records, ``compare --confirm-out``): ``{pair, lead, side, env}`` when
  BASE's and NEW's workers took turns round by round (xpubench.run.paired): the pair's id, the side
  that went first, this record's side and the environment its worker was given; each process entry
  then has ``pair``, and ``time_s.stop_reason`` is ``turns``;
- ``process``: the worker's pid, CPU affinity, NUMA nodes, transparent-huge-pages mode and ``malloc``
  (``{settled, glibc, block_bytes}`` or ``{settled: false, why}``: xpubench.run.allocator);
- ``injected_slowdown``: ``{pattern, fraction, delay_s, spin, delivered_ab, ab_pairs, ab_plain_s}`` of
  ``--inject-slowdown`` (validation only): the spin's tuned share, the last in-process A/B, its
  pairs of blocks and the plain step's seconds in that process;
- ``run.schedule``: ``{order, seed, repeat}`` of the interleaved plan; ``run.twin_ratios``: each twin
  pair's ratio (bf16/fp32, jax/torch) with its CI and method (docs/verdicts.md);
- ``flops_kind`` (matmul | vector), ``working_set_bytes``, ``bytes_element_size``: what the work is and
  the element size its bytes were counted at; ``roofline`` gains ``flops_kind``, ``peak_source``,
  ``theoretical_peak_flops_per_s``, ``mfu_theoretical``, ``cache_bytes``, ``cache_resident``,
  ``above_roof`` and ``warnings`` (the likely cause of a figure above 1);
- ``memory.host_peak_bytes`` is the case's own peak above a baseline taken before its build;
  ``memory.host_rss_peak_bytes`` the process's whole RSS peak; energy without a meter is
  ``unavailable`` ("not measured") unless ``--energy-estimate``;
- ``latency_s``: ``{p50, p90, p99, calls}`` of latency cases (``params.latency``);
- ``case_wall_s``: the case's whole cost in its worker (build, compile, warm-up, rounds, fp32 check);
  ``error_vs_fp32`` of a reduced precision comes from the run's fp32 slot of the same case where the
  run had one (``xpubench.measure.reference``), else from an fp32 twin built in the same worker;
- convergence suite (mode ``train_to_target``, status ``not_converged``): ``seed``, ``metric_name``,
  ``higher_is_better``, ``target``, ``time_to_target_s``, ``steps_to_target``, ``epochs_to_target``,
  ``best_metric``, ``best_epoch``, ``final_metric``, ``restored_metric``, ``epochs``, ``steps``,
  ``curve`` (per epoch), ``early_stopping`` and ``budget``.
"""

from __future__ import annotations

from typing import Any

from xpubench.errors import UserError

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "oom", "timeout", "crashed", "diverged", "error", "not_converged")
FAILED_STATUSES = frozenset(STATUSES) - {"ok", "skipped"}
MEASUREMENT_REQUIRED = ("suite", "case", "mode", "backend", "status")


class ResultsFileError(UserError):
    """A results file (or report input) that cannot be read: missing, truncated, not ours, or too new."""


def validate(doc: Any, name: str) -> dict:
    """Check a parsed document is one of our run files; raise ResultsFileError if not."""
    if not isinstance(doc, dict) or "schema_version" not in doc or "measurements" not in doc:
        raise ResultsFileError(f"{name}: not an xpubench results file (no schema_version/measurements)")
    v = doc["schema_version"]
    if not isinstance(v, int):
        raise ResultsFileError(f"{name}: schema_version must be an integer, got {v!r}")
    if v > SCHEMA_VERSION:
        raise ResultsFileError(
            f"{name}: schema_version {v} is newer than this xpubench reads ({SCHEMA_VERSION}); upgrade xpubench")
    if v < 1:
        raise ResultsFileError(f"{name}: unknown schema_version {v}")
    if not isinstance(doc.get("run"), dict) or not isinstance(doc.get("machine"), dict):
        raise ResultsFileError(f"{name}: missing the run or machine block")
    ms = doc["measurements"]
    if not isinstance(ms, list):
        raise ResultsFileError(f"{name}: measurements must be a list")
    for i, m in enumerate(ms):
        missing = [k for k in MEASUREMENT_REQUIRED if not isinstance(m, dict) or k not in m]
        if missing:
            raise ResultsFileError(f"{name}: measurement {i} lacks {', '.join(missing)}")
        if m["status"] not in STATUSES:
            raise ResultsFileError(f"{name}: measurement {i} has unknown status {m['status']!r}")
    return doc
