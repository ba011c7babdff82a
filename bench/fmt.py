"""Numbers as people read them (times, rates, bytes, percents) and percent arguments: the one place."""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

DASH = "\u2013"  # shown where a value is unknown (never 0)


def _known(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def fmt_time(s: float | None, digits: int = 4, unknown: str = DASH) -> str:
    """Seconds with a unit that keeps 1-999 before the point: ``0.00123`` -> ``1.23 ms``."""
    s = _known(s)
    if s is None:
        return unknown
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(s) >= scale:
            return f"{s / scale:.{digits}g} {unit}"
    return f"{s / 1e-9:.{digits}g} ns"


def fmt_si(x: float | None, unit: str = "", digits: int = 3, unknown: str = DASH) -> str:
    """``1.9e12, "FLOP/s"`` -> ``1.9 TFLOP/s``."""
    x = _known(x)
    if x is None:
        return unknown
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale * 0.9995:
            return f"{x / scale:.{digits}g} {prefix}{unit}"
    return f"{x:.{digits}g} {unit}".rstrip()


def fmt_rate(x: float | None, unit: str = "", unknown: str = DASH) -> str:
    """Units per second: ``2443, "samples"`` -> ``2.44 ksamples/s``."""
    return fmt_si(x, f"{unit}/s" if unit else "/s", unknown=unknown)


def fmt_bytes(b: float | None, digits: int = 4, unknown: str = DASH) -> str:
    """Bytes in binary units: ``3 << 20`` -> ``3 MiB``."""
    b = _known(b)
    if b is None:
        return unknown
    for scale, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(b) >= scale:
            return f"{b / scale:.{digits}g} {unit}"
    return f"{b:.0f} B"


def fmt_pct(x: float | None, unknown: str = DASH) -> str:
    """A fraction as a percent with 3 significant digits (``0.612`` -> ``61.2%``)."""
    x = _known(x)
    if x is None:
        return unknown
    p = x * 100
    return f"{p:.0f}%" if abs(p) >= 100 else f"{p:.3g}%"


def fmt_change(ratio: float) -> str:
    """A ratio of new to old as a signed change: ``1.05`` -> ``+5.0%``."""
    return f"{(ratio - 1) * 100:+.1f}%"


def parse_fraction(text: Any, what: str = "value", *, low: float = 0.0, high: float = 1.0) -> float:
    """``"5%"`` or ``0.05`` -> 0.05, strictly between ``low`` and ``high``.

    Raises ValueError with one line saying what is accepted; callers turn it into
    their kind of user error (argparse, UserError). A bare number of 1 or more is
    refused as ambiguous (5 could mean 5% or 500%).
    """
    if isinstance(text, bool):
        raise ValueError(f"{what} {text!r} is not a fraction like 5% or 0.05")
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a fraction like 5% or 0.05") from None
    if not s.endswith("%") and value >= 1 and high <= 1:
        raise ValueError(f"{what} {text!r} is ambiguous; write 5% or 0.05 (a fraction below 1)")
    if math.isnan(value) or not low < value < high:
        raise ValueError(f"{what} {text!r} out of range; use e.g. 5% or 0.05")
    return value


def fraction_arg(what: str, **limits: float) -> Callable[[str], float]:
    """An argparse ``type=`` that reads a fraction with :func:`parse_fraction` (its error as the usage error)."""
    def parse(text: str) -> float:
        try:
            return parse_fraction(text, what, **limits)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = what.lstrip("-").replace("-", "_")  # argparse names the type in some messages
    return parse
