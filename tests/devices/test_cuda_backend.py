"""The CUDA backend: clear errors without CuPy or a GPU, and (marked cuda) real GPU use.

CuPy is replaced by a missing module or by a small fake, so every error path is tested
the same way on machines with and without a GPU.
"""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

import relaxvm
from relaxvm.devices.cuda_backend import CUDABackend
from relaxvm.errors import DeviceError

INSTALL = re.escape("install the CUDA extra: pip install 'relaxvm[cuda12]' (or 'relaxvm[cuda13]')")


@pytest.fixture
def no_cupy(monkeypatch):
    """Make ``import cupy`` fail and forget any CuPy the shared backend already loaded."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(relaxvm.cuda(0).backend, "_cupy", None)


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def fake_cupy(available: bool = True, count: int = 1, malloc_status: int | None = None):
    """A stand-in for the few CuPy entry points the backend calls."""
    def memory(nbytes):
        if malloc_status is not None:
            raise CUDARuntimeError(malloc_status, "cudaErrorMemoryAllocation: out of memory")
        return types.SimpleNamespace(size=nbytes)

    class Device:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    runtime = types.SimpleNamespace(
        CUDARuntimeError=CUDARuntimeError, errorMemoryAllocation=2,
        getDeviceCount=lambda: count)
    cuda = types.SimpleNamespace(is_available=lambda: available, runtime=runtime,
                                 Device=Device, Memory=memory)
    return types.SimpleNamespace(cuda=cuda)


def backend_with(cupy) -> CUDABackend:
    backend = CUDABackend()
    backend._cupy = cupy
    return backend


def test_cuda_device_object_needs_no_gpu(no_cupy):
    dev = relaxvm.cuda(0)
    assert str(dev) == "cuda:0" and dev.exist is False


def test_cuda_attributes_without_cupy_say_why_and_what_to_install(no_cupy):
    with pytest.raises(DeviceError, match=r"cuda:0 is not available: CuPy could not be imported "
                                          r"\((ModuleNotFound|Import)Error: .*\); " + INSTALL):
        _ = relaxvm.cuda(0).device_name


def test_tensor_on_cuda_without_cupy_raises_device_error(no_cupy, fresh_memory):
    with pytest.raises(DeviceError, match=r"cuda:1 is not available: CuPy could not be imported"):
        relaxvm.tensor(np.ones(3, "float32"), "cuda:1")
    with pytest.raises(DeviceError, match=INSTALL):
        relaxvm.empty((2,), "float32", relaxvm.cuda(0))


def test_require_without_a_gpu_says_no_gpu_was_found():
    backend = backend_with(fake_cupy(available=False, count=0))
    assert backend.exists(0) is False
    with pytest.raises(DeviceError, match=re.escape(
            "cuda:0 is not available: no CUDA GPU or driver was found "
            "(cupy.cuda.is_available() is False)")):
        backend.require(0)


def test_require_names_the_valid_indices():
    backend = backend_with(fake_cupy(count=2))
    assert backend.exists(1) is True and backend.exists(2) is False
    with pytest.raises(DeviceError, match=re.escape(
            "cuda:5 is not available: this machine has 2 CUDA device(s), indices 0..1")):
        backend.require(5)


def test_require_reports_a_failing_driver():
    cupy = fake_cupy()

    def broken():
        raise RuntimeError("cudaErrorInsufficientDriver")

    cupy.cuda.runtime.getDeviceCount = broken
    backend = backend_with(cupy)
    assert backend.exists(0) is False
    with pytest.raises(DeviceError, match=re.escape(
            "cuda:0 is not available: the CUDA driver failed (RuntimeError: "
            "cudaErrorInsufficientDriver)")):
        backend.require(0)


def test_raw_alloc_turns_cuda_out_of_memory_into_memory_error():
    backend = backend_with(fake_cupy(malloc_status=2))
    with pytest.raises(MemoryError, match=r"cudaMalloc of 4096 bytes on cuda:0 failed: "
                                          r"cudaErrorMemoryAllocation: out of memory"):
        backend.raw_alloc(0, 4096)


def test_raw_alloc_passes_other_cuda_errors_through():
    backend = backend_with(fake_cupy(malloc_status=1))
    with pytest.raises(CUDARuntimeError):
        backend.raw_alloc(0, 4096)


def test_pool_on_a_full_gpu_retries_then_raises_out_of_memory():
    backend = backend_with(fake_cupy(malloc_status=2))
    backend.release_foreign_caches = lambda: None
    pool = relaxvm.memory.PooledAllocator(relaxvm.cuda(0), backend)
    with pytest.raises(relaxvm.OutOfMemoryError, match=r"out of memory on cuda:0: tried to "
                                                       r"allocate 100 bytes"):
        pool.alloc(100)
    assert pool.stats()["num_alloc_retries"] == 1


# -- on a real GPU ------------------------------------------------------------------------
@pytest.mark.cuda
def test_real_gpu_reports_attributes():
    dev = relaxvm.cuda(0)
    assert dev.exist is True
    assert dev.device_name and re.fullmatch(r"\d+\.\d+", dev.compute_version)
    assert dev.total_global_memory > 2**30 and dev.multi_processor_count > 0
    assert dev.warp_size == 32 and dev.max_threads_per_block >= 512


@pytest.mark.cuda
def test_real_gpu_timer_measures_queued_work():
    import cupy
    dev = relaxvm.cuda(0)
    timer = dev.backend.create_timer(0)
    x = cupy.ones((2048, 2048), "float32")
    timer.start()
    for _ in range(3):
        x = x @ x / 2048
    timer.stop()
    assert timer.elapsed_ns() > 0


@pytest.mark.cuda
def test_real_gpu_raw_blocks_do_not_come_from_cupys_pool():
    import cupy
    pool = cupy.get_default_memory_pool()
    before = pool.used_bytes()
    handle = relaxvm.cuda(0).backend.raw_alloc(0, 1 << 20)
    assert pool.used_bytes() == before and handle.size == 1 << 20
