"""Put glibc malloc in one state before any case, in every worker and pytest session, whatever ran before.

glibc serves a large block from a fresh mmap (page faults on first touch, unmapped
on free) until the process frees one such block; then its dynamic mmap threshold
rises to that block's size (at most 32 MiB on 64-bit) and its trim threshold to
twice that, so later blocks of that size reuse heap pages. Which regime a case's
timed steps see thus depended on which cases its worker had measured before: torch
LayerNorm forward+backward ran 2.0-2.4 ms per step in most fresh processes and 3-6.5
ms in a quarter of them (docs/verdicts.md). Freeing one block just under the cap at
worker start puts every worker where any long-running program is once it has freed
its first large buffer; glibc still adapts and trims as it would. Unlike fixed
``mallopt`` settings this keeps the allocator's own policy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from typing import Any, Callable

# Just under glibc's cap on the dynamic mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX,
# 32 MiB with 8-byte longs); a block above the cap would leave the threshold alone.
SETTLE_BYTES = 31 << 20


def _glibc() -> Any | None:
    """The C library, where it is glibc (None on musl, macOS, Windows)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    return libc


def settle_malloc(libc_of: Callable[[], Any | None] = _glibc) -> dict[str, Any]:
    """Raise glibc's dynamic mmap threshold to its cap; what was done, for the record."""
    libc = libc_of()
    if libc is None:
        return {"settled": False, "why": f"not glibc ({platform.libc_ver()[0] or 'unknown C library'})"}
    block = libc.malloc(SETTLE_BYTES)  # above the initial 128 KiB threshold: served by mmap
    if not block:
        return {"settled": False, "why": "malloc of the settling block failed"}
    libc.free(block)  # freeing an mmapped block raises the threshold to its size
    return {"settled": True, "glibc": platform.libc_ver()[1], "block_bytes": SETTLE_BYTES}
