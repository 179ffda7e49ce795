"""The Allocator interface, Buffer, and the NaiveAllocator.

``Allocator.alloc`` validates, accounts and turns backend failures into
OutOfMemoryError once; subclasses choose policy by overriding ``_obtain`` and
``_release`` (template methods). The raw source of memory is an injected backend, so
pool logic is testable on the CPU with a fake one.
"""

from __future__ import annotations

import gc
from typing import Any

from relaxvm.devices.backend import ALIGNMENT, DeviceBackend
from relaxvm.devices.device import Device
from relaxvm.errors import OutOfMemoryError

NAIVE = "naive"
POOLED = "pooled"


class Buffer:
    """A block of device memory: its handle, device, size in bytes and owning allocator."""

    __slots__ = ("handle", "device", "nbytes", "allocator", "views", "__weakref__")

    def __init__(self, handle: Any, device: Device, nbytes: int, allocator: Allocator) -> None:
        self.handle = handle
        self.device = device
        self.nbytes = nbytes
        self.allocator = allocator
        #: Typed array views made over this block, keyed (offset, shape, dtype). A pooled
        #: block is reused run after run with the same views, so they are made once.
        self.views: dict[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"Buffer({self.device}, {self.nbytes} bytes, {self.allocator.kind})"


class Allocator:
    """Hands out Buffers on one device and keeps PyTorch-named statistics.

    ``limit_bytes`` caps reserved memory (bytes obtained from the backend); a request
    past the cap fails as an out-of-memory would.
    """

    kind = "base"

    def __init__(self, device: Device, backend: DeviceBackend | None = None,
                 limit_bytes: int | None = None) -> None:
        self.device = device
        self.backend = backend if backend is not None else device.backend
        if limit_bytes is not None and (not isinstance(limit_bytes, int) or limit_bytes < 0):
            raise ValueError(f"{type(self).__name__}: limit_bytes must be an int >= 0 or None, "
                             f"got {limit_bytes!r}")
        self.limit_bytes = limit_bytes
        self._allocated = 0
        self._allocated_peak = 0
        self._reserved = 0
        self._reserved_peak = 0
        self.num_allocs = 0
        self.num_frees = 0
        self.num_cache_hits = 0
        self.num_cache_misses = 0
        self.num_alloc_retries = 0
        self.num_ooms = 0

    # -- public API -----------------------------------------------------------------
    def alloc(self, nbytes: int, alignment: int = ALIGNMENT) -> Buffer:
        """A Buffer of at least ``nbytes`` bytes aligned to ``alignment`` (<= 64)."""
        raise NotImplementedError

    def free(self, buffer: Buffer) -> None:
        """Return a Buffer obtained from this allocator."""
        raise NotImplementedError

    def empty_cache(self) -> int:
        """Release cached, unused blocks to the device; returns the bytes released."""
        return 0

    def stats(self) -> dict[str, int]:
        """Counters with PyTorch's names, flattened (``allocated_bytes.current`` ...)."""
        return {
            "allocated_bytes.current": self._allocated,
            "allocated_bytes.peak": self._allocated_peak,
            "reserved_bytes.current": self._reserved,
            "reserved_bytes.peak": self._reserved_peak,
            "num_allocs": self.num_allocs,
            "num_frees": self.num_frees,
            "num_cache_hits": self.num_cache_hits,
            "num_cache_misses": self.num_cache_misses,
            "num_alloc_retries": self.num_alloc_retries,
            "num_ooms": self.num_ooms,
        }

    def reset_peak_stats(self) -> None:
        """Set both peaks to the current values."""
        self._allocated_peak = self._allocated
        self._reserved_peak = self._reserved

    @property
    def allocated_bytes(self) -> int:
        """Bytes handed out and not yet freed."""
        return self._allocated

    @property
    def reserved_bytes(self) -> int:
        """Bytes held from the device, cached blocks included."""
        return self._reserved

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.device}, allocated={self._allocated}, "
                f"reserved={self._reserved})")

    # -- helpers for subclasses -------------------------------------------------------
    def _check_request(self, nbytes: int, alignment: int) -> None:
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
            raise ValueError(f"{type(self).__name__}.alloc: nbytes must be an int >= 0, "
                             f"got {nbytes!r}")
        if alignment > ALIGNMENT or alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"{type(self).__name__}.alloc: alignment must be a power of two "
                             f"<= {ALIGNMENT}, got {alignment!r}")

    def _backend_alloc(self, nbytes: int) -> Any:
        """One raw allocation, honouring ``limit_bytes``; raises MemoryError on failure."""
        if self.limit_bytes is not None and self._reserved + nbytes > self.limit_bytes:
            raise MemoryError(f"limit of {self.limit_bytes} bytes reached")
        handle = self.backend.raw_alloc(self.device.index, nbytes)
        self._reserved += nbytes
        if self._reserved > self._reserved_peak:
            self._reserved_peak = self._reserved
        return handle

    def _make_room(self) -> None:
        """Free everything that may hold memory on this device, before the one retry.

        A full ``gc.collect()`` first, as CuPy's pool does: tensors caught in reference
        cycles then hand their blocks back, and ``empty_cache`` releases them with the
        rest. It runs once per out-of-memory, never on the normal paths.
        """
        gc.collect()
        self.empty_cache()
        self.backend.release_foreign_caches(self.device.index)

    def _backend_free(self, handle: Any, nbytes: int) -> None:
        self.backend.raw_free(handle)
        self._reserved -= nbytes

    def _raise_oom(self, nbytes: int, cause: BaseException, rounded: int | None = None) -> None:
        self.num_ooms += 1
        limit = "" if self.limit_bytes is None else f", limit {self.limit_bytes}"
        block = "" if rounded is None or rounded == nbytes else f" (a {rounded}-byte block)"
        raise OutOfMemoryError(
            f"{type(self).__name__}.alloc: out of memory on {self.device}: tried to allocate "
            f"{nbytes} bytes{block} with {self._allocated} bytes allocated and "
            f"{self._reserved} bytes reserved{limit} ({cause})",
            device=self.device, requested_bytes=nbytes, allocated_bytes=self._allocated,
            reserved_bytes=self._reserved, limit_bytes=self.limit_bytes) from cause


class NaiveAllocator(Allocator):
    """Every alloc goes to the device and every free returns to it; exact sizes."""

    kind = NAIVE

    def alloc(self, nbytes: int, alignment: int = ALIGNMENT) -> Buffer:
        """A fresh block of at least ``nbytes`` straight from the device."""
        self._check_request(nbytes, alignment)
        self.num_cache_misses += 1
        try:
            handle = self._backend_alloc(nbytes)
        except MemoryError:
            self.num_alloc_retries += 1
            self._make_room()
            try:
                handle = self._backend_alloc(nbytes)
            except MemoryError as exc:
                self._raise_oom(nbytes, exc)
        self.num_allocs += 1
        self._allocated += nbytes
        if self._allocated > self._allocated_peak:
            self._allocated_peak = self._allocated
        return Buffer(handle, self.device, nbytes, self)

    def free(self, buffer: Buffer) -> None:
        """Give the block back to the device at once."""
        self.num_frees += 1
        self._allocated -= buffer.nbytes
        self._backend_free(buffer.handle, buffer.nbytes)
        buffer.handle = None
