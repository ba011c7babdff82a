"""scikit-learn's bundled handwritten digits (8x8, 1,797 images): the offline default.

The held-out fifth is drawn by a fixed stratified rule (seeded permutation within
each class), so every machine and framework trains and evaluates on the same images.
"""

from __future__ import annotations

import numpy as np

from xpubench.suites.datasets import ImageSplit

VAL_FRACTION = 0.2
SPLIT_SEED = 20240917  # fixes the split; not the run's seed
PIXEL_MAX = 16.0  # the digits' grey levels are 0..16


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``fraction`` of each class to val, the rest to train, both sorted."""
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        val.append(idx[: int(round(fraction * len(idx)))])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def load_digits_split() -> ImageSplit:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / PIXEL_MAX)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    tr, va = stratified_split(y, VAL_FRACTION, SPLIT_SEED)
    return ImageSplit(x[tr], y[tr], x[va], y[va], classes=10,
                      notes={"data": f"sklearn digits 8x8: {len(tr)} train / {len(va)} held-out "
                                     f"(stratified {VAL_FRACTION:.0%})"})
