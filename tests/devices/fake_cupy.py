"""A stand-in for the few CuPy entry points the CUDA backend calls, for tests on the CPU.

It keeps CuPy's semantics where the backend depends on them: ``cupy.cuda.Device`` is a
context manager that changes the current device; ``Memory`` (cudaMalloc) fails with a
``CUDARuntimeError`` of status 2 when the device is full; the default memory pool holds
free bytes per device and ``free_all_blocks`` drains only the *current* device's;
``ndarray.set`` rejects a host array of another shape. It deliberately does not define
``runtime.errorMemoryAllocation``: the backend must not depend on that alias.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

KIB = 1 << 10


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class FakeMemoryPool:
    """CuPy's default pool: cached free bytes per device, which count against capacity."""

    def __init__(self, cupy: FakeCuPy) -> None:
        self._cupy = cupy
        self.free: dict[int, int] = {}
        self.drained_on: list[int] = []

    def free_bytes(self) -> int:
        return self.free.get(self._cupy.current, 0)

    def free_all_blocks(self) -> None:
        self.drained_on.append(self._cupy.current)
        self.free[self._cupy.current] = 0


class FakeArray:
    """A device array: NumPy data plus the device it lives on."""

    __module__ = "fake_device_arrays"  # not "cupy...": the backend must not take it as one

    def __init__(self, cupy: FakeCuPy, data: np.ndarray, device: int,
                 c_contiguous: bool = True) -> None:
        self._cupy = cupy
        self.data = data
        self.device = cupy.cuda.Device(device)
        self.flags = types.SimpleNamespace(c_contiguous=c_contiguous)
        self.writes_on: list[int] = []

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)

    def set(self, arr: np.ndarray) -> None:
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.shape != self.shape:
            raise ValueError("Shape mismatch")
        self.data[...] = arr

    def __setitem__(self, key: Any, value: FakeArray) -> None:
        if value.device.id != self._cupy.current or self.device.id != self._cupy.current:
            raise ValueError("Array device must be same as the current device")
        self.writes_on.append(self._cupy.current)
        self.data[key] = value.data

    def astype(self, dtype: Any) -> FakeArray:
        if self.device.id != self._cupy.current:
            raise ValueError("Array device must be same as the current device")
        return FakeArray(self._cupy, self.data.astype(dtype), self.device.id)


class FakeCuPy:
    """``cupy`` with ``count`` GPUs of ``capacity`` bytes each (None: unlimited)."""

    def __init__(self, available: bool = True, count: int = 1, capacity: int | None = None,
                 malloc_status: int | None = None, driver: int = 12040,
                 built: int = 12080) -> None:
        self.current = 0
        self.capacity = capacity
        self.malloc_status = malloc_status
        self.live: dict[int, int] = {}
        self.device_count_calls = 0
        self.pool = FakeMemoryPool(self)
        fake = self

        class Device:
            def __init__(self, index: int | None = None) -> None:
                self.id = fake.current if index is None else index

            def __enter__(self) -> Device:
                self._previous = fake.current
                fake.current = self.id
                return self

            def __exit__(self, *exc: Any) -> bool:
                fake.current = self._previous
                return False

        def device_count() -> int:
            self.device_count_calls += 1
            return count

        self.runtime = types.SimpleNamespace(
            CUDARuntimeError=CUDARuntimeError, getDeviceCount=device_count,
            driverGetVersion=lambda: driver, runtimeGetVersion=lambda: built)
        self.cuda = types.SimpleNamespace(
            is_available=lambda: available and count > 0, runtime=self.runtime,
            Device=Device, Memory=self._memory,
            get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
            Event=lambda: types.SimpleNamespace(record=lambda: None))

    def _memory(self, nbytes: int) -> Any:
        """cudaMalloc on the current device; the pool's cached bytes take up room."""
        if self.malloc_status is not None:
            raise CUDARuntimeError(self.malloc_status, "cudaErrorMemoryAllocation: out of memory")
        used = self.live.get(self.current, 0) + self.pool.free.get(self.current, 0)
        if self.capacity is not None and used + nbytes > self.capacity:
            raise CUDARuntimeError(2, "cudaErrorMemoryAllocation: out of memory")
        self.live[self.current] = self.live.get(self.current, 0) + nbytes
        return types.SimpleNamespace(size=nbytes, device_id=self.current)

    def get_default_memory_pool(self) -> FakeMemoryPool:
        return self.pool

    def array(self, data: Any, device: int = 0, c_contiguous: bool = True) -> FakeArray:
        return FakeArray(self, np.array(data), device, c_contiguous)

    def asarray(self, data: np.ndarray) -> FakeArray:
        return FakeArray(self, np.array(data), self.current)

    def asnumpy(self, array: FakeArray) -> np.ndarray:
        return np.array(array.data)

    def from_dlpack(self, obj: TorchLikeCUDATensor) -> FakeArray:
        return FakeArray(self, obj._host, obj.__dlpack_device__()[1])  # zero-copy


class TorchLikeCUDATensor:
    """A DLPack producer on a GPU that, like a torch tensor, has no ``.get()`` or
    ``.astype`` and whose ``dtype`` is not a NumPy dtype."""

    dtype = "torch.float32"

    def __init__(self, host: np.ndarray, index: int = 0) -> None:
        self._host = host
        self._index = index
        self.__cuda_array_interface__ = {"shape": host.shape}

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._host.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self._index)
