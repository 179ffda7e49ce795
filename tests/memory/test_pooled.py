"""PooledAllocator: rounding, reuse, the 2x fallback, empty_cache, stats and the OOM path.

Most tests drive the pool with a fake backend; the last ones run it on the real backend
of every device (``dev``), so the GPU run checks the same OOM path against cudaMalloc.
"""

from __future__ import annotations

import re
import weakref

import numpy as np
import pytest
from fake_backend import FakeBackend

import relaxvm
from relaxvm.errors import OutOfMemoryError
from relaxvm.memory import PooledAllocator, round_size
from relaxvm.tensor import empty

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def pool(limit: int | None = None, capacity: int | None = None):
    backend = FakeBackend(capacity=capacity)
    return PooledAllocator(relaxvm.cpu(0), backend, limit_bytes=limit), backend


@pytest.mark.parametrize("nbytes, expected", [
    (0, 4 * KIB), (1, 4 * KIB), (4 * KIB, 4 * KIB), (4 * KIB + 1, 8 * KIB),
    (MIB - 1, MIB), (MIB, MIB), (MIB + 1, MIB + 64 * KIB),
    (64 * MIB, 64 * MIB), (64 * MIB + 1, 66 * MIB), (100 * MIB + 5, 102 * MIB),
])
def test_round_size_uses_page_then_coarser_steps(nbytes, expected):
    assert round_size(nbytes) == expected


@pytest.mark.parametrize("nbytes", [0, 1, 4097, MIB + 1, 64 * MIB + 1, 300 * MIB + 7])
def test_alloc_serves_the_rounded_size_from_the_backend(nbytes):
    alloc, backend = pool()
    buf = alloc.alloc(nbytes)
    assert buf.nbytes == round_size(nbytes) == backend.allocs[0]


def test_pool_reuses_freed_block_of_same_rounded_size():
    alloc, backend = pool()
    a = alloc.alloc(5000)
    serial = a.handle.serial  # holding the handle itself would count as an outside view
    alloc.free(a)
    b = alloc.alloc(6000)  # both round to 8 KiB
    assert b.handle.serial == serial
    assert backend.allocs == [8 * KIB]
    stats = alloc.stats()
    assert (stats["num_cache_hits"], stats["num_cache_misses"]) == (1, 1)


def test_pool_reuses_blocks_last_in_first_out():
    alloc, _ = pool()
    a, b = alloc.alloc(4096), alloc.alloc(4096)
    sa, sb = a.handle.serial, b.handle.serial
    alloc.free(a)
    alloc.free(b)
    assert alloc.alloc(4096).handle.serial == sb
    assert alloc.alloc(4096).handle.serial == sa


def test_pool_falls_back_to_smallest_cached_block_up_to_twice_the_request():
    alloc, backend = pool()
    blocks = [alloc.alloc(n) for n in (12 * KIB, 16 * KIB, 20 * KIB)]
    serials = [b.handle.serial for b in blocks]
    for b in blocks:
        alloc.free(b)
    del b, blocks
    got = alloc.alloc(8 * KIB)
    assert got.handle.serial == serials[0] and got.nbytes == 12 * KIB
    assert alloc.stats()["allocated_bytes.current"] == 12 * KIB
    assert len(backend.allocs) == 3


def test_pool_does_not_reuse_blocks_larger_than_twice_the_request():
    alloc, backend = pool()
    alloc.free(alloc.alloc(16 * KIB + 1))  # a 20 KiB block
    got = alloc.alloc(8 * KIB)
    assert got.nbytes == 8 * KIB
    assert backend.allocs == [20 * KIB, 8 * KIB]
    assert alloc.cached_bytes == 20 * KIB


def test_pool_never_reuses_a_smaller_block():
    alloc, backend = pool()
    alloc.free(alloc.alloc(4 * KIB))
    assert alloc.alloc(8 * KIB).nbytes == 8 * KIB
    assert backend.allocs == [4 * KIB, 8 * KIB]


def test_cached_bytes_tracks_the_free_lists():
    alloc, _ = pool()
    a, b = alloc.alloc(4 * KIB), alloc.alloc(MIB)
    assert alloc.cached_bytes == 0
    alloc.free(a)
    alloc.free(b)
    assert alloc.cached_bytes == MIB + 4 * KIB
    alloc.alloc(MIB)
    assert alloc.cached_bytes == 4 * KIB


def test_empty_cache_releases_cached_blocks_but_not_live_ones():
    alloc, backend = pool()
    live = alloc.alloc(4 * KIB)
    alloc.free(alloc.alloc(8 * KIB))
    alloc.free(alloc.alloc(MIB))
    assert alloc.empty_cache() == MIB + 8 * KIB
    assert sorted(backend.frees) == [8 * KIB, MIB]
    assert list(backend.live.values()) == [live.handle]
    stats = alloc.stats()
    assert stats["reserved_bytes.current"] == 4 * KIB == stats["allocated_bytes.current"]
    assert stats["cached_bytes.current"] == 0
    assert alloc.empty_cache() == 0
    assert alloc.alloc(8 * KIB).handle is not None


def test_stats_names_and_values_after_a_known_sequence():
    alloc, _ = pool()
    a = alloc.alloc(100)           # miss, 4 KiB
    b = alloc.alloc(5000)          # miss, 8 KiB
    alloc.free(a)
    c = alloc.alloc(10)            # hit on a's block
    alloc.free(b)
    alloc.free(c)
    assert alloc.stats() == {
        "allocated_bytes.current": 0, "allocated_bytes.peak": 12 * KIB,
        "reserved_bytes.current": 12 * KIB, "reserved_bytes.peak": 12 * KIB,
        "num_allocs": 3, "num_frees": 3, "num_cache_hits": 1, "num_cache_misses": 2,
        "num_alloc_retries": 0, "num_ooms": 0, "cached_bytes.current": 12 * KIB,
        "num_blocks_dropped_in_use": 0,
    }


def test_sized_alloc_serves_the_same_blocks_and_stats_as_alloc():
    def run(use_sized):
        alloc, backend = pool()
        take = alloc.sized(5000) if use_sized else (lambda: alloc.alloc(5000))
        a = take()                 # miss, 8 KiB
        serial = a.handle.serial
        alloc.free(a)
        b = take()                 # hit on a's block
        c = take()                 # miss
        alloc.free(b)
        alloc.free(c)
        return serial == b.handle.serial, backend.allocs, alloc.stats()

    assert run(use_sized=True) == run(use_sized=False)
    assert run(use_sized=True)[:2] == (True, [8 * KIB, 8 * KIB])


def test_sized_alloc_falls_back_to_a_larger_cached_block_like_alloc():
    alloc, backend = pool()
    alloc.free(alloc.alloc(8 * KIB))
    buf = alloc.sized(4 * KIB)()
    assert buf.nbytes == 8 * KIB and backend.allocs == [8 * KIB]
    assert alloc.stats()["num_cache_hits"] == 1


def test_sized_alloc_keeps_working_across_empty_cache():
    alloc, backend = pool()
    take = alloc.sized(4 * KIB)
    alloc.free(take())
    alloc.free(alloc.alloc(MIB))
    assert alloc.empty_cache() == MIB + 4 * KIB
    assert alloc.cached_bytes == 0 and sorted(alloc._free_lists) == [4 * KIB]  # MIB forgotten
    alloc.free(take())                    # a fresh block, returned to the list take() holds
    hits = alloc.stats()["num_cache_hits"]
    serial = alloc._free_lists[4 * KIB][-1].handle.serial
    assert take().handle.serial == serial
    assert alloc.stats()["num_cache_hits"] == hits + 1
    assert backend.allocs == [4 * KIB, MIB, 4 * KIB]


def test_sized_alloc_rejects_a_bad_size():
    alloc, _ = pool()
    with pytest.raises(ValueError, match=r"nbytes must be an int >= 0, got -1"):
        alloc.sized(-1)


def test_reset_peak_stats_after_empty_cache_reflects_current_usage():
    alloc, _ = pool()
    keep = alloc.alloc(4 * KIB)
    alloc.free(alloc.alloc(MIB))
    alloc.empty_cache()
    alloc.reset_peak_stats()
    stats = alloc.stats()
    assert stats["reserved_bytes.peak"] == 4 * KIB == stats["allocated_bytes.peak"]
    alloc.free(keep)


def test_failed_alloc_releases_the_cache_and_retries_once():
    alloc, backend = pool(limit=16 * KIB)
    live = alloc.alloc(4 * KIB)
    alloc.free(alloc.alloc(8 * KIB))             # reserved 12 KiB, 8 KiB cached
    buf = alloc.alloc(12 * KIB)                  # 24 KiB > limit: release 8 KiB, retry
    assert buf.nbytes == 12 * KIB
    stats = alloc.stats()
    assert (stats["num_alloc_retries"], stats["num_ooms"]) == (1, 0)
    assert stats["reserved_bytes.current"] == 16 * KIB and alloc.cached_bytes == 0
    assert backend.frees == [8 * KIB] and backend.foreign_releases == 1
    alloc.free(live)
    alloc.free(buf)


def test_device_refusal_also_triggers_release_and_retry():
    alloc, backend = pool(capacity=12 * KIB)
    alloc.free(alloc.alloc(8 * KIB))
    buf = alloc.alloc(12 * KIB)
    assert buf.nbytes == 12 * KIB and backend.frees == [8 * KIB]
    assert alloc.stats()["num_alloc_retries"] == 1


def test_out_of_memory_names_device_request_and_pool_state():
    alloc, backend = pool(limit=16 * KIB)
    alloc.alloc(8 * KIB)  # stays live
    alloc.free(alloc.alloc(4 * KIB))
    with pytest.raises(OutOfMemoryError, match=(
            r"PooledAllocator.alloc: out of memory on cpu:0: tried to allocate 10000 bytes "
            r"\(a 12288-byte block\) with 8192 bytes allocated and 8192 bytes reserved, limit "
            r"16384 \(limit of 16384 bytes reached\)")) as info:
        alloc.alloc(10000)
    err = info.value
    assert (err.device, err.requested_bytes, err.limit_bytes) == (relaxvm.cpu(0), 10000, 16384)
    assert (err.allocated_bytes, err.reserved_bytes) == (8 * KIB, 8 * KIB)
    assert isinstance(err.__cause__, MemoryError)
    stats = alloc.stats()
    assert (stats["num_ooms"], stats["num_alloc_retries"]) == (1, 1)
    assert alloc.cached_bytes == 0, "the cache was released before the retry"


def test_pool_is_usable_after_an_oom_and_leaks_nothing():
    alloc, backend = pool(limit=16 * KIB)
    live = alloc.alloc(8 * KIB)
    with pytest.raises(OutOfMemoryError):
        alloc.alloc(12 * KIB)
    other = alloc.alloc(8 * KIB)
    assert other.nbytes == 8 * KIB
    alloc.free(live)
    alloc.free(other)
    alloc.empty_cache()
    stats = alloc.stats()
    assert stats["reserved_bytes.current"] == 0 == stats["allocated_bytes.current"]
    assert backend.live == {}


def test_block_still_referenced_outside_is_dropped_not_reused():
    alloc, backend = pool()
    buf = alloc.alloc(4 * KIB)
    outside = buf.handle  # an outside view keeps the raw block alive
    alloc.free(buf)
    assert alloc.cached_bytes == 0
    assert alloc.alloc(4 * KIB).handle is not outside
    stats = alloc.stats()
    assert stats["num_blocks_dropped_in_use"] == 1
    assert stats["reserved_bytes.current"] == 4 * KIB, "the dropped block no longer counts"


def test_free_does_not_allocate_from_the_backend():
    alloc, backend = pool()
    buf = alloc.alloc(4 * KIB)
    backend.fail_next(10)
    alloc.free(buf)  # must not need the device, which is refusing everything now
    assert alloc.cached_bytes == 4 * KIB and backend.allocs == [4 * KIB]


# -- on the real backend of every device -----------------------------------------------------
def weak(handle):
    """A weak reference to a raw block, or None where the backend's type has none."""
    try:
        return weakref.ref(handle)
    except TypeError:
        return None


def test_real_backend_oom_is_clean_and_the_pool_stays_usable(dev):
    pool = PooledAllocator(dev, limit_bytes=64 * KIB)
    assert pool.backend is dev.backend
    live = pool.alloc(32 * KIB)
    cached = pool.alloc(16 * KIB)
    handles = [weak(live.handle), weak(cached.handle)]
    pool.free(cached)              # cached, then released by the OOM path before its retry
    del cached
    with pytest.raises(OutOfMemoryError, match=re.escape(
            f"PooledAllocator.alloc: out of memory on {dev}: tried to allocate 40000 bytes "
            f"(a 40960-byte block) with 32768 bytes allocated and 32768 bytes reserved, limit "
            f"65536 (limit of 65536 bytes reached)")) as info:
        pool.alloc(40000)
    err = info.value
    assert (err.device, err.requested_bytes, err.limit_bytes) == (dev, 40000, 64 * KIB)
    assert (err.allocated_bytes, err.reserved_bytes) == (32 * KIB, 32 * KIB)
    stats = pool.stats()
    assert (stats["num_ooms"], stats["num_alloc_retries"], pool.cached_bytes) == (1, 1, 0)

    t = empty((8 * KIB,), "float32", dev, allocator=pool)  # 32 KiB: fits beside `live`
    t.copyfrom(np.arange(8 * KIB, dtype="float32"))
    np.testing.assert_array_equal(t.numpy(), np.arange(8 * KIB, dtype="float32"))
    del t
    pool.free(live)
    del live
    assert pool.empty_cache() == 64 * KIB
    stats = pool.stats()
    assert stats["allocated_bytes.current"] == 0 == stats["reserved_bytes.current"]
    assert stats["num_allocs"] == stats["num_frees"] == 3
    assert stats["num_blocks_dropped_in_use"] == 0
    assert all(ref() is None for ref in handles if ref is not None), "a raw block leaked"


@pytest.mark.cuda
def test_cuda_oom_past_total_memory_drains_cupys_pool_and_leaks_nothing():
    import cupy
    dev = relaxvm.cuda(0)
    with cupy.cuda.Device(0):
        cupy_pool = cupy.get_default_memory_pool()
        scratch = cupy.ones(1 << 20, "float32")  # freed into CuPy's pool
        del scratch
        assert cupy_pool.free_bytes() > 0
    pool = PooledAllocator(dev)
    pool.free(pool.alloc(MIB))
    request = dev.total_global_memory + GIB
    with pytest.raises(OutOfMemoryError, match=(
            rf"out of memory on cuda:0: tried to allocate {request} bytes \(a "
            rf"{round_size(request)}-byte block\) with 0 bytes allocated and 0 bytes reserved "
            rf"\(cudaMalloc of {round_size(request)} bytes on cuda:0 failed: ")) as info:
        pool.alloc(request)
    assert info.value.device is dev and isinstance(info.value.__cause__, MemoryError)
    with cupy.cuda.Device(0):
        assert cupy_pool.free_bytes() == 0, "the OOM path must drain CuPy's pool"
    stats = pool.stats()
    assert (stats["num_ooms"], stats["num_alloc_retries"]) == (1, 1)
    assert stats["reserved_bytes.current"] == 0 == pool.cached_bytes
    assert pool.alloc(MIB).nbytes == MIB, "the pool stays usable"
