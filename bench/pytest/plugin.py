"""xpubench as a pytest plugin (entry point ``pytest11``: ``xpubench = xpubench.pytest.plugin``): flags and hooks.

Two uses, both through pytest-benchmark's ``benchmark`` fixture, so its terminal
table, ``--benchmark-json``, autosave, compare and ``--benchmark-compare-fail``
work as usual:

* ``pytest --xpubench [--xpu-size smoke] [--xpu-backend torch:cpu:fp32 ...]``
  collects the built-in cases as items ``test_suite[<suite>/<case>:<mode>-<backend>]``
  (without paths on the command line: only them; with paths: those tests too).
* the ``xpu_backend`` fixture, for a user's own benchmarks: a test that takes it
  runs once per selected backend (``--xpu-backend``, default: the backends a plain
  ``xpubench run`` uses here); see xpubench.pytest.fixture.XpuBackend.

The ``--xpu-*`` flags are ``xpubench run``'s options (xpubench.options): both build
the same options object. Without ``--xpubench`` and without a test asking for
``xpu_backend`` the plugin adds nothing to a run: no items, no header lines, no
machine_info. Importing it imports no framework (torch/jax load when a backend is
first set up).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Iterator

import pytest

from xpubench.errors import UserError
from xpubench.options import RunOptions, add_pytest_flags, given_pytest_options
from xpubench.pytest.session import STATE_KEY, SessionState, get_state

CASES_MODULE = "xpubench.pytest.items"
CASES_NODEID = "xpubench"  # fixed: items' full names must not depend on the install path


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("xpubench", "xpubench: device-correct benchmarks on every backend")
    g.addoption("--xpubench", action="store_true", default=False, dest="xpubench",
                help="collect xpubench's built-in cases as pytest-benchmark items "
                     "(with no test paths given, only them)")
    add_pytest_flags(g)  # the `xpubench run` options, as --xpu-backend, --xpu-size, ...


def pytest_configure(config: pytest.Config) -> None:
    try:
        options = RunOptions.from_flags(given_pytest_options(config))
        state = SessionState(options, enabled=bool(config.getoption("xpubench")))
        config.stash[STATE_KEY] = state
        if options.backends:
            state.specs()  # a bad spec is a usage error now, not N failing items later
        if state.enabled:
            state.cases()
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not state.enabled:
        return
    config.addinivalue_line("markers", "xpubench: a built-in xpubench case (collected with --xpubench)")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --xpubench` alone runs the benchmarks, not everything under the
        # current directory (or testpaths) besides.
        config.args = []


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.enabled:
        return None
    o = state.options
    return [f"xpubench: size {o.size}, {len(state.cases())} cases, backends {', '.join(state.specs()) or 'none'}"]


class CasesModule(pytest.Module):
    """xpubench.pytest.items, collected under the fixed node id ``xpubench``."""

    def _getobj(self) -> Any:
        # Import by name, not by path: the module belongs to the installed package.
        return importlib.import_module(CASES_MODULE)

    def istestfunction(self, obj: object, name: str) -> bool:
        return name == "test_suite"  # whatever python_functions the user's config sets

    def istestclass(self, obj: object, name: str) -> bool:
        return False


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[Any]:
    rep = yield
    if isinstance(collector, pytest.Session) and rep.passed:
        state = collector.config.stash.get(STATE_KEY, None)
        if state is not None and state.enabled:
            path = Path(importlib.import_module(CASES_MODULE).__file__)
            rep.result.append(CasesModule.from_parent(collector, path=path, name=CASES_NODEID,
                                                      nodeid=CASES_NODEID))
    return rep


# ------------------------------------------------------------------ the fixture
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "xpu_backend" not in metafunc.fixturenames:
        return
    try:
        specs = get_state(metafunc.config).specs()
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    metafunc.parametrize("xpu_backend", specs, ids=specs, indirect=True)


def _names(node: Any) -> tuple[str, str, dict[str, Any]]:
    """(suite, case, params) of a user's test: module, function, its other parameters."""
    suite = Path(str(getattr(node, "path", "") or "pytest")).stem or "pytest"
    name = getattr(node, "originalname", None) or node.name.split("[")[0]
    cls = getattr(node, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    params = {}
    callspec = getattr(node, "callspec", None)
    if callspec is not None:
        params = {k: v for k, v in callspec.params.items() if k != "xpu_backend"}
    if params:
        name += "[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"
    return suite, name, params


@pytest.fixture
def xpu_backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One selected backend, set up and activated: ``.tensor``, ``.put``, ``.bench`` ...

    Parametrized over ``--xpu-backend`` (default: the backends available here);
    a backend this machine cannot run is a skip with the reason.
    """
    from xpubench.pytest.fixture import XpuBackend

    state = get_state(request.config)
    spec = getattr(request, "param", None)
    if spec is None:  # requested dynamically (getfixturevalue): the first selected backend
        specs = state.specs()
        if not specs:
            pytest.skip("no xpubench backend available here")
        spec = specs[0]
    backend = state.backend(spec)
    state.used = True
    backend.activate()
    suite, case, params = _names(request.node)
    yield XpuBackend(backend, state, suite=suite, case=case, params=params)
    try:
        backend.release()
    except Exception:
        pass


# ------------------------------------------------------- pytest-benchmark hooks
@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Add our machine fingerprint (only to runs that used xpubench)."""
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.used:
        return
    fp = state.fingerprint()
    machine_info["xpubench"] = fp
    # The pytest-JSON reader of `xpubench report` looks for these at the top level.
    for key in ("machine_id", "accelerators", "memory_bytes", "software"):
        machine_info.setdefault(key, fp.get(key))
