#!/usr/bin/env python3
"""The GPU readiness check in timed stages: at most 8 minutes in one call on a lent GPU.

    python3 scripts/gpu_check.py              # on the GPU machine: files land in $OUT
    python3 scripts/gpu_check.py --dry-run    # the same stages on the CPU backends, smoke size
    python3 scripts/gpu_check.py --estimate   # the stages and their cost on one H200; runs nothing

Each stage runs under its own limit and the check's deadline; a run stage cut short keeps
what it measured. The stage time line is printed last and written to summary.md. How the
estimate is made, and how to carry a missing package: docs/gpu.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_check_plan as plan  # noqa: E402  (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "bench", "backends", "suites")  # what `pip install .` reads
GPU_BUDGET_S = 480.0  # 8 minutes of one 10-minute device call
DRY_BUDGET_S = 600.0
STOP_GRACE_S = 20.0  # after SIGTERM an `xpubench run` records what it measured and exits
RESERVE_S = STOP_GRACE_S + 10.0  # a stopped stage's grace, then the summary and the packing
LATER_STAGE_S = 20.0  # the least each later stage is left
MAX_OUT_BYTES = 15 << 20  # the device tool brings back files of up to 16 MiB


@dataclass
class Outcome:
    stage: plan.Stage
    status: str  # ok | failed | timeout | skipped
    seconds: float = 0.0
    limit_s: float = 0.0
    detail: str = ""
    records: Counter = field(default_factory=Counter)  # measurement statuses (run stages)
    bad: list[str] = field(default_factory=list)  # records neither ok nor skipped


class Check:
    def __init__(self, args: argparse.Namespace) -> None:
        self.mode = plan.Mode(dry_run=args.dry_run)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="xpubench-gpu-check-")).resolve()
        if self.work.exists() and any(self.work.iterdir()):
            if not (self.work / "gpu_check.log").exists():  # never empty a folder that is not ours
                raise SystemExit(f"gpu_check: --work {self.work} is not empty and not a gpu_check folder")
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.out = Path(args.out).resolve()
        self.results = self.work / "results"
        self.site = self.work / "site"
        self.py = [args.python]
        self.machine = ["--machine-id", args.machine_id] if args.machine_id else []
        self.wheels = Path(args.wheels) if args.wheels else None
        self.t0 = time.monotonic()
        self.deadline = self.t0 + (args.budget or (DRY_BUDGET_S if args.dry_run else GPU_BUDGET_S))
        self.budget = self.deadline - self.t0
        self.outcomes: list[Outcome] = []
        self.log = open(self.work / "gpu_check.log", "w", encoding="utf-8")
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false",
                        PYTHONPATH=os.pathsep.join([str(self.site)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))

    # ------------------------------------------------------------------ stages
    def stages_before_planning(self) -> list[plan.Stage]:
        src = self.work / "src"
        src.mkdir()
        for name in SOURCES:  # a copy: the build writes its own files next to the sources
            path = ROOT / name
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, src / name)
        pip = self.py + ["-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile",
                         "--disable-pip-version-check", "--target", str(self.site)]
        steps = [pip + ["--no-build-isolation", str(src)]]
        if self.wheels and self.wheels.is_dir() and list(self.wheels.glob("*.whl")):
            steps.append(pip + [str(w) for w in sorted(self.wheels.glob("*.whl"))])
        install = plan.Stage("install", ["sh", "-c", " && ".join(shlex.join(s) for s in steps)], 60.0,
                             plan.FIXED_STAGE_S["install"], note="offline, into a folder on PYTHONPATH")
        smi = ("command -v nvidia-smi >/dev/null && { nvidia-smi --query-gpu=index,name,uuid,driver_version,"
               "memory.total,clocks.max.sm,mig.mode.current --format=csv; nvidia-smi -L; } "
               "|| echo 'nvidia-smi: not found'")
        fingerprint = shlex.join(self.py + ["-m", "xpubench", "env"] + self.machine)
        env = plan.Stage("env", ["sh", "-c", f"{smi}; {fingerprint}"], 30.0, plan.FIXED_STAGE_S["env"],
                         note="nvidia-smi and the fingerprint")
        gpu_tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                           if "pytest.mark.gpu" in p.read_text(encoding="utf-8"))
        tests = plan.Stage("tests", self.py + ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                                               "-m", "gpu", f"--junitxml={self.work / 'tests.xml'}"] + gpu_tests,
                           120.0, plan.FIXED_STAGE_S["tests"], note=f"gpu-marked tests of {len(gpu_tests)} files")
        return [install, env, tests]

    def stages_after_install(self) -> list[plan.Stage]:
        """The rest, planned from the installed registry; a plan that cannot be made is a failed stage."""
        sys.path.insert(0, str(self.site))
        importlib.invalidate_caches()
        try:
            registry = importlib.import_module("xpubench.spec.registry")
            problems = plan.check_patterns(registry, self.mode)
            return self._planned(registry) if not problems else self._plan_failed("; ".join(problems))
        except Exception as exc:  # noqa: BLE001 - a broken suite must still leave a summary
            return self._plan_failed(f"{type(exc).__name__}: {exc}")

    def _plan_failed(self, why: str) -> list[plan.Stage]:
        self._record(Outcome(plan.Stage("plan", None, 0.0, 0.0), "failed", detail=why))
        return []

    def _planned(self, registry) -> list[plan.Stage]:
        devices = [f"{fw}:{self.mode.device(fw)}" for fw in ("torch", "jax")]
        probe = plan.Stage("probe", self.py + ["-m", "xpubench", "probe", "--size", self.mode.size, "--refresh",
                                               "--out", str(self.results)] + self.machine
                           + [a for d in devices for a in ("-b", d)], 120.0, plan.FIXED_STAGE_S["probe"],
                           note="ceilings: matmul per precision, copy, triad, transfers")
        stages = [probe] + plan.measuring_stages(self.mode, registry, self.py, str(self.results), self.machine)
        stages.append(plan.distributed_stage(self.mode, registry, self.py, str(self.results), self.machine,
                                             self._run_help))
        report = plan.Stage("report", self.py + ["-m", "xpubench", "report", str(self.results), "-o",
                                                 str(self.work / "report")], 90.0, plan.FIXED_STAGE_S["report"])
        if subprocess.run(self.py + ["-c", "import plotly"], env=self.env, capture_output=True).returncode:
            report.argv, report.skip = None, "plotly is not importable here (docs/gpu.md: carry its wheel)"
        return stages + [report]

    def _run_help(self) -> str:
        return subprocess.run(self.py + ["-m", "xpubench", "run", "--help"], env=self.env,
                              capture_output=True, text=True).stdout

    # ------------------------------------------------------------------ running
    def run_all(self) -> int:
        self._say(f"gpu_check: {'dry run (CPU backends, smoke size)' if self.mode.dry_run else 'GPU'}; "
                  f"budget {self.budget:.0f} s; work {self.work}; out {self.out}")
        pending = self.stages_before_planning()
        while pending:
            stage = pending.pop(0)
            outcome = self.run_stage(stage, later=pending)
            if stage.name == "install":
                if outcome.status != "ok":
                    self._say("gpu_check: the install failed; nothing else can run")
                    break
                pending += self.stages_after_install()
        self.pack()
        failed = [o for o in self.outcomes if o.status in ("failed", "timeout")
                  or (o.status == "skipped" and o.stage.skip is None)]
        return 1 if failed else 0

    def run_stage(self, stage: plan.Stage, later: list[plan.Stage]) -> Outcome:
        if stage.skip or not stage.argv:
            return self._record(Outcome(stage, "skipped", detail=stage.skip or ""))
        reserve = sum(min(LATER_STAGE_S, s.cap_s) for s in later if not s.skip)
        limit = min(stage.cap_s, self.deadline - time.monotonic() - RESERVE_S - reserve)
        if limit < 5.0:
            return self._record(Outcome(stage, "skipped", limit_s=max(limit, 0.0), detail="out of time"))
        est = "" if self.mode.dry_run else f", estimate on one H200 {stage.expect_s:.0f} s"
        self._say(f"\n== {stage.name} (limit {limit:.0f} s{est}"
                  f"{f', {stage.runs} case runs' if stage.runs else ''}): {stage.command()}")
        before = set(self.results.rglob("*.json")) if self.results.exists() else set()
        start = time.monotonic()
        proc = subprocess.Popen(stage.argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        pump = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        pump.start()
        try:
            rc = proc.wait(timeout=limit)
            status, detail = ("ok", "") if rc == 0 else ("failed", f"exit {rc}")
        except subprocess.TimeoutExpired:
            status, detail = "timeout", self._stop(proc)
        self._kill_group(proc)
        pump.join(5)
        outcome = Outcome(stage, status, time.monotonic() - start, limit, detail)
        after = set(self.results.rglob("*.json")) if self.results.exists() else set()
        self._read_records(outcome, sorted(after - before))
        return self._record(outcome)

    def _pump(self, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            sys.stdout.write(line)
            self.log.write(line)
        sys.stdout.flush()

    def _stop(self, proc: subprocess.Popen) -> str:
        """SIGTERM first: `xpubench run` then writes what it measured (status 'interrupted')."""
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
            return "cut at its limit; what it measured is kept"
        except subprocess.TimeoutExpired:
            self._kill_group(proc)
            proc.wait()
            return f"cut at its limit; killed after {STOP_GRACE_S:.0f} s more"

    @staticmethod
    def _kill_group(proc: subprocess.Popen) -> None:
        try:  # the stage's own process group: workers it left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _read_records(self, outcome: Outcome, files: list[Path]) -> None:
        for path in files:
            if path.name == "ceilings.json":
                continue
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                outcome.bad.append(f"{path.name}: unreadable ({exc})")
                continue
            for m in doc.get("measurements", []):
                outcome.records[m.get("status", "?")] += 1
                if m.get("status") not in ("ok", "skipped"):
                    outcome.bad.append(f"{m.get('suite')}/{m.get('case')}:{m.get('mode')} @ {m.get('backend')}: "
                                       f"{m.get('status')} - {m.get('reason')}")

    def _record(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        self._say(f"-- {outcome.stage.name}: {outcome.status} in {outcome.seconds:.1f} s"
                  + (f" ({outcome.detail})" if outcome.detail else ""))
        return outcome

    def _say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    # ------------------------------------------------------------------ what comes back
    def timeline(self) -> list[str]:
        rows = [("stage", "status", "seconds", "limit", "H200 est.", "runs", "s/run", "records")]
        for o in self.outcomes:
            measured = sum(n for s, n in o.records.items() if s != "skipped")
            est = "-" if self.mode.dry_run else f"{o.stage.expect_s:.0f}"
            rows.append((o.stage.name, o.status, f"{o.seconds:.1f}", f"{o.limit_s:.0f}", est,
                         str(o.stage.runs or ""), f"{o.seconds / measured:.2f}" if measured else "",
                         ", ".join(f"{n} {s}" for s, n in sorted(o.records.items()))))
        total = time.monotonic() - self.t0
        expected = sum(o.stage.expect_s for o in self.outcomes if o.status != "skipped")
        rows.append(("total", "", f"{total:.1f}", f"{self.budget:.0f}",
                     "-" if self.mode.dry_run else f"{expected:.0f}", "", "", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]

    def summary(self, lines: list[str]) -> str:
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        what = "dry run: CPU backends, smoke size" if self.mode.dry_run else "GPU, default size"
        out = [f"# gpu_check ({what}), {when}", "", "## Stage time line", "", "```", *lines, "```", ""]
        out += ["H200 est.: the cost model in scripts/gpu_check_plan.py (docs/gpu.md); s/run: seconds per "
                "measured case run, to recalibrate it.", ""]
        for o in self.outcomes:
            why = o.detail or o.stage.note or o.stage.skip or ""
            out.append(f"- **{o.stage.name}** {o.status}" + (f": {why}" if why else ""))
            if o.stage.argv:
                out.append(f"  `{o.stage.command()}`")
        tests = self._junit()
        if tests:
            out += ["", f"gpu tests: {tests}"]
        bad = [b for o in self.outcomes for b in o.bad]
        if bad:
            out += ["", "## Records neither ok nor skipped", ""] + [f"- {b}" for b in bad[:100]]
        return "\n".join(out) + "\n"

    def _junit(self) -> str:
        path = self.work / "tests.xml"
        if not path.exists():
            return ""
        suite = ET.parse(path).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        keys = ("tests", "failures", "errors", "skipped")
        return ", ".join(f"{suite.get(k, '0')} {k}" for k in keys) if suite is not None else ""

    def pack(self) -> None:
        """At most 5 files in $OUT, none over 16 MiB, no sub-folders (the device tool's limits)."""
        lines = self.timeline()
        self.out.mkdir(parents=True, exist_ok=True)
        for old in ("summary.md", "gpu_check.log", "results.tar.gz", "report.tar.gz", "tests.xml"):
            (self.out / old).unlink(missing_ok=True)
        (self.out / "summary.md").write_text(self.summary(lines), encoding="utf-8")
        self.log.flush()
        log = (self.work / "gpu_check.log").read_bytes()
        (self.out / "gpu_check.log").write_bytes(log[-MAX_OUT_BYTES:])
        if (self.work / "tests.xml").exists():
            shutil.copy2(self.work / "tests.xml", self.out / "tests.xml")
        for name, folder in (("results.tar.gz", self.results), ("report.tar.gz", self.work / "report")):
            if folder.is_dir():
                with tarfile.open(self.out / name, "w:gz") as tar:
                    tar.add(folder, arcname=folder.name)
                if (self.out / name).stat().st_size > MAX_OUT_BYTES:
                    (self.out / name).unlink()
                    self._say(f"gpu_check: {name} is over {MAX_OUT_BYTES >> 20} MiB: left in {self.work}")
        print("\n" + "\n".join(lines), flush=True)


def estimate() -> int:
    """The GPU plan's stages and their cost on one H200, from this environment's registry."""
    registry = importlib.import_module("xpubench.spec.registry")
    mode = plan.Mode(dry_run=False)
    fixed = [plan.Stage(name, [], 0.0, s) for name, s in plan.FIXED_STAGE_S.items() if name != "report"]
    measuring = plan.measuring_stages(mode, registry, ["python3"], "RESULTS", [])
    dist = plan.distributed_stage(mode, registry, ["python3"], "RESULTS", [], lambda: "")
    rows = fixed + measuring + [dist, plan.Stage("report", [], 0.0, plan.FIXED_STAGE_S["report"])]
    for s in rows:
        print(f"{s.name:18s} {s.expect_s:6.0f} s  {f'{s.runs} case runs' if s.runs else '':14s} {s.skip or s.note}")
    total = sum(s.expect_s for s in rows if not s.skip)
    print(f"{'total':18s} {total:6.0f} s  (budget {GPU_BUDGET_S:.0f} s)")
    return 0 if total <= GPU_BUDGET_S else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="the same stages on the CPU backends at smoke size")
    p.add_argument("--estimate", action="store_true", help="print the GPU plan's cost on one H200 and exit")
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "results" / "gpu_check"),
                   help="where the summary, log and archives land (default: $OUT, else results/gpu_check)")
    p.add_argument("--work", help="scratch folder, emptied first (default: a new temporary folder)")
    p.add_argument("--budget", type=float, help=f"seconds for the whole check (default {GPU_BUDGET_S:.0f}; "
                                                 f"dry run {DRY_BUDGET_S:.0f})")
    p.add_argument("--python", default=sys.executable, help="the interpreter that has torch and jax")
    p.add_argument("--machine-id", help="name of this machine in the results (default: from the hardware)")
    p.add_argument("--wheels", default=str(ROOT / ".whl"), help="wheels to install too, e.g. plotly's "
                                                                "(default: .whl/ when it exists)")
    args = p.parse_args(argv)
    if args.estimate:
        return estimate()
    return Check(args).run_all()


if __name__ == "__main__":
    sys.exit(main())
