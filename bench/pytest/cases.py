"""The built-in xpubench cases as pytest-benchmark items.

pytest collects this module only when ``--xpubench`` is given (xpubench.pytest.plugin
adds it to the collection under the fixed node id ``xpubench``, so the items'
full names are the same wherever xpubench is installed and
``--benchmark-compare`` matches runs from different checkouts). Each case x
backend is one item, ``test_suite[<suite>/<case_id>:<mode>-<backend>]``.
"""

from __future__ import annotations

from typing import Any

from xpubench.pytest import session as support


def pytest_generate_tests(metafunc: Any) -> None:
    if metafunc.function is test_suite:
        metafunc.parametrize(("case", "backend"), support.get_state(metafunc.config).case_params())


def test_suite(case: str, backend: str, benchmark: Any, request: Any) -> None:
    """One built-in case on one backend, timed by pytest-benchmark (see xpubench.pytest.session)."""
    support.run_case(request.config, case, backend, benchmark)
