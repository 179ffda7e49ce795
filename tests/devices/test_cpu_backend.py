"""The CPU backend: aligned raw blocks, zero-copy views, copies, timers, memory info."""

from __future__ import annotations

import time

import numpy as np
import pytest

from relaxvm.devices import ALIGNMENT, get_backend


@pytest.mark.parametrize("nbytes", [1, 63, 64, 4096, 100_003])
def test_cpu_raw_blocks_are_aligned_and_sized(nbytes):
    handle = get_backend(1).raw_alloc(0, nbytes)
    assert handle.nbytes == nbytes and handle.ctypes.data % ALIGNMENT == 0


def test_cpu_raw_block_of_zero_bytes_is_empty():
    assert get_backend(1).raw_alloc(0, 0).nbytes == 0


def test_cpu_view_is_zero_copy_at_an_offset():
    backend = get_backend(1)
    handle = backend.raw_alloc(0, 256)
    view = backend.view(handle, 64, (4, 2), np.dtype("float64"))
    view[...] = np.arange(8).reshape(4, 2)
    assert view.ctypes.data == handle.ctypes.data + 64
    np.testing.assert_array_equal(handle[64:128].view("float64"), np.arange(8.0))


def test_cpu_ref_count_sees_views_of_a_block():
    backend = get_backend(1)
    handle = backend.raw_alloc(0, 128)
    base = backend.ref_count(handle)
    view = backend.view(handle, 0, (16,), np.dtype("uint8"))
    assert backend.ref_count(handle) == base + 1
    del view
    assert backend.ref_count(handle) == base


def test_cpu_copies_and_host_round_trip():
    backend = get_backend(1)
    src = np.arange(6, dtype="int32").reshape(2, 3)
    dst = np.empty_like(src)
    backend.copy_from_host(dst, src)
    out = backend.to_numpy(dst)
    np.testing.assert_array_equal(out, src)
    assert not np.shares_memory(out, dst)
    other = np.zeros_like(src)
    backend.copy_within(other, dst)
    np.testing.assert_array_equal(other, src)
    assert backend.is_array(other) and not backend.is_array([1, 2])


def test_cpu_copy_refuses_silent_casts():
    with pytest.raises(TypeError):
        get_backend(1).copy_from_host(np.empty(3, "int32"), np.ones(3, "float64"))


def test_cpu_timer_measures_wall_time():
    timer = get_backend(1).create_timer(0)
    origin = get_backend(1).create_timer(0)
    origin.start()
    timer.start()
    time.sleep(0.01)
    timer.stop()
    assert 5_000_000 < timer.elapsed_ns() < 1_000_000_000
    assert timer.start_offset_ns(origin) >= 0


def test_cpu_memory_info_reports_free_and_total():
    info = get_backend(1).memory_info(0)
    assert info is not None
    free, total = info
    assert 0 < free <= total


def test_cpu_activate_is_a_no_op_context():
    with get_backend(1).activate(0):
        pass
