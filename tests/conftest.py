"""Shared pytest set-up: `gpu`-marked tests need a CUDA device and skip elsewhere."""

import pytest


def _cuda_visible() -> bool:
    from xpubench.backends.torch.availability import cuda_usable

    return cuda_usable()


def pytest_collection_modifyitems(config, items):
    if _cuda_visible():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run scripts/gpu_check.sh on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
