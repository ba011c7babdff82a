"""Data sets of the convergence suite: offline digits, real MNIST, a Python-source byte corpus.

Each loader returns numpy arrays (framework-neutral); builders place them on the
device. Nothing here reaches the network unless asked to (MNIST download).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xpubench.errors import UserError

if TYPE_CHECKING:  # numpy loads with the data, not when `xpubench list` imports the suite
    import numpy as np


class DataUnavailable(UserError):
    """A data set that is not on this machine; the message says how to provide it."""


@dataclass
class ImageSplit:
    """Images (N, 1, H, W) float32 in [0, 1] and integer labels, train and held-out."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: int
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def hw(self) -> int:
        return int(self.x_train.shape[-1])


@dataclass
class TextSplit:
    """Bytes (uint8) of a training and a validation text."""

    train: np.ndarray
    val: np.ndarray
    notes: dict[str, Any] = field(default_factory=dict)


IMAGE_SETS = ("digits", "mnist")
IMAGE_HW = {"digits": 8, "mnist": 28}


def load_images(name: str) -> ImageSplit:
    """``digits`` (bundled with scikit-learn, offline) or ``mnist`` (local files or download)."""
    if name == "digits":
        from xpubench.suites.datasets.digits import load_digits_split

        return load_digits_split()
    if name == "mnist":
        from xpubench.suites.datasets.mnist import load_mnist

        return load_mnist()
    raise UserError(f"unknown image data set {name!r}; accepted: {', '.join(IMAGE_SETS)}")
