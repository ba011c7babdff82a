"""The convergence suite's data: digits split, the MNIST IDX/npz readers on files written
here, the download path's logic with a fake downloader (cache, checksum, messages), and
the standard-library text corpus and its split rule."""

from __future__ import annotations

import builtins
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from xpubench.errors import UserError
from xpubench.suites.datasets import DataUnavailable, load_images
from xpubench.suites.datasets import mnist as M
from xpubench.suites.datasets import text as T
from xpubench.suites.datasets.digits import stratified_split


# ------------------------------------------------------------------ digits
def test_digits_split_is_fixed_stratified_and_scaled():
    a, b = load_images("digits"), load_images("digits")
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_val.shape == (359, 1, 8, 8) and a.hw == 8
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert np.array_equal(a.y_val, b.y_val) and np.array_equal(a.x_train, b.x_train)
    counts = np.bincount(a.y_val, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # a fifth of each class (~180 per class)


def test_stratified_split_covers_every_index_once():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    tr, va = stratified_split(labels, 0.2, seed=1)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(60))
    assert np.bincount(labels[va]).tolist() == [2, 4, 6]


def test_unknown_image_set_is_a_user_error():
    with pytest.raises(UserError, match="accepted: digits, mnist"):
        load_images("cifar")


# ------------------------------------------------------------------ IDX files
def idx_bytes(a: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}[a.dtype]
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return head + a.tobytes()


def write_idx(path: Path, a: np.ndarray) -> Path:
    data = idx_bytes(a)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def fake_mnist(n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}


def write_folder(folder: Path, arrays: dict[str, np.ndarray], suffix: str = "", dotted: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for role, base in M.FILES.items():
        name = base.replace("-idx", ".idx") if dotted else base
        write_idx(folder / f"{name}{suffix}", arrays[role])


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_reads_what_was_written(tmp_path, suffix):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(M.read_idx(write_idx(tmp_path / f"img{suffix}", images)), images)
    floats = np.array([1.5, -2.0], dtype=">f4")
    assert M.read_idx(write_idx(tmp_path / f"f{suffix}", floats)).tolist() == [1.5, -2.0]


def test_read_idx_rejects_what_is_not_idx(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x89PNG....")
    with pytest.raises(UserError, match="not an IDX file"):
        M.read_idx(tmp_path / "junk")
    short = idx_bytes(np.zeros((2, 2), np.uint8))[:-1]
    (tmp_path / "short").write_bytes(short)
    with pytest.raises(UserError, match="header says"):
        M.read_idx(tmp_path / "short")


@pytest.mark.parametrize("suffix, dotted", [("", False), (".gz", False), ("", True)])
def test_mnist_from_a_folder_of_idx_files(tmp_path, monkeypatch, suffix, dotted):
    arrays = fake_mnist()
    write_folder(tmp_path / "mnist", arrays, suffix, dotted)
    monkeypatch.setenv(M.MNIST_ENV, str(tmp_path / "mnist"))
    split = load_images("mnist")
    assert split.x_train.shape == (20, 1, 28, 28) and split.x_val.shape == (10, 1, 28, 28) and split.hw == 28
    np.testing.assert_allclose(split.x_train[:, 0] * 255.0, arrays["x_train"], atol=1e-4)
    assert split.y_val.tolist() == arrays["y_test"].tolist() and split.y_val.dtype == np.int64


def test_mnist_from_an_npz(tmp_path):
    arrays = fake_mnist()
    np.savez(tmp_path / "mnist.npz", **arrays)
    split = M.load_mnist(tmp_path / "mnist.npz", download=None)
    assert split.y_train.tolist() == arrays["y_train"].tolist() and split.x_val.max() <= 1.0


def test_mnist_files_with_wrong_shapes_or_labels_are_one_line_errors(tmp_path):
    arrays = fake_mnist()
    np.savez(tmp_path / "a.npz", **{**arrays, "x_train": arrays["x_train"][:, :20]})
    with pytest.raises(UserError, match=r"has \(N, 28, 28\)"):
        M.load_mnist(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", **{**arrays, "y_test": arrays["y_test"] + 10})
    with pytest.raises(UserError, match="labels outside 0..9"):
        M.load_mnist(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x_train=arrays["x_train"])
    with pytest.raises(UserError, match="lacks y_train"):
        M.load_mnist(tmp_path / "c.npz")


def test_a_folder_without_the_files_says_how_to_provide_them(tmp_path):
    with pytest.raises(DataUnavailable) as e:
        M.load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and M.MNIST_ENV in msg and "xpubench[mnist]" in msg and "\n" not in msg


# ------------------------------------------------------------------ download and cache
class FakeDownloader:
    """Writes the four .gz files where torchvision's MNIST keeps them (root/MNIST/raw)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays, self.calls = arrays, 0

    def __call__(self, root: Path) -> None:
        self.calls += 1
        write_folder(root / "MNIST" / "raw", self.arrays, ".gz")


def md5s(raw: Path) -> dict[str, str]:
    return {f"{base}.gz": hashlib.md5((raw / f"{base}.gz").read_bytes()).hexdigest() for base in M.FILES.values()}


def known_checksums(arrays) -> dict[str, str]:
    """What the published table would say about these files (computed on a scratch copy)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        write_folder(Path(d), arrays, ".gz")
        return md5s(Path(d))


def test_download_fills_the_cache_once_and_verifies_it(tmp_path, monkeypatch):
    monkeypatch.delenv(M.MNIST_ENV, raising=False)
    monkeypatch.setenv(M.DATA_DIR_ENV, str(tmp_path))
    arrays = fake_mnist()
    download = FakeDownloader(arrays)
    sums = known_checksums(arrays)
    split = M.load_mnist(download=download, checksums=sums)
    assert download.calls == 1 and (tmp_path / "mnist" / "MNIST" / "raw").is_dir()
    assert split.y_train.tolist() == arrays["y_train"].tolist() and "verified" in split.notes["checksum"]
    M.load_mnist(download=download, checksums=sums)
    assert download.calls == 1  # the second time comes from the cache


def test_a_cache_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(M.MNIST_ENV, raising=False)
    arrays = fake_mnist()
    download = FakeDownloader(arrays)
    with pytest.raises(UserError, match="MD5 .* is not MNIST's f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        M.load_mnist(cache=tmp_path, download=download)  # the real table: these are not MNIST's bytes


def test_a_download_that_leaves_nothing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(M.MNIST_ENV, raising=False)
    with pytest.raises(DataUnavailable, match="left no"):
        M.load_mnist(cache=tmp_path, download=lambda root: None)
    with pytest.raises(DataUnavailable, match="not in"):
        M.load_mnist(cache=tmp_path, download=None)


def test_without_torchvision_the_message_says_how_to_provide_mnist(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("No module named 'torchvision'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(DataUnavailable, match="not on this machine.*XPUBENCH_MNIST"):
        M.torchvision_download(tmp_path)


def test_a_failed_download_is_one_line_with_the_cause(tmp_path, monkeypatch):
    import sys
    import types

    class MNIST:
        def __init__(self, root, train, download):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirrors, all failed")

    fake = types.ModuleType("torchvision.datasets")
    fake.MNIST = MNIST
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(DataUnavailable) as e:
        M.torchvision_download(tmp_path)
    assert "download failed (Error downloading train-images-idx3-ubyte.gz:)" in str(e.value)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ the text corpus
def fake_stdlib(root: Path, n: int = 40, size: int = 300) -> Path:
    for i in range(n):
        p = root / ("pkg" if i % 2 else "") / f"mod{i:02d}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes((f"# module {i}\n" * size).encode()[:size])
    (root / "test").mkdir()
    (root / "test" / "test_x.py").write_text("left out\n")
    (root / "site-packages").mkdir()
    (root / "site-packages" / "other.py").write_text("left out\n")
    return root


def test_the_text_split_is_a_rule_on_paths(tmp_path):
    root = fake_stdlib(tmp_path)
    files = T.source_files(root)
    assert len(files) == 40 and not any(f.startswith(("test/", "site-packages/")) for f in files)
    val = [f for f in files if T.is_validation(f)]
    assert 0 < len(val) < 20
    split = T.load_stdlib_text(1000, 300, root)
    assert len(split.train) == 1000 and len(split.val) == 300 and split.train.dtype == np.uint8
    assert split.train.flags.writeable
    first_val = (root / val[0]).read_bytes()
    assert bytes(split.val[:50]) == first_val[:50]
    assert "from" in split.notes["data"] and len(split.notes["data_digest"]) == 16


def test_too_little_text_is_one_line(tmp_path):
    root = fake_stdlib(tmp_path, n=4, size=50)
    with pytest.raises(DataUnavailable, match="too little source"):
        T.load_stdlib_text(10_000, 1_000, root)


def test_the_real_standard_library_gives_the_default_corpus():
    split = T.load_stdlib_text(64 << 10, 16 << 10)
    assert len(split.train) == 64 << 10 and len(split.val) == 16 << 10
    assert b"def " in bytes(split.train) and b"import" in bytes(split.val)
