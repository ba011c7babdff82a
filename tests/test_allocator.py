"""settle_malloc: glibc's dynamic mmap threshold raised at worker start, and the branches without glibc."""

import json
import platform
import subprocess
import sys

import pytest

from xpubench.run.allocator import SETTLE_BYTES, settle_malloc


class FakeLibc:
    def __init__(self, address: int = 0x1000):
        self.address, self.calls = address, []

    def malloc(self, size):
        self.calls.append(("malloc", size))
        return self.address

    def free(self, ptr):
        self.calls.append(("free", ptr))


def test_one_block_under_the_cap_is_allocated_and_freed():
    libc = FakeLibc()
    got = settle_malloc(lambda: libc)
    assert libc.calls == [("malloc", SETTLE_BYTES), ("free", 0x1000)]
    assert got["settled"] and got["block_bytes"] == SETTLE_BYTES
    assert SETTLE_BYTES < 32 << 20  # above glibc's cap the threshold would not move


def test_without_glibc_nothing_is_done_and_the_record_says_why():
    got = settle_malloc(lambda: None)
    assert got["settled"] is False and got["why"].startswith("not glibc")


def test_a_failed_malloc_is_recorded_not_raised():
    libc = FakeLibc(address=0)
    got = settle_malloc(lambda: libc)
    assert got == {"settled": False, "why": "malloc of the settling block failed"}
    assert ("free", 0) not in libc.calls


# In a fresh interpreter: is a 16 MiB block served by mmap (mallinfo2's hblkhd grows by it)?
PROBE = """
import ctypes, json, sys
from xpubench.run.allocator import _glibc, settle_malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = _glibc()
libc.mallinfo2.restype = Info
if sys.argv[1] == "settle":
    settle_malloc()
before = libc.mallinfo2().hblkhd
block = libc.malloc(16 << 20)
after = libc.mallinfo2().hblkhd
libc.free(block)
print(json.dumps({"mmapped": after - before >= 16 << 20}))
"""


def _mmapped(mode: str) -> bool:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["mmapped"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc is what is settled")
def test_after_settling_a_large_block_comes_from_the_heap_not_a_fresh_mmap():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallinfo2  # glibc >= 2.33
    except AttributeError:
        pytest.skip("mallinfo2 needs glibc 2.33 or later")
    assert _mmapped("plain") is True  # a fresh process: served by mmap, page faults on every fresh use
    assert _mmapped("settle") is False  # settled: heap pages, reused from step to step


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc is what is settled")
def test_a_real_workers_records_say_the_allocator_was_settled():
    from xpubench.backends.base import BackendSpec
    from xpubench.options import RunOptions
    from xpubench.run.supervisor import Runner
    from xpubench.spec import registry as specmod

    (case,) = [c for c in specmod.select(["normalization"], None, "smoke") if c.name == "layernorm" and c.mode == "forward"]
    opts = RunOptions(size="smoke", time_budget_s=0.02, telemetry=False, seed=0)
    (rec,) = Runner([BackendSpec.parse("torch:cpu:fp32")], [case], None, opts).run().records
    assert rec["process"]["malloc"] == {"settled": True, "glibc": platform.libc_ver()[1], "block_bytes": SETTLE_BYTES}


def test_the_pytest_session_settles_malloc_after_a_backends_set_up(monkeypatch):
    import xpubench.run.allocator as allocator
    from xpubench.options import RunOptions
    from xpubench.pytest.session import SessionState

    calls = []
    monkeypatch.setattr(allocator, "settle_malloc", lambda: calls.append("settled") or {"settled": True})
    state = SessionState(RunOptions(size="smoke", telemetry=False))
    backend = state.backend("torch:cpu:fp32")
    assert calls == ["settled"] and backend.spec is not None
    state.backend("torch:cpu:fp32")  # set up once per session: settled once
    assert calls == ["settled"]
