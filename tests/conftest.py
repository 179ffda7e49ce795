"""Shared fixtures: device parameterization and the ``cuda`` marker.

Tests that take the ``dev`` fixture run once per available device kind; the CUDA case
carries the ``cuda`` marker and skips cleanly when CuPy or a GPU is missing, so the GPU
run is the same suite, not a thinner copy.

Kernel tests (under ``tests/kernels``) get a third case, ``cuda-emulated``, that runs
everywhere: ``dev`` is then ``emulated_cupy.EMULATED_CUDA``, and the kernel harness runs the
kernel's CUDA code path on NumPy through a fake CuPy (see ``tests/kernels/emulated_cupy.py``).
A kernel test that uses ``dev`` other than through the harness skips in that case.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import relaxvm
from relaxvm.errors import DeviceError


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


EMULATED = "cuda-emulated"
DEVICE_PARAMS = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.cuda),
]
#: The ``dev`` cases of kernel tests: the emulated CUDA path runs without a GPU.
KERNEL_DEVICE_PARAMS = [*DEVICE_PARAMS, pytest.param(EMULATED, id=EMULATED)]
KERNEL_TESTS = Path(__file__).parent / "kernels"


def _parametrizes_dev(metafunc: pytest.Metafunc) -> bool:
    """Whether the test already parametrizes ``dev`` itself (``@parametrize("dev, ...")``)."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "dev" in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give ``dev`` its cases: cpu and cuda, plus cuda-emulated for kernel tests."""
    if "dev" not in metafunc.fixturenames or _parametrizes_dev(metafunc):
        return
    in_kernels = KERNEL_TESTS in Path(str(metafunc.definition.path)).parents
    metafunc.parametrize("dev", KERNEL_DEVICE_PARAMS if in_kernels else DEVICE_PARAMS,
                         indirect=True)


@pytest.fixture
def dev(request: pytest.FixtureRequest) -> object:
    """cpu(0); cuda(0) where a GPU exists; for kernel tests, the emulated CUDA device."""
    if request.param == EMULATED:
        from emulated_cupy import EMULATED_CUDA  # tests/kernels is on sys.path for its tests
        return EMULATED_CUDA
    return relaxvm.cpu(0) if request.param == "cpu" else relaxvm.cuda(0)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    """In the cuda-emulated case, a test that hands ``dev`` to relaxvm (``tensor(x, dev)``)
    gets a DeviceError naming it: that is a skip (the case runs kernels only through the
    harness), not a failure."""
    try:
        return (yield)
    except DeviceError as exc:
        callspec = getattr(pyfuncitem, "callspec", None)
        if callspec is None or callspec.params.get("dev") != EMULATED or EMULATED not in str(exc):
            raise
        from emulated_cupy import EmulatedCuda
        pytest.skip(f"{EmulatedCuda.SKIP_REASON} ({exc})")


@pytest.fixture
def fresh_memory() -> relaxvm.memory.MemoryManager:
    """Drop every cached block before and after a test that reads pool statistics."""
    manager = relaxvm.global_memory_manager()
    manager.reset()
    yield manager
    manager.reset()
