"""A fake DeviceBackend for deterministic pool tests (no NumPy memory, no GPU).

``raw_alloc`` returns a fresh ``FakeBlock`` handle each time and can be told to fail,
always or for a number of calls, so the pool's reuse, retry and out-of-memory logic can
be driven exactly. Every raw allocation and release is recorded.
"""

from __future__ import annotations

from typing import Any

from relaxvm.devices.backend import DeviceBackend


class FakeBlock:
    """An opaque raw block: a size and a serial number."""

    __slots__ = ("nbytes", "serial")

    def __init__(self, nbytes: int, serial: int) -> None:
        self.nbytes = nbytes
        self.serial = serial

    def __repr__(self) -> str:
        return f"FakeBlock(#{self.serial}, {self.nbytes} bytes)"


class FakeBackend(DeviceBackend):
    """Hands out FakeBlocks; ``fail_next(n)`` or ``capacity`` make raw_alloc refuse."""

    device_type = 1
    name = "fake"

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.live: dict[int, FakeBlock] = {}
        self.allocs: list[int] = []
        self.frees: list[int] = []
        self.foreign_releases = 0
        self.foreign_release_indices: list[int] = []
        self._failures_left = 0
        self._serial = 0

    def fail_next(self, count: int = 1) -> None:
        """Make the next ``count`` raw allocations raise MemoryError."""
        self._failures_left = count

    @property
    def live_bytes(self) -> int:
        return sum(b.nbytes for b in self.live.values())

    def exists(self, index: int) -> bool:
        return True

    def raw_alloc(self, index: int, nbytes: int) -> Any:
        if self._failures_left > 0:
            self._failures_left -= 1
            raise MemoryError(f"fake device refused {nbytes} bytes")
        if self.capacity is not None and self.live_bytes + nbytes > self.capacity:
            raise MemoryError(f"fake device full: {self.live_bytes} of {self.capacity} used")
        self._serial += 1
        block = FakeBlock(nbytes, self._serial)
        self.live[block.serial] = block
        self.allocs.append(nbytes)
        return block

    def raw_free(self, handle: Any) -> None:
        if handle is None or handle.serial not in self.live:
            raise AssertionError(f"fake backend: bad or double raw_free of {handle!r}")
        del self.live[handle.serial]
        self.frees.append(handle.nbytes)

    def release_foreign_caches(self, index: int) -> None:
        self.foreign_releases += 1
        self.foreign_release_indices.append(index)
