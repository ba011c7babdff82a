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
        # the marker, not `"gpu" in item.keywords`: a folder or a parameter id named gpu is a keyword too
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
