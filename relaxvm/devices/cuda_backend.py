"""The CUDA backend on CuPy, imported lazily.

Raw blocks come straight from cudaMalloc (``cupy.cuda.Memory``), never from CuPy's
pool: the pool is ours. Timing uses CUDA events on the device's current stream
(:mod:`relaxvm.devices.cuda_timer`); why a device is unusable is worked out by
:mod:`relaxvm.devices.cuda_probe`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.devices.backend import DeviceBackend, DeviceTimer
from relaxvm.devices.cuda_probe import check_device, device_attributes, import_cupy
from relaxvm.devices.cuda_timer import CUDATimer
from relaxvm.errors import DeviceError

#: cudaErrorMemoryAllocation. A fixed part of the CUDA ABI; CuPy's Python alias for it
#: (``runtime.errorMemoryAllocation``) is marked for deprecation, so we do not rely on it.
CUDA_ERROR_MEMORY_ALLOCATION = 2


class CUDABackend(DeviceBackend):
    device_type = 2
    name = "cuda"

    def __init__(self) -> None:
        self._cupy: Any = None
        self._timer_pools: dict[int, list[DeviceTimer]] = {}
        #: Indices that passed require(): later calls cost one set lookup.
        self._ready: set[int] = set()

    @property
    def cupy(self) -> Any:
        if self._cupy is None:
            self._cupy = import_cupy()
        return self._cupy

    @property
    def xp(self) -> Any:  # type: ignore[override]
        return self.cupy

    def exists(self, index: int) -> bool:
        if index in self._ready:
            return True
        try:
            cupy = self.cupy
            return bool(cupy.cuda.is_available()) and index < cupy.cuda.runtime.getDeviceCount()
        except Exception:
            return False

    def require(self, index: int) -> None:
        """Raise DeviceError saying why ``cuda:index`` is unusable; cached once it is usable."""
        if index in self._ready:
            return
        try:
            cupy = self.cupy
        except DeviceError as exc:
            raise DeviceError(f"cuda:{index} is not available: {exc}") from exc.__cause__
        check_device(cupy, index)
        self._ready.add(index)

    def attribute(self, index: int, name: str) -> Any:
        self.require(index)
        return device_attributes(self.cupy, index)[name]

    def raw_alloc(self, index: int, nbytes: int) -> Any:
        cupy = self.cupy
        runtime = cupy.cuda.runtime
        try:
            with cupy.cuda.Device(index):
                return cupy.cuda.Memory(max(nbytes, 1))
        except runtime.CUDARuntimeError as exc:
            # cupy.cuda.Memory calls cudaMalloc directly: an out-of-memory arrives as a
            # CUDARuntimeError, not a MemoryError. The pool's release-and-retry needs the latter.
            if getattr(exc, "status", None) == CUDA_ERROR_MEMORY_ALLOCATION:
                raise MemoryError(f"cudaMalloc of {nbytes} bytes on cuda:{index} failed: "
                                  f"{exc}") from exc
            raise

    def raw_free(self, handle: Any) -> None:
        # cupy.cuda.Memory calls cudaFree when its last reference goes.
        return None

    def view(self, handle: Any, offset: int, shape: tuple[int, ...], dtype: Any) -> Any:
        cupy = self.cupy
        return cupy.ndarray(shape, dtype, memptr=cupy.cuda.MemoryPointer(handle, offset))

    def release_foreign_caches(self, index: int) -> None:
        # free_all_blocks() drains only the *current* device's pool: select the one that ran
        # out. CuPy's pinned pool is page-locked host memory, which no GPU allocation can
        # use, so it is left alone.
        try:
            cupy = self.cupy
            with cupy.cuda.Device(index):
                cupy.get_default_memory_pool().free_all_blocks()
        except Exception:  # draining is best effort; the retry reports the real failure
            pass

    def memory_info(self, index: int) -> tuple[int, int] | None:
        try:
            with self.cupy.cuda.Device(index):
                free, total = self.cupy.cuda.runtime.memGetInfo()
            return int(free), int(total)
        except Exception:
            return None

    def to_numpy(self, array: Any) -> np.ndarray:
        return self.cupy.asnumpy(array)

    def copy_from_host(self, dst: Any, src: np.ndarray) -> None:
        if dst.flags.c_contiguous:
            # Not np.ascontiguousarray: it turns a 0-d array into shape (1,), which
            # ndarray.set() rejects as a shape mismatch.
            dst.set(np.require(src, requirements="C"))
        else:
            with dst.device:  # cupy.asarray allocates on the current device
                dst[...] = self.cupy.asarray(src)

    def copy_within(self, dst: Any, src: Any) -> None:
        if dst.device.id == src.device.id or not (
                dst.flags.c_contiguous and src.flags.c_contiguous):
            with dst.device:
                self.cupy.copyto(dst, src)
        else:
            dst.data.copy_from_device(src.data, src.nbytes)

    def is_array(self, obj: Any) -> bool:
        return type(obj).__module__.startswith("cupy") and hasattr(obj, "__cuda_array_interface__")

    def synchronize(self, index: int) -> None:
        if index not in self._ready:
            self.require(index)
        with self.cupy.cuda.Device(index):
            self.cupy.cuda.get_current_stream().synchronize()

    def create_timer(self, index: int) -> DeviceTimer:
        # Creating two CUDA events costs microseconds; the profiler creates a timer per
        # call, so timers it has read come back through release_timer and are reused. A
        # reused timer is pointed at the device's stream that is current now.
        pool = self._timer_pools.get(index)
        if pool:
            timer = pool.pop()
            with timer.device:  # type: ignore[attr-defined]
                timer.stream = self.cupy.cuda.get_current_stream()  # type: ignore[attr-defined]
            return timer
        if index not in self._ready:
            self.require(index)
        return CUDATimer(self.cupy, index)

    def release_timer(self, index: int, timer: DeviceTimer) -> None:
        self._timer_pools.setdefault(index, []).append(timer)

    def activate(self, index: int) -> Any:
        if index not in self._ready:
            self.require(index)
        return self.cupy.cuda.Device(index)

    def from_dlpack(self, index: int, obj: Any) -> Any:
        if index not in self._ready:
            self.require(index)
        if self.is_array(obj):
            return obj  # already a CuPy array: skip the capsule round trip
        return self.cupy.from_dlpack(obj)


BACKEND = CUDABackend()
