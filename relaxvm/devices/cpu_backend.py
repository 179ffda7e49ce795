"""The CPU backend: NumPy arrays over 64-byte-aligned host blocks."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import numpy as np

from relaxvm.devices.backend import ALIGNMENT, DeviceBackend, DeviceTimer


class CPUTimer(DeviceTimer):
    """Wall-clock timer; CPU work is synchronous, so host time is device time."""

    __slots__ = ("_start", "_stop")

    def __init__(self) -> None:
        self._start = 0
        self._stop = 0

    def start(self) -> None:
        self._start = time.perf_counter_ns()

    def stop(self) -> None:
        self._stop = time.perf_counter_ns()

    def elapsed_ns(self) -> int:
        return self._stop - self._start

    def start_offset_ns(self, origin: DeviceTimer) -> int:
        return self._start - origin._start  # type: ignore[attr-defined]


class CPUBackend(DeviceBackend):
    device_type = 1
    name = "cpu"
    xp = np

    def exists(self, index: int) -> bool:
        return index >= 0

    def attribute(self, index: int, name: str) -> Any:
        values = {
            "device_name": platform.processor() or platform.machine() or "cpu",
            "compute_version": "",
            "total_global_memory": _host_memory_bytes(),
            "multi_processor_count": os.cpu_count() or 1,
            "max_threads_per_block": 1,
            "warp_size": 1,
            "max_shared_memory_per_block": 0,
            "max_clock_rate": 0,
        }
        return values[name]

    def raw_alloc(self, index: int, nbytes: int) -> np.ndarray:
        raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
        shift = (-raw.ctypes.data) % ALIGNMENT
        return raw[shift:shift + nbytes]

    def raw_free(self, handle: Any) -> None:
        # NumPy frees the block when its last reference goes.
        return None

    def ref_count(self, handle: np.ndarray) -> int:
        # Views of ``handle`` point their ``base`` at the root allocation: count there.
        return sys.getrefcount(handle.base)

    def view(self, handle: np.ndarray, offset: int, shape: tuple[int, ...], dtype: Any) -> Any:
        return np.ndarray(shape, dtype, buffer=handle, offset=offset)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return np.array(array, copy=True)

    def copy_from_host(self, dst: np.ndarray, src: np.ndarray) -> None:
        np.copyto(dst, src, casting="no")

    def copy_within(self, dst: np.ndarray, src: np.ndarray) -> None:
        np.copyto(dst, src, casting="no")

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, np.ndarray)

    def from_dlpack(self, index: int, obj: Any) -> np.ndarray:
        return np.from_dlpack(obj)

    def create_timer(self, index: int) -> DeviceTimer:
        return CPUTimer()

    def memory_info(self, index: int) -> tuple[int, int] | None:
        total = _host_memory_bytes()
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
        return free, total


def _host_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


BACKEND = CPUBackend()
