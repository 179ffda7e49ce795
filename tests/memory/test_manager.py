"""MemoryManager (one shared allocator per (device, kind)) and memory_cfg parsing."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import relaxvm
from relaxvm.errors import DeviceError
from relaxvm.memory import (
    MemoryManager,
    NaiveAllocator,
    PooledAllocator,
    global_memory_manager,
    parse_memory_cfg,
)

CPU0, CPU1 = relaxvm.cpu(0), relaxvm.cpu(1)


def test_manager_keeps_one_allocator_per_device_and_kind():
    manager = MemoryManager()
    pooled = manager.get_allocator(CPU0)
    assert isinstance(pooled, PooledAllocator)
    assert manager.get_allocator(CPU0, "pooled") is pooled
    naive = manager.get_allocator(CPU0, "naive")
    assert isinstance(naive, NaiveAllocator) and naive is not pooled
    assert manager.get_allocator(CPU1) is not pooled
    assert manager.allocators() == [pooled, naive, manager.get_allocator(CPU1)]


def test_global_manager_is_shared_process_wide():
    assert global_memory_manager() is global_memory_manager()
    assert isinstance(global_memory_manager(), MemoryManager)


def test_cpu0_and_cpu1_are_separate_devices_with_separate_pools(fresh_memory):
    a = relaxvm.empty((1000,), "float32", CPU0)
    b = relaxvm.empty((3000,), "float32", CPU1)
    stats = fresh_memory.stats()
    assert stats["cpu:0/pooled"]["allocated_bytes.current"] == 4096
    assert stats["cpu:1/pooled"]["allocated_bytes.current"] == 12288
    del a
    assert fresh_memory.get_allocator(CPU0).cached_bytes == 4096
    assert fresh_memory.get_allocator(CPU1).cached_bytes == 0
    del b


def test_clear_releases_every_cached_block_and_reports_bytes(fresh_memory):
    relaxvm.empty((10,), "int8", CPU0)
    relaxvm.empty((5000,), "int8", CPU1)
    assert fresh_memory.clear() == 4096 + 8192
    assert all(a.reserved_bytes == 0 for a in fresh_memory.allocators())


def test_reset_forgets_allocators(fresh_memory):
    first = fresh_memory.get_allocator(CPU0)
    fresh_memory.reset()
    assert fresh_memory.allocators() == []
    assert fresh_memory.get_allocator(CPU0) is not first


def test_get_allocator_rejects_unknown_kinds():
    with pytest.raises(ValueError, match=re.escape(
            "MemoryManager.get_allocator: kind must be one of ['naive', 'pooled'], got 'lru'")):
        MemoryManager().get_allocator(CPU0, "lru")


def test_get_allocator_for_cuda_without_cupy_says_what_to_install(monkeypatch):
    backend = relaxvm.cuda(0).backend
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "_cupy", None)
    with pytest.raises(DeviceError, match=r"cuda:0 is not available: CuPy could not be imported "
                                          r"\((ModuleNotFound|Import)Error: .*\); install the "
                                          r"CUDA extra: pip install 'relaxvm\[cuda12\]'"):
        MemoryManager().get_allocator(relaxvm.cuda(0))


def test_set_limit_caps_the_allocator_and_validates(fresh_memory):
    fresh_memory.set_limit(CPU1, 8192)
    assert fresh_memory.get_allocator(CPU1).limit_bytes == 8192
    with pytest.raises(relaxvm.OutOfMemoryError, match="limit 8192"):
        relaxvm.empty((3000,), "float32", CPU1)
    with pytest.raises(ValueError, match=r"MemoryManager.set_limit: limit_bytes must be an int "
                                         r">= 0 or None, got -5"):
        fresh_memory.set_limit(CPU1, -5)
    fresh_memory.set_limit(CPU1, None)
    assert relaxvm.empty((3000,), "float32", CPU1).nbytes == 12000


# -- parse_memory_cfg -------------------------------------------------------------------
@pytest.mark.parametrize("cfg, expected", [
    (None, ["pooled", "pooled"]),
    ("naive", ["naive", "naive"]),
    ("pooled", ["pooled", "pooled"]),
    (1, ["naive", "naive"]),
    (2, ["pooled", "pooled"]),
    ({CPU1: "naive"}, ["pooled", "naive"]),
    ({CPU0: "naive", CPU1: "pooled"}, ["naive", "pooled"]),
    ({"cpu:1": "naive"}, ["pooled", "naive"]),
    ({"cpu": "naive"}, ["naive", "pooled"]),
    ({CPU0: 1, "cpu:1": 2}, ["naive", "pooled"]),
    ({}, ["pooled", "pooled"]),
])
def test_parse_memory_cfg_accepted_forms(cfg, expected):
    assert parse_memory_cfg(cfg, [CPU0, CPU1]) == expected


@pytest.mark.parametrize("cfg, message", [
    ("bogus", 'memory_cfg must be "naive" or "pooled", got \'bogus\''),
    (7, 'memory_cfg must be "naive" or "pooled", got 7'),
    ({CPU0: "lru"}, 'memory_cfg for cpu:0 must be "naive" or "pooled", got \'lru\''),
    ({CPU0: 3}, 'memory_cfg for cpu:0 must be "naive" or "pooled", got 3'),
    ({relaxvm.cpu(5): "naive"}, "memory_cfg names device(s) ['cpu:5'] that are not among the "
                                "VM's devices ['cpu:0', 'cpu:1']"),
    ({"tpu:0": "naive"}, "memory_cfg key 'tpu:0' is not a device like 'cpu:0' or 'cuda:0'"),
])
def test_parse_memory_cfg_bad_values_raise_value_error_naming_allowed_values(cfg, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_memory_cfg(cfg, [CPU0, CPU1])


@pytest.mark.parametrize("cfg, message", [
    (3.5, 'memory_cfg must be None, "naive", "pooled" or a dict mapping Device to '
          '"naive"/"pooled", got float: 3.5'),
    (["naive"], "got list: ['naive']"),
    (True, "got bool: True"),
    ({0: "naive"}, "memory_cfg keys must be Devices or strings like 'cuda:0', got 0 of type int"),
    ({CPU0: 2.0}, 'memory_cfg for cpu:0 must be "naive" or "pooled", got 2.0 of type float'),
    ({CPU0: None}, 'memory_cfg for cpu:0 must be "naive" or "pooled", got None of type NoneType'),
])
def test_parse_memory_cfg_wrong_types_raise_type_error(cfg, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        parse_memory_cfg(cfg, [CPU0, CPU1])


def test_memory_cfg_kinds_pick_allocators_that_really_differ(fresh_memory):
    kinds = parse_memory_cfg({"cpu:1": "naive"}, [CPU0, CPU1])
    allocators = [fresh_memory.get_allocator(d, k)
                  for d, k in zip([CPU0, CPU1], kinds, strict=True)]
    for alloc in allocators:
        alloc.free(alloc.alloc(100))
    assert allocators[0].stats()["reserved_bytes.current"] == 4096   # pooled keeps it
    assert allocators[1].stats()["reserved_bytes.current"] == 0      # naive gives it back
    np.testing.assert_equal([a.kind for a in allocators], ["pooled", "naive"])
