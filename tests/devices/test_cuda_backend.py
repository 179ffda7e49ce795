"""The CUDA backend: clear errors without CuPy or a GPU, and (marked cuda) real GPU use.

CuPy is replaced by a missing module or by a small fake (fake_cupy.py), so every error
path, and the CUDA code paths that need no kernel, run the same way on machines with and
without a GPU.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from fake_cupy import KIB, CUDARuntimeError, FakeCuPy, TorchLikeCUDATensor

import relaxvm
from relaxvm.devices.cuda_backend import CUDABackend
from relaxvm.errors import DeviceError

INSTALL = re.escape("install the CUDA extra: pip install 'relaxvm[cuda12]' (or 'relaxvm[cuda13]')")


@pytest.fixture
def no_cupy(monkeypatch):
    """Make ``import cupy`` fail and forget any CuPy the shared backend already loaded."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(relaxvm.cuda(0).backend, "_cupy", None)
    monkeypatch.setattr(relaxvm.cuda(0).backend, "_ready", set())


@pytest.fixture
def shared_backend_on(monkeypatch):
    """Put a FakeCuPy under the shared CUDA backend (the one Device(2, i) uses)."""
    def install(cupy: FakeCuPy) -> CUDABackend:
        backend = relaxvm.cuda(0).backend
        monkeypatch.setattr(backend, "_cupy", cupy)
        monkeypatch.setattr(backend, "_ready", set())
        return backend
    return install


@pytest.fixture(autouse=True)
def no_visible_devices_variable(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


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


@pytest.mark.parametrize("use", ["sync", "timer", "activate", "from_dlpack"])
def test_device_work_without_cupy_raises_device_error(no_cupy, use):
    dev = relaxvm.cuda(0)
    calls = {"sync": dev.sync, "timer": lambda: dev.backend.create_timer(0),
             "activate": lambda: dev.backend.activate(0),
             "from_dlpack": lambda: relaxvm.from_dlpack(TorchLikeCUDATensor(np.ones(2)))}
    with pytest.raises(DeviceError, match=r"cuda:0 is not available: CuPy could not be imported"):
        calls[use]()


@pytest.mark.parametrize("use", ["sync", "timer", "activate", "from_dlpack", "tensor"])
def test_device_work_on_a_machine_without_a_gpu_raises_device_error(shared_backend_on, use):
    backend = shared_backend_on(FakeCuPy(available=False, count=0))
    dev = relaxvm.cuda(1)
    producer = TorchLikeCUDATensor(np.ones(2, "float32"), index=1)
    calls = {"sync": dev.sync, "timer": lambda: backend.create_timer(1),
             "activate": lambda: backend.activate(1),
             "from_dlpack": lambda: relaxvm.from_dlpack(producer),
             "tensor": lambda: relaxvm.tensor(producer)}
    with pytest.raises(DeviceError, match=re.escape(
            "cuda:1 is not available: no CUDA GPU was found (the driver reports 0 devices); "
            "the NVIDIA driver supports CUDA 12.4, which matches pip install 'relaxvm[cuda12]'")):
        calls[use]()


def test_require_without_a_gpu_says_no_gpu_was_found():
    backend = backend_with(FakeCuPy(available=False, count=0, driver=13000, built=13000))
    assert backend.exists(0) is False
    with pytest.raises(DeviceError, match=re.escape(
            "cuda:0 is not available: no CUDA GPU was found (the driver reports 0 devices); "
            "the NVIDIA driver supports CUDA 13.0, which matches pip install "
            "'relaxvm[cuda13]'")):
        backend.require(0)


def test_require_names_the_valid_indices():
    backend = backend_with(FakeCuPy(count=2))
    assert backend.exists(1) is True and backend.exists(2) is False
    with pytest.raises(DeviceError, match=re.escape(
            "cuda:5 is not available: this machine has 2 CUDA device(s), indices 0..1")):
        backend.require(5)


def insufficient_driver(cupy: FakeCuPy) -> FakeCuPy:
    def broken():
        raise CUDARuntimeError(35, "cudaErrorInsufficientDriver: CUDA driver version is "
                                   "insufficient for CUDA runtime version")
    cupy.runtime.getDeviceCount = broken
    return cupy


def test_require_reports_a_failing_driver_and_the_extra_that_matches_it():
    backend = backend_with(insufficient_driver(FakeCuPy(driver=12040, built=13000)))
    assert backend.exists(0) is False
    with pytest.raises(DeviceError, match=re.escape(
            "cuda:0 is not available: the CUDA driver failed (CUDARuntimeError: "
            "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime "
            "version); CuPy is built for CUDA 13.0 but the NVIDIA driver supports only CUDA "
            "12.4; install the extra that matches the driver: pip uninstall cupy-cuda13x && "
            "pip install 'relaxvm[cuda12]'")):
        backend.require(0)


@pytest.mark.parametrize("driver, hint", [
    (0, "no NVIDIA driver was found (nvidia-smi should list the GPU); install one, then "
        "install the CUDA extra: pip install 'relaxvm[cuda12]' (or 'relaxvm[cuda13]')"),
    (11080, "the NVIDIA driver supports only CUDA 11.8, older than the CUDA 12 or 13 that "
            "relaxvm's extras need; upgrade the driver"),
    (13010, "the NVIDIA driver supports CUDA 13.1, which matches pip install "
            "'relaxvm[cuda13]'"),
    (14000, "the NVIDIA driver supports CUDA 14.0, which matches pip install "
            "'relaxvm[cuda13]'"),
])
def test_driver_problems_suggest_what_matches_the_driver(driver, hint):
    backend = backend_with(insufficient_driver(FakeCuPy(driver=driver, built=12080)))
    with pytest.raises(DeviceError, match=re.escape(f"version); {hint}") + "$"):
        backend.require(0)


def test_driver_hint_when_the_version_query_itself_fails():
    cupy = insufficient_driver(FakeCuPy())
    del cupy.runtime.driverGetVersion
    with pytest.raises(DeviceError, match=r"; no NVIDIA driver was found"):
        backend_with(cupy).require(0)


def test_driver_hint_mentions_cuda_visible_devices_when_set(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    backend = backend_with(FakeCuPy(count=0))
    with pytest.raises(DeviceError, match=re.escape(
            "'relaxvm[cuda12]'; note CUDA_VISIBLE_DEVICES='' limits which GPUs CUDA sees")):
        backend.require(0)


def test_require_probes_a_device_once_then_is_cached():
    cupy = FakeCuPy(count=2)
    backend = backend_with(cupy)
    for _ in range(3):
        backend.require(1)
        backend.synchronize(1)
        backend.activate(1)
    assert cupy.device_count_calls == 1
    backend.require(0)
    assert cupy.device_count_calls == 2, "each index is probed on its own"


def test_raw_alloc_turns_cuda_out_of_memory_into_memory_error():
    cupy = FakeCuPy(malloc_status=2)
    assert not hasattr(cupy.runtime, "errorMemoryAllocation")
    with pytest.raises(MemoryError, match=r"cudaMalloc of 4096 bytes on cuda:0 failed: "
                                          r"cudaErrorMemoryAllocation: out of memory"):
        backend_with(cupy).raw_alloc(0, 4096)


def test_raw_alloc_passes_other_cuda_errors_through():
    backend = backend_with(FakeCuPy(malloc_status=1))
    with pytest.raises(CUDARuntimeError):
        backend.raw_alloc(0, 4096)


def test_pool_on_a_full_gpu_retries_then_raises_out_of_memory():
    backend = backend_with(FakeCuPy(malloc_status=2))
    pool = relaxvm.memory.PooledAllocator(relaxvm.cuda(0), backend)
    with pytest.raises(relaxvm.OutOfMemoryError, match=r"out of memory on cuda:0: tried to "
                                                       r"allocate 100 bytes"):
        pool.alloc(100)
    assert pool.stats()["num_alloc_retries"] == 1


def test_pool_oom_drains_cupys_pool_on_the_device_that_ran_out():
    # CuPy's own pool caches 900 KiB on cuda:1 (and 512 KiB on cuda:0) of 1 MiB GPUs: our
    # 200 KiB request fits only once the pool of cuda:1 is drained.
    cupy = FakeCuPy(count=2, capacity=1024 * KIB)
    cupy.pool.free = {0: 512 * KIB, 1: 900 * KIB}
    pool = relaxvm.memory.PooledAllocator(relaxvm.cuda(1), backend_with(cupy))
    buf = pool.alloc(200 * KIB)
    assert buf.nbytes == 200 * KIB and buf.handle.device_id == 1
    stats = pool.stats()
    assert (stats["num_alloc_retries"], stats["num_ooms"]) == (1, 0)
    assert cupy.pool.drained_on == [1]
    assert cupy.pool.free == {0: 512 * KIB, 1: 0}, "only the device that ran out is drained"
    assert cupy.current == 0, "the current device is restored"


def test_copy_from_host_keeps_a_zero_dim_shape():
    cupy = FakeCuPy()
    dst = cupy.array(0.0)
    backend_with(cupy).copy_from_host(dst, np.array(2.5))
    assert dst.shape == () and dst.data == 2.5


def test_copy_from_host_makes_a_strided_host_array_contiguous():
    cupy = FakeCuPy()
    dst = cupy.array(np.zeros((3, 2)))
    src = np.arange(6.0).reshape(2, 3).T
    backend_with(cupy).copy_from_host(dst, src)
    np.testing.assert_array_equal(dst.data, src)


def test_copy_from_host_into_a_strided_array_runs_on_its_device():
    cupy = FakeCuPy(count=2)
    dst = cupy.array(np.zeros((2, 3)), device=1, c_contiguous=False)
    backend_with(cupy).copy_from_host(dst, np.ones((2, 3)))
    assert dst.writes_on == [1] and cupy.current == 0
    np.testing.assert_array_equal(dst.data, np.ones((2, 3)))


def test_tensor_of_a_torch_like_gpu_tensor_goes_through_dlpack(shared_backend_on, fresh_memory):
    shared_backend_on(FakeCuPy(count=2))
    producer = TorchLikeCUDATensor(np.arange(6, dtype="float32").reshape(2, 3), index=1)
    t = relaxvm.tensor(producer)
    assert (t.device, t.dtype, t.shape) == (relaxvm.cpu(0), "float32", (2, 3))
    np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    half = relaxvm.tensor(producer, device="cpu:1", dtype="float16")
    assert (half.device, half.dtype) == (relaxvm.cpu(1), "float16")
    np.testing.assert_array_equal(half.numpy(), np.arange(6).reshape(2, 3))
    view = relaxvm.from_dlpack(producer)
    assert view.device is relaxvm.cuda(1) and view.array.data is producer._host


def test_copyfrom_a_torch_like_gpu_tensor_into_a_cpu_tensor(shared_backend_on):
    shared_backend_on(FakeCuPy())
    t = relaxvm.empty((3,), "int64", relaxvm.cpu(0))
    t.copyfrom(TorchLikeCUDATensor(np.array([7, 8, 9])))
    np.testing.assert_array_equal(t.numpy(), [7, 8, 9])
    with pytest.raises(ValueError, match=re.escape(
            "Tensor.copyfrom: source must be int64[3], got float32[2]")):
        t.copyfrom(TorchLikeCUDATensor(np.ones(2, "float32")))


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
