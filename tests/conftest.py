"""Shared fixtures: device parameterization and the ``cuda`` marker.

Tests that take the ``dev`` fixture run once per available device kind; the CUDA case
carries the ``cuda`` marker and skips cleanly when CuPy or a GPU is missing, so the GPU
run is the same suite, not a thinner copy.
"""

from __future__ import annotations

import pytest

import relaxvm


def cuda_available() -> bool:
    try:
        import cupy
        return bool(cupy.cuda.is_available())
    except Exception:
        return False


HAS_CUDA = cuda_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU (cupy.cuda.is_available() is "
                                   "False or CuPy is not installed)")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip)


DEVICE_PARAMS = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.cuda),
]


@pytest.fixture(params=DEVICE_PARAMS)
def dev(request: pytest.FixtureRequest) -> relaxvm.Device:
    """cpu(0), and cuda(0) where a GPU exists."""
    return relaxvm.cpu(0) if request.param == "cpu" else relaxvm.cuda(0)


@pytest.fixture
def fresh_memory() -> relaxvm.memory.MemoryManager:
    """Drop every cached block before and after a test that reads pool statistics."""
    manager = relaxvm.global_memory_manager()
    manager.reset()
    yield manager
    manager.reset()
