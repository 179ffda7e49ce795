"""Storage lifetime: blocks return to the pool when the last view dies, and a block still
seen through an outside array (DLPack) is never handed out again."""

from __future__ import annotations

import gc
import re

import numpy as np
import pytest
from fake_backend import FakeBackend

import relaxvm
from relaxvm.memory import PooledAllocator, Storage
from relaxvm.tensor import empty, tensor_in_storage


def test_storage_returns_its_buffer_when_the_last_reference_goes():
    alloc = PooledAllocator(relaxvm.cpu(0), FakeBackend())
    storage = Storage(alloc.alloc(100))
    assert (storage.nbytes, storage.device) == (4096, relaxvm.cpu(0))
    assert repr(storage) == "Storage(cpu:0, 4096 bytes)"
    del storage
    assert alloc.allocated_bytes == 0 and alloc.cached_bytes == 4096


def test_storage_does_not_free_a_buffer_twice():
    backend = FakeBackend()
    alloc = relaxvm.memory.NaiveAllocator(relaxvm.cpu(0), backend)
    storage = Storage(alloc.alloc(8))
    alloc.free(storage.buffer)  # released by hand first
    del storage                 # __del__ sees handle None and does nothing
    assert backend.frees == [8] and alloc.stats()["num_frees"] == 1


def test_storage_returns_to_the_pool_only_when_the_last_view_dies(dev):
    alloc = PooledAllocator(dev)
    whole = empty((256,), "float32", dev, allocator=alloc)
    half = tensor_in_storage(whole.storage, 512, (128,), "float32")
    del whole
    assert alloc.allocated_bytes == 4096 and alloc.cached_bytes == 0
    del half
    assert alloc.allocated_bytes == 0 and alloc.cached_bytes == 4096
    assert alloc.stats()["num_blocks_dropped_in_use"] == 0


def test_block_viewed_through_dlpack_is_not_reused_after_its_storage_dies(dev):
    alloc = PooledAllocator(dev)
    xp = dev.backend.xp
    t = relaxvm.tensor(np.arange(1024, dtype="float32"), dev)
    t = empty((1024,), "float32", dev, allocator=alloc).copyfrom(t)
    outside = xp.from_dlpack(t)          # a user's zero-copy view
    del t                                # the Storage dies; the memory must not be reused
    gc.collect()
    stats = alloc.stats()
    assert stats["num_blocks_dropped_in_use"] == 1
    assert stats["allocated_bytes.current"] == 0 and stats["reserved_bytes.current"] == 0
    others = [empty((1024,), "float32", dev, allocator=alloc) for _ in range(4)]
    for other in others:
        other.copyfrom(np.full(1024, -7.0, dtype="float32"))
    dev.sync()
    seen = outside.get() if hasattr(outside, "get") else np.asarray(outside)
    np.testing.assert_array_equal(seen, np.arange(1024, dtype="float32"))


def test_reused_block_after_view_dies_is_a_cache_hit(dev):
    alloc = PooledAllocator(dev)
    t = empty((64,), "float64", dev, allocator=alloc)
    view = dev.backend.xp.from_dlpack(t)
    del view, t
    empty((64,), "float64", dev, allocator=alloc)
    assert alloc.stats()["num_cache_hits"] == 1


@pytest.mark.parametrize("offset, shape", [(-8, (4,)), (4090, (4,)), (0, (1025,))])
def test_views_outside_the_storage_are_rejected(offset, shape):
    storage = empty((1024,), "float32").storage
    expected = (f"alloc_tensor: a float32{list(shape)} tensor needs {4 * shape[0]} bytes at "
                f"offset {offset}, but the storage holds 4096 bytes")
    with pytest.raises(ValueError, match=re.escape(expected)):
        tensor_in_storage(storage, offset, shape, "float32")
