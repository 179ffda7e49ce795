"""DeviceBackend: what relaxvm needs from one device type, and the lazy registry of them.

A backend owns raw byte allocation and release, typed array views over a raw block,
host<->device copies, synchronization and a timer. The memory pool sits above it and
never calls NumPy or CuPy directly, which is what lets pool logic be tested with a fake
backend on a machine without a GPU.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

#: Alignment of every raw block we hand out (TVM's kAllocAlignment).
ALIGNMENT = 64


class DeviceTimer:
    """Measures device time between ``start()`` and ``stop()``; read with ``elapsed_ns()``.

    ``elapsed_ns()`` may synchronize; call it only after the timed work was queued,
    so timing does not stall the device between ops.
    """

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def elapsed_ns(self) -> int:
        raise NotImplementedError

    def start_offset_ns(self, origin: DeviceTimer) -> int:
        """Nanoseconds from ``origin``'s start to this timer's start (same device)."""
        raise NotImplementedError


class DeviceBackend:
    """The interface every device type implements (template methods, small overrides)."""

    device_type: int = 0
    name: str = ""
    #: The array module: ``numpy`` or ``cupy``.
    xp: Any = np

    def exists(self, index: int) -> bool:
        raise NotImplementedError

    def require(self, index: int) -> None:
        """Raise DeviceError saying why device ``index`` cannot be used."""

    def attribute(self, index: int, name: str) -> Any:
        raise NotImplementedError

    # -- memory -------------------------------------------------------------------
    def raw_alloc(self, index: int, nbytes: int) -> Any:
        """Return an opaque handle to ``nbytes`` of device memory, ALIGNMENT-aligned.

        Raises MemoryError (or a subclass) when the device is out of memory.
        """
        raise NotImplementedError

    def raw_free(self, handle: Any) -> None:
        """Give a raw block back to the device."""
        raise NotImplementedError

    def ref_count(self, handle: Any) -> int:
        """How many references keep ``handle``'s memory alive (views included).

        Pools compare this, when a block is freed, with the count for a block nobody
        else views: a larger count means an outside array (a user's ``np.from_dlpack``
        view, say) still sees the memory, so the block must not be handed out again.
        """
        return sys.getrefcount(handle)

    def view(self, handle: Any, offset: int, shape: tuple[int, ...], dtype: Any) -> Any:
        """An array of ``shape``/``dtype`` over the handle's memory at byte ``offset``."""
        raise NotImplementedError

    def release_foreign_caches(self, index: int) -> None:
        """Drop caches that libraries under us (CuPy's own pool) hold on device ``index``.

        The pools call this after an out-of-memory, before their one retry.
        """

    def memory_info(self, index: int) -> tuple[int, int] | None:
        """(free, total) bytes on the device, or None when unknown."""
        return None

    # -- data movement --------------------------------------------------------------
    def to_numpy(self, array: Any) -> np.ndarray:
        """A host copy of a device array."""
        raise NotImplementedError

    def copy_from_host(self, dst: Any, src: np.ndarray) -> None:
        """Copy a host array into a device array of the same shape."""
        raise NotImplementedError

    def copy_within(self, dst: Any, src: Any) -> None:
        """Copy between two arrays of this device type (possibly different indices)."""
        raise NotImplementedError

    def is_array(self, obj: Any) -> bool:
        """True for this backend's native array type."""
        raise NotImplementedError

    def from_dlpack(self, index: int, obj: Any) -> Any:
        """A zero-copy native array over a DLPack producer living on device ``index``."""
        raise NotImplementedError

    # -- execution ------------------------------------------------------------------
    def synchronize(self, index: int) -> None:
        """Wait for all queued work on device ``index``."""

    def create_timer(self, index: int) -> DeviceTimer:
        raise NotImplementedError

    def release_timer(self, index: int, timer: DeviceTimer) -> None:
        """Hand back a timer whose reading was taken, for reuse (no-op by default)."""

    def activate(self, index: int) -> Any:
        """A context manager that makes ``index`` the current device (no-op on CPU)."""
        import contextlib
        return contextlib.nullcontext()


# Not "devices/cpu.py": a submodule named like the cpu() helper would replace it as an
# attribute of the package the moment the backend loads.
_BACKEND_MODULES = {1: "relaxvm.devices.cpu_backend", 2: "relaxvm.devices.cuda_backend"}
_backends: dict[int, DeviceBackend] = {}


def get_backend(device_type: int) -> DeviceBackend:
    """The backend for a DLPack device type, imported on first use."""
    backend = _backends.get(device_type)
    if backend is None:
        from relaxvm.errors import DeviceError
        module_name = _BACKEND_MODULES.get(device_type)
        if module_name is None:
            raise DeviceError(
                f"get_backend: no backend for device type {device_type}; "
                f"known types are {sorted(_BACKEND_MODULES)}")
        backend = importlib.import_module(module_name).BACKEND
        _backends[device_type] = backend
    return backend
