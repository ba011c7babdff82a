"""The built-in xpubench cases as pytest-benchmark items.

pytest collects this module only when ``--xpubench`` is given (xpubench.pytest.plugin
adds it to the collection under the fixed node id ``xpubench``, so the items'
full names are the same wherever xpubench is installed and
``--benchmark-compare`` matches runs from different checkouts). Each case x
backend is one item, ``test_suite[<suite>/<case_id>:<mode>-<backend>]``, measured
by the same function as ``xpubench run`` with pytest-benchmark's timer plugged in
(xpubench.pytest.timer); the record's fields go into ``extra_info`` under the names
the results file uses.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import pytest

from xpubench.pytest.session import get_state


def pytest_generate_tests(metafunc: Any) -> None:
    if metafunc.function is test_suite:
        metafunc.parametrize(("case", "backend"), get_state(metafunc.config).case_params())


def test_suite(case: str, backend: str, benchmark: Any, request: Any) -> None:
    """One built-in case on one backend, timed by pytest-benchmark's timer."""
    run_case(request.config, case, backend, benchmark)


@contextlib.contextmanager
def recorded_warnings(into: list[str]) -> Iterator[None]:
    """Note each distinct warning (framework notes say something about a measurement, as
    in the results file's ``warnings``), then re-issue them so pytest's filters and
    summary still see them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # once per location: cheap inside timed loops
        try:
            yield
        finally:
            into.extend(sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}"
                                for w in caught}))
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def run_case(config: Any, full_name: str, spec: str, benchmark: Any) -> None:
    """Body of the built-in ``test_suite`` item: one case on one backend."""
    from xpubench.measure.case import measure_case
    from xpubench.measure.convergence import TO_TARGET_MODE
    from xpubench.measure.record import error_record, extra_info_fields
    from xpubench.pytest.timer import BenchmarkTimer
    from xpubench.results.jsonsafe import json_safe

    state = get_state(config)
    case = state.case(full_name)
    if case.mode == TO_TARGET_MODE:  # a whole training run, not a step pytest-benchmark can time
        pytest.skip(f"{full_name} trains to a target: run it with `xpubench run -s {case.suite}`")
    backend = state.backend(spec)
    if benchmark.group is None:
        benchmark.group = full_name  # one table per case: its backends side by side
    seen: list[str] = []
    info: dict[str, Any] = {}
    try:
        with recorded_warnings(seen), BenchmarkTimer(benchmark, backend) as timer:
            info = measure_case(backend, case, state.options, timer=timer, layout=extra_info_fields)
    except Exception as exc:  # pytest shows the traceback; the record says what failed
        info = error_record(case, backend.spec, exc)
        info.pop("traceback", None)
        if info["status"] == "skipped":  # not implemented by the framework for this precision/device
            pytest.skip(f"{spec}: {info['reason']}")
        raise
    finally:
        info.setdefault("error_vs_fp32", None)
        if seen:
            info["warnings"] = list(info.get("warnings") or []) + seen
        benchmark.extra_info.update(json_safe(info))
        try:
            backend.release()
        except Exception:
            pass
    if info["status"] == "skipped":  # re-checked now that the device is known
        pytest.skip(f"{spec}: {info['reason']}")
    if info["status"] == "diverged":
        pytest.fail(f"{full_name} on {spec}: the loss became NaN or Inf (recorded status 'diverged')")

