"""Allocator base behaviour and the NaiveAllocator, driven by a fake backend."""

from __future__ import annotations

import gc

import pytest
from fake_backend import FakeBackend

import relaxvm
from relaxvm.errors import OutOfMemoryError
from relaxvm.memory import NaiveAllocator, PooledAllocator, Storage

STAT_NAMES = {
    "allocated_bytes.current", "allocated_bytes.peak", "reserved_bytes.current",
    "reserved_bytes.peak", "num_allocs", "num_frees", "num_cache_hits", "num_cache_misses",
    "num_alloc_retries", "num_ooms",
}


def naive(limit: int | None = None) -> tuple[NaiveAllocator, FakeBackend]:
    backend = FakeBackend()
    return NaiveAllocator(relaxvm.cpu(0), backend, limit_bytes=limit), backend


def test_naive_sends_every_alloc_and_free_to_the_backend_with_exact_sizes():
    alloc, backend = naive()
    a, b = alloc.alloc(100), alloc.alloc(5000)
    assert backend.allocs == [100, 5000]
    assert (a.nbytes, b.nbytes) == (100, 5000)
    assert a.handle is not b.handle
    alloc.free(a)
    assert backend.frees == [100]
    c = alloc.alloc(100)
    assert c.handle is not a.handle, "the naive allocator must never reuse a block"
    assert backend.allocs == [100, 5000, 100]


def test_naive_stats_count_bytes_and_calls():
    alloc, backend = naive()
    a, b = alloc.alloc(100), alloc.alloc(300)
    alloc.free(a)
    stats = alloc.stats()
    assert set(stats) == STAT_NAMES
    assert stats["allocated_bytes.current"] == 300 == stats["reserved_bytes.current"]
    assert stats["allocated_bytes.peak"] == 400 == stats["reserved_bytes.peak"]
    assert (stats["num_allocs"], stats["num_frees"]) == (2, 1)
    assert (stats["num_cache_hits"], stats["num_cache_misses"]) == (0, 2)
    assert alloc.empty_cache() == 0
    alloc.free(b)
    assert alloc.stats()["reserved_bytes.current"] == 0 and backend.live == {}


def test_reset_peak_stats_sets_peaks_to_current_values():
    alloc, _ = naive()
    a = alloc.alloc(1000)
    alloc.free(alloc.alloc(5000))
    assert alloc.stats()["allocated_bytes.peak"] == 6000
    alloc.reset_peak_stats()
    stats = alloc.stats()
    assert stats["allocated_bytes.peak"] == 1000 == stats["allocated_bytes.current"]
    assert stats["reserved_bytes.peak"] == 1000
    alloc.free(a)


def test_naive_retries_once_after_releasing_foreign_caches():
    alloc, backend = naive()
    backend.fail_next(1)
    buf = alloc.alloc(64)
    assert buf.nbytes == 64
    assert backend.foreign_releases == 1
    assert alloc.stats()["num_alloc_retries"] == 1 and alloc.stats()["num_ooms"] == 0


@pytest.mark.parametrize("cls", [NaiveAllocator, PooledAllocator])
def test_foreign_caches_are_released_on_the_device_that_ran_out(cls):
    backend = FakeBackend()
    alloc = cls(relaxvm.cpu(3), backend)
    backend.fail_next(1)
    alloc.alloc(64)
    assert backend.foreign_release_indices == [3]


@pytest.mark.parametrize("cls", [NaiveAllocator, PooledAllocator])
def test_oom_path_collects_storages_caught_in_reference_cycles(cls):
    alloc = cls(relaxvm.cpu(0), FakeBackend(), limit_bytes=8192)
    was_enabled = gc.isenabled()
    gc.disable()  # only the OOM path may run the cycle collector here
    try:
        cycle: list = [Storage(alloc.alloc(8192))]
        cycle.append(cycle)
        del cycle  # unreachable, but reference counting alone cannot free it
        assert alloc.allocated_bytes == 8192
        buf = alloc.alloc(8192)
    finally:
        if was_enabled:
            gc.enable()
    assert buf.nbytes == 8192
    stats = alloc.stats()
    assert (stats["num_alloc_retries"], stats["num_ooms"]) == (1, 0)
    assert stats["allocated_bytes.current"] == 8192 == stats["reserved_bytes.current"]


def test_naive_raises_out_of_memory_after_the_retry_fails():
    alloc, backend = naive()
    live = alloc.alloc(10)
    backend.fail_next(2)
    with pytest.raises(OutOfMemoryError, match=r"NaiveAllocator.alloc: out of memory on cpu:0: "
                       r"tried to allocate 64 bytes with 10 bytes allocated and 10 bytes "
                       r"reserved \(fake device refused 64 bytes\)") as info:
        alloc.alloc(64)
    err = info.value
    assert isinstance(err, MemoryError)
    assert (err.device, err.requested_bytes) == (relaxvm.cpu(0), 64)
    assert (err.allocated_bytes, err.reserved_bytes, err.limit_bytes) == (10, 10, None)
    assert alloc.stats()["num_ooms"] == 1
    assert alloc.alloc(64).nbytes == 64, "the allocator must stay usable after an OOM"
    alloc.free(live)


def test_naive_limit_bytes_caps_reserved_memory():
    alloc, _ = naive(limit=100)
    a = alloc.alloc(60)
    with pytest.raises(OutOfMemoryError, match=r"tried to allocate 50 bytes .*limit 100 "
                                               r"\(limit of 100 bytes reached\)"):
        alloc.alloc(50)
    alloc.free(a)
    assert alloc.alloc(100).nbytes == 100


@pytest.mark.parametrize("cls", [NaiveAllocator, PooledAllocator])
@pytest.mark.parametrize("nbytes", [-1, 1.5, "8", True])
def test_alloc_rejects_bad_sizes_naming_the_parameter(cls, nbytes):
    alloc = cls(relaxvm.cpu(0), FakeBackend())
    with pytest.raises(ValueError, match=rf"{cls.__name__}.alloc: nbytes must be an int >= 0, "
                                         rf"got {nbytes!r}"):
        alloc.alloc(nbytes)


@pytest.mark.parametrize("cls", [NaiveAllocator, PooledAllocator])
@pytest.mark.parametrize("alignment", [0, 3, 128])
def test_alloc_rejects_bad_alignment(cls, alignment):
    alloc = cls(relaxvm.cpu(0), FakeBackend())
    with pytest.raises(ValueError, match=rf"{cls.__name__}.alloc: alignment must be a power of "
                                         rf"two <= 64, got {alignment}"):
        alloc.alloc(16, alignment)


@pytest.mark.parametrize("cls", [NaiveAllocator, PooledAllocator])
def test_alloc_accepts_smaller_power_of_two_alignments(cls):
    alloc = cls(relaxvm.cpu(0), FakeBackend())
    assert alloc.alloc(16, 16).nbytes >= 16


@pytest.mark.parametrize("limit", [-1, 2.5, "1"])
def test_limit_bytes_must_be_a_non_negative_int(limit):
    with pytest.raises(ValueError, match=rf"PooledAllocator: limit_bytes must be an int >= 0 "
                                         rf"or None, got {limit!r}"):
        PooledAllocator(relaxvm.cpu(0), FakeBackend(), limit_bytes=limit)


def test_allocator_defaults_to_the_device_backend():
    alloc = NaiveAllocator(relaxvm.cpu(3))
    assert alloc.backend is relaxvm.cpu(3).backend
    buf = alloc.alloc(256)
    assert buf.device is relaxvm.cpu(3) and buf.handle.nbytes == 256
    assert "cpu:3" in repr(buf) and "256 bytes" in repr(buf)
    alloc.free(buf)
    assert buf.handle is None
