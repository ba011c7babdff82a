"""A byte corpus every machine has offline: the Python standard library's own source files.

Files: every ``*.py`` under ``sysconfig``'s ``stdlib`` folder, outside test folders,
``site-packages`` and caches, in sorted order of their relative paths. The split is a
fixed rule on the path alone: a file whose BLAKE2b hash of its relative path falls
in the lowest tenth goes to validation, the rest to training, so adding a file never
moves another one. Each side is the files' bytes concatenated (a newline between
files), cut at the size asked for. Python versions ship different files: the notes
record the version and a digest of what was read, so two runs can tell they trained
on the same text.
"""

from __future__ import annotations

import hashlib
import platform
import sysconfig
from pathlib import Path

import numpy as np

from xpubench.suites.datasets import DataUnavailable, TextSplit

SKIP_PARTS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})
VAL_BUCKETS = 10  # one bucket in ten goes to validation


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_validation(rel_path: str) -> bool:
    digest = hashlib.blake2b(rel_path.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % VAL_BUCKETS == 0


def source_files(root: Path) -> list[str]:
    """Relative POSIX paths of the corpus's files, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                  if not SKIP_PARTS & set(p.relative_to(root).parts))


def _concat(root: Path, files: list[str], limit: int) -> tuple[np.ndarray, int]:
    out = bytearray()
    used = 0
    for rel in files:
        if len(out) >= limit:
            break
        out += (root / rel).read_bytes() + b"\n"
        used += 1
    return np.frombuffer(bytes(out[:limit]), dtype=np.uint8).copy(), used  # writable: torch.from_numpy


def load_stdlib_text(train_bytes: int, val_bytes: int, root: Path | None = None) -> TextSplit:
    root = root or stdlib_root()
    files = source_files(root) if root.is_dir() else []
    train_files = [f for f in files if not is_validation(f)]
    val_files = [f for f in files if is_validation(f)]
    train, n_train = _concat(root, train_files, train_bytes)
    val, n_val = _concat(root, val_files, val_bytes)
    if len(train) < train_bytes or len(val) < val_bytes:
        raise DataUnavailable(f"the Python standard library under {root} has too little source "
                              f"({len(train)} train / {len(val)} validation bytes of {train_bytes} / "
                              f"{val_bytes} asked); is this Python installed without its .py files?")
    digest = hashlib.blake2b(train.tobytes() + val.tobytes(), digest_size=8).hexdigest()
    return TextSplit(train, val, notes={
        "data": f"Python {platform.python_version()} standard library source: {len(train)} train bytes "
                f"from {n_train} files, {len(val)} validation bytes from {n_val} other files "
                f"(split by path hash, 1 in {VAL_BUCKETS})",
        "data_digest": digest,
    })
