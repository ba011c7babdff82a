"""Real MNIST: from a local path (IDX files or an ``.npz``), else a checksum-verified cache
that torchvision's loader downloads into.

Where it looks, in order:

1. ``XPUBENCH_MNIST``: a folder holding the four IDX files (``train-images-idx3-ubyte``,
   ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
   each optionally ``.gz``), or an ``.npz`` with ``x_train``, ``y_train``, ``x_test``,
   ``y_test`` (Keras' ``mnist.npz``). Shapes and labels are checked.
2. The cache, ``$XPUBENCH_DATA_DIR/mnist`` (default ``~/.cache/xpubench/mnist``):
   the four ``.gz`` files torchvision keeps under ``MNIST/raw``, each verified against
   its published MD5 before it is read.
3. A download into that cache with ``torchvision.datasets.MNIST`` (``pip install
   'xpubench[mnist]'``), on a machine with network; verified the same way.

Without any of them, :class:`DataUnavailable` says in one line how to provide it.
The 10,000 test images are the held-out set (as in the Keras example).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from xpubench.errors import UserError
from xpubench.suites.datasets import DataUnavailable, ImageSplit

MNIST_ENV = "XPUBENCH_MNIST"
DATA_DIR_ENV = "XPUBENCH_DATA_DIR"
FILES = {  # role -> IDX base name
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
# The published MD5s of the compressed files (the ones torchvision's MNIST checks).
GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
HOW_TO = (f"set {MNIST_ENV} to a folder with the four MNIST IDX files (train-images-idx3-ubyte[.gz], ...) "
          f"or to an mnist.npz (x_train, y_train, x_test, y_test), or install torchvision "
          f"(pip install 'xpubench[mnist]') on a machine with network to download it")

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"), big-endian data.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

Downloader = Callable[[Path], None]


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzip-compressed when its name ends in ``.gz``) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise UserError(f"{path}: IDX file is {len(data)} bytes, its header says {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _find_idx(folder: Path, base: str) -> Path | None:
    # Some mirrors write "train-images.idx3-ubyte" (a dot for the dash).
    names = {base, base.replace("-idx", ".idx")}
    for name in sorted(names):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _checked(arrays: dict[str, np.ndarray], where: str) -> ImageSplit:
    """Shapes, dtypes and labels as MNIST has them; images scaled to [0, 1], NCHW."""
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],) or not len(y):
            raise UserError(f"{where}: {part} set has images {x.shape} and labels {y.shape}; "
                            f"MNIST has (N, 28, 28) and (N,)")
        if y.min() < 0 or y.max() > 9:
            raise UserError(f"{where}: {part} labels outside 0..9")
    scale = 255.0 if arrays["x_train"].dtype == np.uint8 or arrays["x_train"].max() > 1.0 else 1.0

    def images(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) / scale)[:, None, :, :]

    return ImageSplit(images(arrays["x_train"]), arrays["y_train"].astype(np.int64),
                      images(arrays["x_test"]), arrays["y_test"].astype(np.int64), classes=10,
                      notes={"data": f"MNIST 28x28 from {where}: {len(arrays['y_train'])} train / "
                                     f"{len(arrays['y_test'])} held-out (the test set)"})


def read_idx_folder(folder: Path) -> ImageSplit:
    found = {role: _find_idx(folder, base) for role, base in FILES.items()}
    missing = [FILES[r] for r, p in found.items() if p is None]
    if missing:
        raise DataUnavailable(f"{folder}: no {', '.join(missing)} (.gz or not); {HOW_TO}")
    return _checked({role: read_idx(p) for role, p in found.items()}, str(folder))


def read_npz(path: Path) -> ImageSplit:
    with np.load(path) as z:
        missing = [k for k in FILES if k not in z.files]
        if missing:
            raise UserError(f"{path}: lacks {', '.join(missing)} (expected x_train, y_train, x_test, y_test)")
        return _checked({k: z[k] for k in FILES}, str(path))


def read_local(path: Path) -> ImageSplit:
    """``XPUBENCH_MNIST``: a folder of IDX files or an ``.npz``."""
    if path.is_dir():
        return read_idx_folder(path)
    if path.is_file() and path.suffix == ".npz":
        return read_npz(path)
    raise DataUnavailable(f"{MNIST_ENV}={path}: neither a folder nor an .npz file; {HOW_TO}")


def md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(raw: Path, checksums: dict[str, str] = GZ_MD5) -> None:
    """Each cached ``.gz`` against its published MD5; a mismatch is one line saying what to do."""
    for name, want in checksums.items():
        got = md5_of(raw / name)
        if got != want:
            raise UserError(f"{raw / name}: MD5 {got} is not MNIST's {want}; delete {raw} to download it again")


def torchvision_download(root: Path) -> None:
    """Download MNIST into ``root/MNIST/raw`` with torchvision's kept loader (it checks MD5s too)."""
    try:
        from torchvision.datasets import MNIST
    except ImportError:
        raise DataUnavailable(f"MNIST is not on this machine; {HOW_TO}") from None
    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except Exception as e:  # no network, a mirror down: one line, with how to provide it
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataUnavailable(f"MNIST download failed ({first[:200]}); {HOW_TO}") from None


def cache_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "xpubench") / "mnist"


def load_mnist(path: Path | None = None, *, cache: Path | None = None,
               download: Downloader | None = torchvision_download,
               checksums: dict[str, str] = GZ_MD5) -> ImageSplit:
    """MNIST from ``path`` (default ``$XPUBENCH_MNIST``), else the verified cache, else a download."""
    local = path or (Path(os.environ[MNIST_ENV]) if os.environ.get(MNIST_ENV) else None)
    if local is not None:
        return read_local(Path(local))
    cache = cache or cache_dir()
    raw = cache / "MNIST" / "raw"
    if not all((raw / name).is_file() for name in checksums):
        if download is None:
            raise DataUnavailable(f"MNIST is not in {raw}; {HOW_TO}")
        download(cache)
        if not all((raw / name).is_file() for name in checksums):
            raise DataUnavailable(f"the MNIST download left no {', '.join(checksums)} in {raw}; {HOW_TO}")
    verify(raw, checksums)
    split = _checked({role: read_idx(raw / f"{base}.gz") for role, base in FILES.items()}, str(raw))
    split.notes["checksum"] = "md5 of the four .gz files verified"
    return split
