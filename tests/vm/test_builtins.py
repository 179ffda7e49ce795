"""vm.builtin.*: memory, checks, devices — with TVM's meanings."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.errors import ArgumentError, VMError
from relaxvm.vm import ExecBuilder, VirtualMachine

relaxvm.vm.register_func(
    "test.vm.add_into", lambda a, b, out: np.add(a.array, b.array, out=out.array), override=True)


def storage_program(device_index: int = 0):
    """main(x): storage on a VM device, tensor view, add_into, kill storage, return."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("vm.builtin.alloc_storage",
                     args=[ib.vm_state(), (64,), ib.imm(device_index),
                           relaxvm.DataType("uint8"), "global"], dst=ib.r(1))
        ib.emit_call("vm.builtin.alloc_tensor",
                     args=[ib.r(1), ib.imm(16), (4,), relaxvm.DataType("float32")], dst=ib.r(2))
        ib.emit_call("vm.builtin.null_value", args=[], dst=ib.r(1))
        ib.emit_call("test.vm.add_into", args=[ib.r(0), ib.r(0), ib.r(2)])
        ib.emit_ret(ib.r(2))
    return ib.get()


def test_alloc_storage_and_tensor_view_at_offset(fresh_memory):
    vm = VirtualMachine(storage_program(), relaxvm.cpu())
    out = vm["main"](np.arange(4, dtype="float32"))
    np.testing.assert_array_equal(out.numpy(), [0, 2, 4, 6])
    assert out.byte_offset == 16 and out.storage.nbytes >= 64
    stats = fresh_memory.get_allocator(relaxvm.cpu(0)).stats()
    assert stats["allocated_bytes.current"] > 0
    del out  # the last view goes: the storage returns to the pool
    stats = fresh_memory.get_allocator(relaxvm.cpu(0)).stats()
    assert stats["allocated_bytes.current"] == 0 and stats["num_frees"] >= 1


def test_memory_cfg_naive_for_one_device_pooled_for_others(fresh_memory):
    vm = VirtualMachine(storage_program(), [relaxvm.cpu(0)], memory_cfg={relaxvm.cpu(0): "naive"})
    assert [a.kind for a in vm.allocators] == ["naive"]
    vm["main"](np.ones(4, "float32"))
    naive = fresh_memory.get_allocator(relaxvm.cpu(0), "naive").stats()
    assert naive["num_allocs"] >= 1 and naive["reserved_bytes.current"] == 0


def test_memory_cfg_bad_value_names_allowed_values():
    with pytest.raises(ValueError, match='memory_cfg for cpu:0 must be "naive" or "pooled", '
                                         'got \'bogus\''):
        VirtualMachine(storage_program(), relaxvm.cpu(), memory_cfg={relaxvm.cpu(): "bogus"})
    with pytest.raises(TypeError, match="memory_cfg must be None"):
        VirtualMachine(storage_program(), relaxvm.cpu(), memory_cfg=3.5)


def test_alloc_tensor_out_of_bounds_is_an_error():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=0):
        ib.emit_call("vm.builtin.alloc_storage",
                     args=[ib.vm_state(), (16,), ib.imm(0), relaxvm.DataType("uint8")], dst=ib.r(0))
        ib.emit_call("vm.builtin.alloc_tensor",
                     args=[ib.r(0), ib.imm(4096), (8,), relaxvm.DataType("float32")], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    with pytest.raises(VMError, match=r"needs 32 bytes at offset 4096, but the storage holds"):
        vm["main"]()


def test_two_device_program_on_cpu0_and_cpu1(fresh_memory):
    """x + x on cpu(0), copied to cpu(1), + y there; each device draws on its own pool."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["x", "y"]):
        ib.emit_call("vm.builtin.alloc_storage",
                     args=[ib.vm_state(), (16,), ib.imm(0), relaxvm.DataType("uint8")], dst=ib.r(2))
        ib.emit_call("vm.builtin.alloc_tensor",
                     args=[ib.r(2), ib.imm(0), (4,), relaxvm.DataType("float32")], dst=ib.r(3))
        ib.emit_call("test.vm.add_into", args=[ib.r(0), ib.r(0), ib.r(3)])
        ib.emit_call("vm.builtin.to_device", args=[ib.r(3), ib.imm(1), ib.imm(1)], dst=ib.r(4))
        ib.emit_call("vm.builtin.alloc_storage",
                     args=[ib.vm_state(), (16,), ib.imm(1), relaxvm.DataType("uint8")], dst=ib.r(5))
        ib.emit_call("vm.builtin.alloc_tensor",
                     args=[ib.r(5), ib.imm(0), (4,), relaxvm.DataType("float32")], dst=ib.r(6))
        ib.emit_call("test.vm.add_into", args=[ib.r(4), ib.r(1), ib.r(6)])
        ib.emit_ret(ib.r(6))
    devices = [relaxvm.cpu(0), relaxvm.cpu(1)]
    vm = VirtualMachine(ib.get(), devices, memory_cfg={relaxvm.cpu(1): "naive"})
    x = np.arange(4, dtype="float32")
    y = relaxvm.tensor(np.ones(4, "float32"), relaxvm.cpu(1))
    out = vm["main"](x, y)
    assert out.device == relaxvm.cpu(1)
    np.testing.assert_array_equal(out.numpy(), 2 * x + 1)
    assert fresh_memory.get_allocator(relaxvm.cpu(0), "pooled").stats()["num_allocs"] >= 1
    assert fresh_memory.get_allocator(relaxvm.cpu(1), "naive").stats()["num_allocs"] >= 2


def check_program():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ctx = ib.convert_constant("main: parameter x expects float32[32, 32]")
        ib.emit_call("vm.builtin.check_tensor_info",
                     args=[ib.r(0), ib.imm(2), relaxvm.DataType("float32"), ctx])
        ib.emit_call("vm.builtin.match_shape",
                     args=[ib.r(0), ib.void_arg(), ib.imm(2), ib.imm(0), ib.imm(32), ib.imm(0),
                           ib.imm(32), ctx])
        ib.emit_ret(ib.r(0))
    return ib.get()


@pytest.mark.parametrize("value, got", [
    (np.zeros((3, 3), "float32"), r"float32\[3, 3\]"),
    (np.zeros((32, 32), "int32"), r"int32\[32, 32\]"),
    (np.zeros((32,), "float32"), r"float32\[32\]"),
    ("text", "str"),
])
def test_argument_checks_name_parameter_expected_and_got(value, got):
    vm = VirtualMachine(check_program(), relaxvm.cpu())
    with pytest.raises(ArgumentError, match=r"main: parameter x expects float32\[32, 32\], got "
                                            + got):
        vm["main"](value)
    assert vm["main"](np.zeros((32, 32), "float32")).shape == (32, 32)


def test_read_if_cond_accepts_bool_tensors_and_ints():
    from relaxvm.vm.builtins import read_if_cond
    assert read_if_cond(relaxvm.tensor(np.array([True]))) is True
    assert read_if_cond(relaxvm.tensor(np.array(0, "int32"))) is False
    assert read_if_cond(3) is True
    with pytest.raises(ArgumentError, match="expects an int or bool tensor, got float32"):
        read_if_cond(relaxvm.tensor(np.ones(1, "float32")))


def test_reshape_is_a_view_sharing_storage():
    from relaxvm.vm.builtins import reshape
    t = relaxvm.tensor(np.arange(6, dtype="float32"))
    v = reshape(t, relaxvm.Shape([2, 3]))
    assert v.storage is t.storage and v.shape == (2, 3)
    with pytest.raises(ArgumentError, match=r"cannot view float32\[6\] as \[4, 2\]"):
        reshape(t, relaxvm.Shape([4, 2]))


def test_memory_manager_clear_releases_cached_blocks(fresh_memory):
    t = relaxvm.empty((1024,), "float32")
    del t
    alloc = fresh_memory.get_allocator(relaxvm.cpu(0))
    assert alloc.stats()["reserved_bytes.current"] > 0
    relaxvm.vm.get_global_func("vm.builtin.memory_manager.clear")()
    assert alloc.stats()["reserved_bytes.current"] == 0


def test_outside_view_of_a_result_survives_later_runs(fresh_memory):
    """Pooled blocks (and their cached views) are reused across runs, but never while an
    array outside the VM still views one: the first result must keep its values."""
    vm = VirtualMachine(storage_program(), relaxvm.cpu())
    first = np.from_dlpack(vm["main"](np.full(4, 1, "float32")))
    kept_array = vm["main"](np.full(4, 2, "float32")).array  # a raw reference to a cached view
    for value in range(3, 8):
        vm["main"](np.full(4, value, "float32"))
    np.testing.assert_array_equal(first, [2, 2, 2, 2])
    np.testing.assert_array_equal(kept_array, [4, 4, 4, 4])
    stats = fresh_memory.get_allocator(relaxvm.cpu(0)).stats()
    assert stats["num_blocks_dropped_in_use"] == 2 and stats["num_cache_hits"] >= 4


def test_repeated_runs_reuse_one_pooled_block(fresh_memory):
    vm = VirtualMachine(storage_program(), relaxvm.cpu())
    for value in range(5):
        out = vm["main"](np.full(4, value, "float32"))
        np.testing.assert_array_equal(out.numpy(), np.full(4, 2 * value))
        del out
    stats = fresh_memory.get_allocator(relaxvm.cpu(0)).stats()
    # Two blocks per run (the converted input and the program's storage), both reused.
    assert stats["num_cache_misses"] == 2 and stats["num_cache_hits"] == 8


def test_tensor_to_shape_and_call_tir_dyn():
    from relaxvm.vm.builtins import call_tir_dyn, tensor_to_shape
    shape = tensor_to_shape(relaxvm.tensor(np.array([2, 3], "int64")))
    assert shape == (2, 3) and isinstance(shape, relaxvm.Shape)
    with pytest.raises(ArgumentError, match=r"expects a 1-D integer tensor, got float32\[2\]"):
        tensor_to_shape(relaxvm.tensor(np.ones(2, "float32")))
    seen = []
    call_tir_dyn(lambda a, b, n, m: seen.append((a, b, n, m)), "a", "b", relaxvm.Shape([4, 5]))
    assert seen == [("a", "b", 4, 5)]


@pytest.mark.parametrize("builtin, good, bad, expected", [
    ("check_shape_info", relaxvm.Shape([1, 2]), relaxvm.Shape([1]), r"a Shape of 2 dims"),
    ("check_tuple_info", (1, 2), (1,), r"a tuple of 2 fields"),
])
def test_shape_and_tuple_checks(builtin, good, bad, expected):
    fn = relaxvm.vm.get_global_func(f"vm.builtin.{builtin}")
    fn(good, 2, "main: parameter p")
    with pytest.raises(ArgumentError, match=f"main: parameter p expects {expected}, got"):
        fn(bad, 2, "main: parameter p")


def test_func_and_prim_value_checks():
    from relaxvm.vm.builtins import (
        check_func_info,
        check_prim_value_info,
        make_prim_value,
        match_prim_value,
    )
    check_func_info(len, "main: f")
    with pytest.raises(ArgumentError, match="main: f expects a function or closure, got int"):
        check_func_info(3, "main: f")
    check_prim_value_info(3, "int64", "main: n")
    with pytest.raises(ArgumentError, match="main: n expects a int64 scalar, got str"):
        check_prim_value_info("3", "int64", "main: n")
    heap = np.zeros(2, "int64")
    match_prim_value(7, heap, 1, 0, "main: n")          # store
    match_prim_value(7, heap, 3, 0, "main: n")          # equal to the stored value
    assert make_prim_value(heap, 1, 0) == 7 and make_prim_value(heap, 0, 9) == 9
    with pytest.raises(ArgumentError, match="main: n expects the value 7, got int"):
        match_prim_value(8, heap, 3, 0, "main: n")


def test_match_shape_records_and_compares_symbolic_dims():
    from relaxvm.vm.builtins import match_shape
    heap = np.zeros(1, "int64")
    a = relaxvm.tensor(np.zeros((3, 4), "float32"))
    match_shape(a, heap, 2, 1, 0, 0, 4, "main: a")          # n = dim 0, dim 1 == 4
    match_shape(relaxvm.Shape([3]), heap, 1, 3, 0, "main: b")  # dim 0 == n
    with pytest.raises(ArgumentError, match=r"main: b expects dimension 0 to be 3, got "
                                            r"Shape\(\[5\]\)"):
        match_shape(relaxvm.Shape([5]), heap, 1, 3, 0, "main: b")


def test_constant_checks_take_the_fast_path_and_fall_back_for_other_values():
    # check_tensor_info / match_shape with constant arguments get per-site closures; a
    # Shape (not a Tensor) or a failing value goes to the generic builtin.
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["s"]):
        ib.emit_call("vm.builtin.match_shape", args=[ib.r(0), ib.void_arg(), ib.imm(2),
                                                     ib.imm(0), ib.imm(2), ib.imm(0),
                                                     ib.imm(3), "main: s"])
        ib.emit_ret(ib.r(0))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    assert vm["main"](relaxvm.Shape([2, 3])) == relaxvm.Shape([2, 3])
    assert vm["main"](np.zeros((2, 3), "int8")).shape == (2, 3)
    with pytest.raises(ArgumentError, match=r"main: s expects dimension 1 to be 3, got"):
        vm["main"](relaxvm.Shape([2, 4]))
    checked = VirtualMachine(check_program(), relaxvm.cpu())
    assert "s0(r0, 2, k" in checked._active.source   # the site closure, not the builtin
