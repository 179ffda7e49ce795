"""PooledAllocator: size-rounded free lists, reuse, release-and-retry on OOM.

Policy (see docs/memory.md for the measurements behind it):

* Sizes round up to 4 KiB pages below 1 MiB, 64 KiB below 64 MiB, 2 MiB above. A freed
  block goes on the free list of its exact rounded size; an alloc of that size pops it
  (LIFO, no splitting or merging). Statically planned programs ask for the same sizes
  on every run, and exact-size lists are the cheapest policy that reaches a
  fragmentation of 1.0 on them.
* On an exact-size miss, the smallest cached block of up to twice the request is
  reused. Dynamic shapes (a growing sequence, a variable batch) otherwise never hit.
* When the device (or ``limit_bytes``) refuses a request, unreachable tensors are
  collected, every cached block is released (ours, and CuPy's pool on that device) and
  the request retried once; a second refusal raises OutOfMemoryError.
* A block still viewed by an array outside relaxvm when it is freed is not cached:
  handing it out again would let that array see someone else's data.
* A caller that asks for one size again and again (a VM allocation site with a constant
  size) takes a :meth:`PooledAllocator.sized` function: rounding and the free-list
  lookup are done once, so a cache hit costs a pop and the counters.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from sys import getrefcount

from relaxvm.devices.backend import ALIGNMENT, DeviceBackend
from relaxvm.devices.device import Device
from relaxvm.memory.allocator import POOLED, Allocator, Buffer

KIB = 1 << 10
MIB = 1 << 20
_UNMEASURED = 1 << 62


def round_size(nbytes: int) -> int:
    """The block size a request of ``nbytes`` is served from."""
    if nbytes <= MIB:
        step = 4 * KIB
    elif nbytes <= 64 * MIB:
        step = 64 * KIB
    else:
        step = 2 * MIB
    return max(step, (nbytes + step - 1) // step * step)


class PooledAllocator(Allocator):
    """Caches freed blocks in per-size free lists and reuses them."""

    kind = POOLED

    def __init__(self, device: Device, backend: DeviceBackend | None = None,
                 limit_bytes: int | None = None) -> None:
        super().__init__(device, backend, limit_bytes)
        self._free_lists: dict[int, list[Buffer]] = {}
        self._sizes: list[int] = []  # sorted keys of _free_lists, for the 2x fallback
        self._pinned: set[int] = set()  # sizes whose free list a sized() function holds
        # The reference count of a block nobody outside views, read the way free() reads
        # it; measured on the first fresh block (no probe allocation, which could fail
        # on a full device and make free() raise).
        self._ref_baseline = _UNMEASURED
        self._ref_count = self.backend.ref_count
        self.num_blocks_dropped_in_use = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes held in free lists, ready for reuse (counted when asked: the hot paths
        then keep one counter fewer)."""
        return sum(size * len(blocks) for size, blocks in self._free_lists.items())

    def alloc(self, nbytes: int, alignment: int = ALIGNMENT) -> Buffer:
        """A block of at least ``nbytes``, from the pool's cache when one fits."""
        if nbytes.__class__ is not int or nbytes < 0 or alignment != ALIGNMENT:
            self._check_request(nbytes, alignment)
        # round_size() inlined (a call costs more than the rest of the hit path):
        # 4 KiB steps up to 1 MiB, 64 KiB steps up to 64 MiB, 2 MiB steps beyond.
        if nbytes <= 1048576:
            size = (nbytes + 4095) & ~4095 or 4096
        elif nbytes <= 67108864:
            size = (nbytes + 65535) & ~65535
        else:
            size = (nbytes + 2097151) & ~2097151
        free_list = self._free_lists.get(size)
        if free_list:
            buffer = free_list.pop()
            self.num_cache_hits += 1
        else:
            buffer = self._take_larger_cached(size) or self._alloc_fresh(size, nbytes)
        self.num_allocs += 1
        self._allocated += buffer.nbytes
        if self._allocated > self._allocated_peak:
            self._allocated_peak = self._allocated
        return buffer

    def sized(self, nbytes: int) -> Callable[[], Buffer]:
        """``alloc(nbytes)`` as a function of no arguments, for a caller that asks for the
        same size again and again; same blocks, same statistics, fewer steps per call."""
        if nbytes.__class__ is not int or nbytes < 0:
            self._check_request(nbytes, ALIGNMENT)
        size = round_size(nbytes)
        free_list = self._free_list(size)
        self._pinned.add(size)  # empty_cache keeps this list object: we hold it
        alloc = self.alloc

        def alloc_sized() -> Buffer:
            if not free_list:
                return alloc(nbytes)
            buffer = free_list.pop()
            self.num_cache_hits += 1
            self.num_allocs += 1
            allocated = self._allocated = self._allocated + size
            if allocated > self._allocated_peak:
                self._allocated_peak = allocated
            return buffer

        return alloc_sized

    def free(self, buffer: Buffer) -> None:
        """Return the block to the pool's cache for reuse."""
        self.num_frees += 1
        size = buffer.nbytes
        self._allocated -= size
        # Is the memory still viewed from outside? Through one of the block's cached views
        # (held by more than the views dict), or through an array of its own (the raw
        # block is held by more than its allocation and the cached views). Inlined: this
        # runs for every Storage that dies.
        views = buffer.views
        in_views = 0
        if views:
            for view in views.values():
                if getrefcount(view) > _VIEW_REFS:
                    in_views = -1
                    break
            else:
                in_views = len(views)
        if in_views < 0 or self._ref_count(buffer.handle) > self._ref_baseline + in_views:
            # Someone outside still views this memory: let it go with them.
            # Not raw_free: the memory must outlive those views. The count drops now.
            self.num_blocks_dropped_in_use += 1
            self._reserved -= size
            buffer.handle = None
            buffer.views = None
            return
        free_list = self._free_lists.get(size)
        if free_list is None:
            free_list = self._free_list(size)
        free_list.append(buffer)

    def empty_cache(self) -> int:
        """Release every cached block back to the device; returns the bytes released."""
        released = 0
        for free_list in self._free_lists.values():
            for buffer in free_list:
                buffer.views = None
                self._backend_free(buffer.handle, buffer.nbytes)
                buffer.handle = None
                released += buffer.nbytes
            free_list.clear()
        # Forget the sizes seen, except those whose (now empty) list a sized() function holds.
        self._free_lists = {size: self._free_lists[size] for size in self._sizes
                            if size in self._pinned}
        self._sizes = sorted(self._free_lists)
        return released

    def stats(self) -> dict[str, int]:
        """The pool's counters (allocated, reserved and cached bytes, hits, misses, OOMs)."""
        out = super().stats()
        out["cached_bytes.current"] = self.cached_bytes
        out["num_blocks_dropped_in_use"] = self.num_blocks_dropped_in_use
        return out

    # -- slow paths -----------------------------------------------------------------
    def _free_list(self, size: int) -> list[Buffer]:
        """The free list of blocks of ``size`` bytes, made (and its size listed) if new."""
        free_list = self._free_lists.get(size)
        if free_list is None:
            free_list = self._free_lists[size] = []
            bisect.insort(self._sizes, size)
        return free_list

    def _take_larger_cached(self, size: int) -> Buffer | None:
        """Pop the smallest cached block in (size, 2*size], or None."""
        sizes = self._sizes
        i = bisect.bisect_right(sizes, size)
        while i < len(sizes) and sizes[i] <= 2 * size:
            free_list = self._free_lists[sizes[i]]
            if free_list:
                buffer = free_list.pop()
                self.num_cache_hits += 1
                return buffer
            i += 1
        return None

    def _alloc_fresh(self, size: int, requested: int) -> Buffer:
        self.num_cache_misses += 1
        try:
            handle = self._backend_alloc(size)
        except MemoryError:
            self.num_alloc_retries += 1
            self._make_room()
            try:
                handle = self._backend_alloc(size)
            except MemoryError as exc:
                self._raise_oom(requested, exc, rounded=size)
        buffer = Buffer(handle, self.device, size, self)
        del handle
        if self._ref_baseline == _UNMEASURED:
            self._ref_baseline = self._ref_count(buffer.handle)
        return buffer


def _calibrate_view_refs() -> int:
    """getrefcount of a cached view nobody else holds, read as PooledAllocator.free reads it
    (a loop variable over the dict's values)."""
    views = {0: object()}
    for view in views.values():
        return getrefcount(view)
    return 0  # pragma: no cover


_VIEW_REFS = _calibrate_view_refs()
