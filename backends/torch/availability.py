"""Can this machine run torch on a device? Answered from files, without importing torch."""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

from xpubench.backends import availability as av


@lru_cache(maxsize=None)
def torch_cuda_build() -> str | None:
    """The CUDA version torch was built with (read from torch/version.py), or None."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "version.py"
    try:
        text = path.read_text()
    except OSError:
        return None
    m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
    return m.group(1) if m else None


def cuda_usable() -> bool:
    """A CUDA build of torch and at least one NVIDIA GPU visible."""
    return bool(torch_cuda_build()) and av.nvidia_gpu_count() > 0
