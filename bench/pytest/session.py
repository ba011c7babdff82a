"""The pytest session's xpubench state: the run options, the selected cases and backends, set up once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from xpubench.options import RunOptions

if TYPE_CHECKING:
    from xpubench.backends.base import Backend
    from xpubench.spec.registry import Case


def parse_specs(texts: list[str] | tuple[str, ...]) -> list[str]:
    """Validated, normalized, de-duplicated backend specs (UserError on a bad one)."""
    from xpubench.backends.base import BackendSpec

    out: list[str] = []
    for text in texts:
        spec = str(BackendSpec.parse(text))
        if spec not in out:
            out.append(spec)
    return out


def default_specs() -> list[str]:
    """The specs a plain ``xpubench run`` would use here, that this machine can run."""
    from xpubench.backends.base import default_specs as defaults, make_backend

    return [str(s) for s in defaults() if make_backend(s).availability().ok]


class SessionState:
    """Per-pytest-session state: options, selected cases, backends set up once."""

    def __init__(self, options: RunOptions, enabled: bool = False):
        self.options = options
        self.enabled = enabled  # --xpubench: collect the built-in cases
        self.used = enabled  # set when a case or the xpu_backend fixture ran
        self._specs: list[str] | None = None
        self._cases: dict[str, "Case"] | None = None
        self._backends: dict[str, "Backend | str"] = {}  # spec -> backend, or why not
        self._fingerprint: dict | None = None

    # selection ------------------------------------------------------------
    def specs(self) -> list[str]:
        if self._specs is None:
            self._specs = parse_specs(self.options.backends) if self.options.backends else default_specs()
        return self._specs

    def cases(self) -> dict[str, "Case"]:
        """Selected cases by full name (``suite/case_id:mode``), in suite order."""
        if self._cases is None:
            from xpubench.spec.registry import select

            o = self.options
            self._cases = {c.full_name: c for c in select(list(o.suites) or None, list(o.cases) or None, o.size)}
        return self._cases

    def case_params(self) -> list[Any]:
        """``pytest.param(case, backend)`` for every case x backend; skips carry their reason.

        Cases are the outer loop, so the backends of one case run back to back: slow
        drift of the machine then hits every backend of a case alike.
        """
        from xpubench.backends.base import make_backend

        backends = {spec: make_backend(spec) for spec in self.specs()}
        why_not = {spec: b.availability() for spec, b in backends.items()}
        params = []
        for name, case in self.cases().items():
            for spec, backend in backends.items():
                avail = why_not[spec]
                reason = avail.reason if not avail.ok else backend.skip_reason(case)
                marks = [pytest.mark.skip(reason=f"{spec}: {reason}")] if reason else []
                params.append(pytest.param(name, spec, id=f"{name}-{spec}", marks=marks))
        return params

    def case(self, full_name: str) -> "Case":
        return self.cases()[full_name]

    # backends -------------------------------------------------------------
    def backend(self, spec: str) -> "Backend":
        """The backend for ``spec``, set up on first use; a pytest skip when it cannot run."""
        got = self._backends.get(spec)
        if got is None:
            got = self._backends[spec] = self._setup(spec)
        if isinstance(got, str):
            pytest.skip(f"{spec}: {got}")
        return got

    def _setup(self, spec: str) -> "Backend | str":
        from xpubench.backends.base import make_backend
        from xpubench.measure.case import set_up
        from xpubench.measure.record import one_line
        from xpubench.run.allocator import settle_malloc

        backend = make_backend(spec)
        avail = backend.availability()
        if not avail.ok:
            return avail.reason
        try:
            set_up(backend, self.options)
        except Exception as exc:  # the device is not usable here: every item of it skips
            return f"setup failed: {one_line(exc)}"
        settle_malloc()  # as a worker does: cases start from one allocator state, whatever ran before
        return backend

    def fingerprint(self) -> dict:
        if self._fingerprint is None:
            from xpubench.hardware.fingerprint import fingerprint

            self._fingerprint = fingerprint()
        return self._fingerprint


STATE_KEY = pytest.StashKey[SessionState]()


def get_state(config: Any) -> SessionState:
    state = config.stash.get(STATE_KEY, None)
    if state is None:  # the plugin was not configured (e.g. module used directly)
        state = config.stash[STATE_KEY] = SessionState(RunOptions())
    return state
