"""The convergence suite: the train-to-target loop and early stopping on scripted metrics,
the summary over seeds, torch/JAX parity of the models, real smoke runs to a target on
digits, an unreachable target, and the report page's parts."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from xpubench.backends.base import make_backend
from xpubench.measure import convergence as cv
from xpubench.report import convergence as rc
from xpubench.results.schema import STATUSES, validate
from xpubench.results.jsonsafe import json_safe
from xpubench.spec import registry as specmod
from xpubench.spec.registry import Case
from xpubench.suites import convergence as suite


# ------------------------------------------------------------------ a scripted job
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A job whose held-out metric follows a list; its "weights" are the epoch they came from."""

    def __init__(self, metrics: list[float], *, target: float, higher: bool = True, patience: int = 2,
                 min_delta: float = 0.0, max_epochs: int = 50, max_seconds: float = 1e9,
                 clock: FakeClock | None = None, epoch_s: float = 1.0, eval_s: float = 0.25, steps: int = 10):
        self.metrics, self.clock, self.epoch_s, self.eval_s, self.steps = metrics, clock, epoch_s, eval_s, steps
        self.weights = 0  # the epoch whose training produced the current weights
        self.restored_to: list[int] = []
        self.job = cv.TrainToTarget(
            train_epoch=self.train_epoch, evaluate=self.evaluate, get_state=lambda: self.weights,
            set_state=self.set_state, metric="accuracy", higher_is_better=higher, target=target,
            steps_per_epoch=steps, budget=cv.Budget(max_epochs, max_seconds),
            early_stopping=cv.EarlyStopping(patience, min_delta))

    def train_epoch(self, epoch: int) -> cv.EpochResult:
        self.weights = epoch
        if self.clock:
            self.clock.now += self.epoch_s
        return cv.EpochResult(self.steps, 1.0 / epoch)

    def evaluate(self) -> float:
        if self.clock:
            self.clock.now += self.eval_s
        return self.metrics[self.weights - 1]

    def set_state(self, weights: int) -> None:
        self.restored_to.append(weights)
        self.weights = weights

    def run(self) -> cv.ConvergenceResult:
        return cv.train_to_target(self.job, clock=self.clock or FakeClock())


def test_reaching_the_target_stops_and_times_it():
    clock = FakeClock()
    s = Scripted([0.5, 0.7, 0.92, 0.95], target=0.9, clock=clock)
    res = s.run()
    assert res.decision == "target_reached" and res.target_epoch == 3 and len(res.curve) == 3
    fields = cv.result_fields(s.job, res, seed=7)
    assert fields["status"] == "ok" and fields["reason"] is None and fields["seed"] == 7
    assert fields["epochs_to_target"] == 3 and fields["steps_to_target"] == 30
    assert fields["time_to_target_s"] == pytest.approx(3 * 1.25)  # training + evaluation, three epochs
    assert fields["train_s"] == pytest.approx(3.0) and fields["eval_s"] == pytest.approx(0.75)
    assert fields["best_metric"] == fields["final_metric"] == 0.92 and s.restored_to == []
    assert [p["metric"] for p in fields["curve"]] == [0.5, 0.7, 0.92]
    assert fields["time_s"]["median"] == pytest.approx(0.1) and fields["time_s"]["rounds"] == 3


def test_early_stopping_stops_on_a_plateau_and_restores_the_best_weights():
    s = Scripted([0.5, 0.8, 0.7, 0.79, 0.6, 0.99], target=0.95, patience=3)
    res = s.run()
    assert res.decision == "plateau" and res.decision in cv.DECISIONS
    assert len(res.curve) == 5  # best at epoch 2, then three evaluations without improvement
    assert res.best_epoch == 2 and res.best_metric == 0.8
    assert s.restored_to == [2] and s.weights == 2  # the weights of epoch 2 are back
    assert res.restored_epoch == 2 and res.restored_metric == 0.8
    fields = cv.result_fields(s.job, res, seed=0)
    assert fields["status"] == "not_converged"
    assert fields["best_metric"] == 0.8 and fields["final_metric"] == 0.6
    assert fields["early_stopping"] == {"patience": 3, "min_delta": 0.0, "restore_best_weights": True,
                                        "decision": "plateau", "stopped_epoch": 5, "restored_epoch": 2}
    assert "not reached" in fields["reason"] and "best 0.8 at epoch 2" in fields["reason"]
    assert fields["time_to_target_s"] is None and fields["epochs_to_target"] is None


def test_improvements_below_min_delta_do_not_reset_patience_but_count_as_best():
    # 0.805 and 0.809 beat 0.8 by less than min_delta: patience runs out at epoch 4,
    # and the weights restored are those of the best figure seen (epoch 3).
    s = Scripted([0.5, 0.8, 0.809, 0.805, 0.9], target=0.95, patience=2, min_delta=0.01)
    res = s.run()
    assert res.decision == "plateau" and len(res.curve) == 4
    assert res.best_epoch == 3 and res.best_metric == 0.809 and s.restored_to == [3]


def test_lower_is_better_metrics():
    s = Scripted([5.0, 4.0, 3.5, 2.9], target=3.0, higher=False)
    res = s.run()
    assert res.decision == "target_reached" and res.target_epoch == 4 and res.best_metric == 2.9


@pytest.mark.parametrize("max_epochs, max_seconds, decision, epochs", [(3, 1e9, "epoch_budget", 3),
                                                                        (50, 2.4, "time_budget", 2)])
def test_budgets_end_a_run_that_still_improves(max_epochs, max_seconds, decision, epochs):
    s = Scripted([0.1 * i for i in range(1, 9)], target=0.99, max_epochs=max_epochs, max_seconds=max_seconds,
                 clock=FakeClock())
    res = s.run()
    assert res.decision == decision and len(res.curve) == epochs
    assert s.restored_to == []  # the last epoch is the best: nothing to restore
    assert cv.result_fields(s.job, res, 0)["status"] == "not_converged"


def test_a_nan_metric_is_diverged():
    s = Scripted([0.5, math.nan, 0.9], target=0.95)
    res = s.run()
    assert res.decision == "diverged" and len(res.curve) == 2
    fields = cv.result_fields(s.job, res, 0)
    assert fields["status"] == "diverged" and "NaN" in fields["reason"]
    assert s.restored_to == [1]  # the last finite best comes back


# ------------------------------------------------------------------ over seeds
def run_record(status: str, t: float | None, seed: int, best: float = 0.9, epochs: int = 5) -> dict[str, Any]:
    return {"suite": "convergence", "case": "mnist_cnn[data=digits]", "mode": cv.TO_TARGET_MODE,
            "backend": "torch:cpu:fp32", "status": status, "seed": seed, "time_to_target_s": t,
            "epochs_to_target": epochs if status == "ok" else None, "steps_to_target": 10 * epochs if t else None,
            "best_metric": best, "metric_name": "accuracy", "target": 0.9, "higher_is_better": True,
            "early_stopping": {"decision": "target_reached" if status == "ok" else "plateau"},
            "curve": [{"epoch": 1, "steps": 10, "time_s": 1.0, "train_s": 0.9, "metric": 0.5, "train_loss": 1.0},
                      {"epoch": 2, "steps": 20, "time_s": t or 2.0, "train_s": 0.9, "metric": best,
                       "train_loss": 0.5}]}


def test_median_time_to_target_over_seeds_and_its_spread():
    runs = [run_record("ok", 3.0, 0), run_record("ok", 5.0, 1), run_record("not_converged", None, 2, best=0.85),
            run_record("skipped", None, 3)]
    s = cv.summarize_seeds(runs)
    assert s["runs"] == 3 and s["converged"] == 2 and s["seeds"] == [0, 1, 2]
    t = s["time_to_target_s"]
    assert t["median"] == 5.0  # median of (3, 5, inf)
    assert (t["min"], t["max"], t["iqr"]) == (3.0, 5.0, 1.0)
    assert t["values"] == [3.0, 5.0, None]
    assert s["epochs_to_target_median"] == 5.0 and s["best_metric_median"] == 0.9


def test_no_median_when_half_the_runs_missed_the_target():
    s = cv.summarize_seeds([run_record("ok", 3.0, 0), run_record("not_converged", None, 1)])
    assert s["time_to_target_s"]["median"] is None and s["converged"] == 1


def test_not_converged_is_a_status_the_results_file_accepts():
    assert "not_converged" in STATUSES
    doc = {"schema_version": 1, "run": {}, "machine": {},
           "measurements": [json_safe(run_record("not_converged", None, 0))]}
    assert validate(json.loads(json.dumps(doc)), "x")["measurements"][0]["status"] == "not_converged"


# ------------------------------------------------------------------ the suite, for real
def ready(spec: str):
    b = make_backend(spec)
    b.setup(1 if b.framework == "torch" else None)  # one torch thread: see test_training_suite
    b.activate()
    return b


@pytest.fixture(scope="module")
def backends():
    return {spec: ready(spec) for spec in ("torch:cpu:fp32", "jax:cpu:fp32")}


def case_named(name: str, size: str = "smoke") -> Case:
    return next(iter(specmod.select(["convergence"], [name], size)))


def test_the_suite_offers_two_cases_to_a_target():
    cases = specmod.select(["convergence"], None, "smoke")
    assert sorted(c.name for c in cases) == ["lstm_lm", "mnist_cnn"]
    assert {c.mode for c in cases} == {cv.TO_TARGET_MODE}
    assert case_named("mnist_cnn", "large").params["data"] == "mnist"


@pytest.mark.parametrize("spec", ["torch:cpu:fp32", "jax:cpu:fp32"])
def test_mnist_cnn_reaches_90_percent_on_digits(backends, spec):
    rec = cv.measure_convergence(backends[spec], case_named("mnist_cnn"), seed=0)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metric_name"] == "accuracy" and rec["target"] == 0.9
    assert rec["best_metric"] >= 0.9 and rec["final_metric"] >= 0.9
    assert 1 <= rec["epochs_to_target"] <= 40 and rec["steps_to_target"] == 11 * rec["epochs_to_target"]
    assert rec["time_to_target_s"] == pytest.approx(rec["curve"][-1]["time_s"])
    assert rec["early_stopping"]["decision"] == "target_reached"
    assert rec["notes"]["parameters"] == 53_002 and "digits" in rec["notes"]["data"]
    assert rec["throughput_per_s"] == pytest.approx(128 / rec["time_s"]["median"])
    if spec.startswith("jax"):
        assert rec["compile_s"] > 0  # ahead of time, apart from the time to target
    json.dumps(json_safe(rec), allow_nan=False)


def test_jax_fp16_trains_to_the_target_with_loss_scaling():
    rec = cv.measure_convergence(ready("jax:cpu:fp16"), case_named("mnist_cnn"), seed=0)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["best_metric"] >= 0.9 and "GradScaler" in rec["notes"]["loss_scaling"]


def test_torch_fp16_on_a_cpu_that_emulates_it_is_skipped_with_the_reason(monkeypatch):
    import torch

    monkeypatch.delenv("XPUBENCH_CPU_FP16", raising=False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {}, raising=False)  # no AVX512-FP16/AMX-FP16
    rec = cv.measure_convergence(ready("torch:cpu:fp16"), case_named("mnist_cnn"))
    assert rec["status"] == "skipped" and "emulated" in rec["reason"]


def test_an_unreachable_target_is_not_converged_with_the_best_figure(backends):
    rec = cv.measure_convergence(backends["torch:cpu:fp32"], case_named("mnist_cnn"), target=1.01, max_epochs=3)
    assert rec["status"] == "not_converged"
    assert rec["time_to_target_s"] is None and rec["epochs"] == 3 and len(rec["curve"]) == 3
    assert rec["best_metric"] == max(p["metric"] for p in rec["curve"]) > 0.1
    assert f"best {rec['best_metric']:.4g}" in rec["reason"] and "epoch budget" in rec["reason"]


def build(backend, name: str, seed: int = 0):
    case = case_named(name)
    return backend.build(Case(case.workload, case.size, case.mode, {**case.params, "seed": seed}))


@pytest.mark.parametrize("name", ["mnist_cnn", "lstm_lm"])
def test_torch_and_jax_models_start_identical(backends, name):
    torch_job, jax_job = (build(backends[s], name) for s in ("torch:cpu:fp32", "jax:cpu:fp32"))
    assert torch_job.notes["parameters"] == jax_job.notes["parameters"]
    t, j = torch_job.check()["loss"], jax_job.check()["loss"]
    assert t == pytest.approx(j, rel=1e-5)  # the same weights and the same batch give the same loss
    assert torch_job.evaluate() == pytest.approx(jax_job.evaluate(), rel=1e-5)


def test_another_seed_starts_elsewhere(backends):
    a, b = build(backends["torch:cpu:fp32"], "mnist_cnn", 0), build(backends["torch:cpu:fp32"], "mnist_cnn", 1)
    assert a.check()["loss"] != b.check()["loss"]


def test_data_order_and_initial_weights_come_from_the_seed_alone():
    task = suite.mnist_task({**case_named("mnist_cnn").params, "seed": 3})
    again = suite.mnist_task({**case_named("mnist_cnn").params, "seed": 3})
    assert np.array_equal(task.train_batches(2), again.train_batches(2))
    assert not np.array_equal(task.train_batches(1), task.train_batches(2))  # reshuffled each epoch
    assert all(np.array_equal(task.init[k], again.init[k]) for k in task.init)
    assert task.train_batches(1).shape == (11, 128) and len(set(task.train_batches(1).ravel())) == 11 * 128


def test_flax_layout_of_the_cnn_matches_torch_on_one_image():
    """The dense input is flattened C,H,W in torch and H,W,C in flax: the permuted kernel
    must give the same first dense layer output."""
    w = suite.mnist_cnn_init(0, 8)
    f = suite.mnist_cnn_to_flax(w)
    pooled = np.random.default_rng(0).standard_normal((64, 2, 2))  # C, H, W
    torch_out = w["fc1.weight"].astype(np.float64) @ pooled.reshape(-1)
    flax_out = pooled.transpose(1, 2, 0).reshape(-1) @ f["fc1"]["kernel"].astype(np.float64)
    np.testing.assert_allclose(torch_out, flax_out, rtol=1e-12)


def test_missing_mnist_skips_the_large_case_with_how_to_provide_it(backends, monkeypatch, tmp_path):
    monkeypatch.setenv("XPUBENCH_MNIST", str(tmp_path))  # an empty folder
    rec = cv.measure_convergence(backends["torch:cpu:fp32"], case_named("mnist_cnn", "large"))
    assert rec["status"] == "skipped"
    assert "XPUBENCH_MNIST" in rec["reason"] and "torchvision" in rec["reason"] and "\n" not in rec["reason"]


# ------------------------------------------------------------------ the report's parts
def test_report_parts_draw_bars_with_spread_and_curves():
    runs = [run_record("ok", 3.0, 0), run_record("ok", 5.0, 1), run_record("ok", 4.0, 2),
            {**run_record("ok", 2.0, 0), "backend": "jax:cpu:bf16"},
            {**run_record("not_converged", None, 1), "backend": "jax:cpu:bf16"},
            {**run_record("ok", 1.0, 0), "mode": "train_step"}]  # not a convergence record: left out
    by_case = rc.groups(runs)
    assert list(by_case) == ["mnist_cnn[data=digits]"]
    gs = by_case["mnist_cnn[data=digits]"]
    assert [g.backend for g in gs] == ["jax:cpu:bf16", "torch:cpu:fp32"] and len(gs[1].runs) == 3
    bars = rc.time_to_target_bars("mnist_cnn", gs)
    fp32 = next(t for t in bars.spec["data"] if t["name"] == "fp32")
    assert fp32["x"] == ["torch:cpu"] and fp32["y"] == [4.0] and fp32["text"] == ["3/3"]
    assert fp32["error_y"]["array"] == [1.0] and fp32["error_y"]["arrayminus"] == [1.0]
    bf16 = next(t for t in bars.spec["data"] if t["name"] == "bf16")
    assert bf16["y"] == [None] and bf16["text"] == ["1/2"]  # half missed the target: no median
    curves = rc.metric_curves("mnist_cnn", gs)
    assert len(curves.spec["data"]) == 5 and sum(t["showlegend"] for t in curves.spec["data"]) == 2
    assert curves.spec["layout"]["shapes"][0]["y0"] == 0.9
    placed: list[str] = []
    html = rc.section_html(runs, lambda fig: placed.append(fig.kind) or "<figure></figure>")
    assert placed == ["time_to_target", "convergence_curve"]
    assert "3/3" in html and "1/2" in html and "plateau, target reached" in html
    assert "<h2>mnist_cnn</h2>" in html and "<code>mnist_cnn[data=digits]</code>" in html


def test_report_escapes_text_from_results_files():
    bad = {**run_record("ok", 3.0, 0), "backend": "torch:cpu:<script>", "case": "x<b>"}
    html = rc.section_html([bad], lambda fig: "")
    assert "<script>" not in html and "&lt;script&gt;" in html
