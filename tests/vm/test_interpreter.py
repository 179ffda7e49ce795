"""The interpreter: every instruction kind, control flow, recursion, closures, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from programs import add_program, emit_alloc, factorial_program, while_loop_program

import relaxvm
from relaxvm.errors import ArgumentError, VMError
from relaxvm.memory import Storage
from relaxvm.tensor import Tensor
from relaxvm.vm import ExecBuilder, FuncKind, VirtualMachine


def test_call_and_ret_run_a_packed_function():
    vm = VirtualMachine(add_program(), relaxvm.cpu())
    a, b = np.arange(4, dtype="float32"), np.ones(4, dtype="float32")
    out = vm["main"](relaxvm.tensor(a), relaxvm.tensor(b))
    np.testing.assert_array_equal(out.numpy(), a + b)


def test_numpy_arguments_are_converted_to_tensors_on_entry():
    vm = VirtualMachine(add_program(), relaxvm.cpu())
    a = np.full((2, 2), 3, dtype="float32")
    out = vm["main"](a, a)
    assert isinstance(out, relaxvm.Tensor) and out.device == relaxvm.cpu(0)
    np.testing.assert_array_equal(out.numpy(), a * 2)


@pytest.mark.parametrize("n", [0, 1, 5, 30])
def test_while_loop_made_of_if_and_goto(n):
    vm = VirtualMachine(while_loop_program(), relaxvm.cpu())
    assert vm["sum_to"](n) == sum(range(n))


@pytest.mark.parametrize("n", [1, 2, 6, 12])
def test_recursive_factorial(n):
    import math
    vm = VirtualMachine(factorial_program(), relaxvm.cpu())
    assert vm["fact"](n) == math.factorial(n)


def test_functions_calling_functions_with_forward_reference():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("double", args=[ib.r(0)], dst=ib.r(1))   # defined later
        ib.emit_call("double", args=[ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    with ib.function("double", num_inputs=1, param_names=["y"]):
        ib.emit_call("test.vm.add_scalar", args=[ib.r(0), ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    assert vm["main"](3) == 12


def test_closure_binds_captured_arguments_last():
    # Mirrors TVM's sample: lifted(x, env) = x + env; main builds a closure over env.
    ib = ExecBuilder()
    with ib.function("lifted", num_inputs=2, param_names=["x", "env"]):
        ib.emit_call("test.vm.add", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    with ib.function("main", num_inputs=2, param_names=["x", "y"]):
        ib.emit_call("test.vm.mul", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_call("vm.builtin.make_closure", args=[ib.f("lifted"), ib.r(2)], dst=ib.r(3))
        ib.emit_call("vm.builtin.invoke_closure", args=[ib.vm_state(), ib.r(3), ib.r(0)],
                     dst=ib.r(4))
        ib.emit_ret(ib.r(4))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    x = np.array([0, 1, 2, 3], dtype="float32")
    y = np.array([1, 2, 3, 4], dtype="float32")
    np.testing.assert_array_equal(vm["main"](x, y).numpy(), x + x * y)


def test_returned_closure_is_invocable_from_python():
    ib = ExecBuilder()
    with ib.function("adder", num_inputs=2, param_names=["x", "k"]):
        ib.emit_call("test.vm.add_scalar", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    with ib.function("make", num_inputs=1, param_names=["k"]):
        ib.emit_call("vm.builtin.make_closure", args=[ib.f("adder"), ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    closure = vm["make"](10)
    assert vm.invoke_closure(closure, 5) == 15


def test_tuples_nest_and_index():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("vm.builtin.make_tuple", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_call("vm.builtin.make_tuple", args=[ib.r(2), ib.r(0)], dst=ib.r(3))
        ib.emit_call("vm.builtin.tuple_getitem", args=[ib.r(3), ib.imm(0)], dst=ib.r(4))
        ib.emit_call("vm.builtin.tuple_getitem", args=[ib.r(4), ib.imm(1)], dst=ib.r(5))
        ib.emit_call("vm.builtin.make_tuple", args=[ib.r(3), ib.r(5)], dst=ib.r(6))
        ib.emit_ret(ib.r(6))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    assert vm["main"](1, 2) == (((1, 2), 1), 2)


def test_constants_of_every_kind_reach_the_callee():
    seen = {}
    relaxvm.vm.register_func("test.vm.record", lambda *a: seen.setdefault("args", a),
                             override=True)
    arr = np.arange(6, dtype="float32").reshape(2, 3)
    ib = ExecBuilder()
    with ib.function("main", num_inputs=0):
        args = [ib.convert_constant(arr), ib.convert_constant(relaxvm.Shape([2, 3])),
                ib.convert_constant(relaxvm.DataType("float16")), ib.convert_constant("text"),
                ib.convert_constant(2.5), ib.convert_constant(1 << 60), ib.imm(-7)]
        ib.emit_call("test.vm.record", args=args, dst=ib.r(0))
        ib.emit_ret(ib.r(0))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    t, shape, dtype, text, flt, big, small = vm["main"]()
    assert isinstance(t, relaxvm.Tensor) and t.device == relaxvm.cpu(0)
    np.testing.assert_array_equal(t.numpy(), arr)
    assert shape == (2, 3) and isinstance(shape, relaxvm.Shape)
    assert dtype == "float16" and isinstance(dtype, relaxvm.DataType)
    assert (text, flt, big, small) == ("text", 2.5, 1 << 60, -7)


def test_void_destination_discards_result_and_void_argument_is_none():
    got = {}
    relaxvm.vm.register_func("test.vm.seen", lambda x: got.setdefault("x", x) or 5,
                             override=True)
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["a"]):
        ib.emit_call("test.vm.seen", args=[ib.void_arg()])
        ib.emit_ret(ib.r(0))
    assert VirtualMachine(ib.get(), relaxvm.cpu())["main"](9) == 9
    assert got == {"x": None}


def test_shapes_builtins_round_trip():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("vm.builtin.shape_of", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_call("vm.builtin.alloc_shape_heap", args=[ib.vm_state(), ib.imm(2)], dst=ib.r(2))
        ib.emit_call("vm.builtin.match_shape",
                     args=[ib.r(1), ib.r(2), ib.imm(2), ib.imm(1), ib.imm(0), ib.imm(1), ib.imm(1),
                           ib.convert_constant("main: x")])
        ib.emit_call("vm.builtin.make_shape",
                     args=[ib.r(2), ib.imm(3), ib.imm(1), ib.imm(1), ib.imm(0), ib.imm(7),
                           ib.imm(1), ib.imm(0)], dst=ib.r(3))
        ib.emit_ret(ib.r(3))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    assert vm["main"](np.zeros((4, 5), "float32")) == relaxvm.Shape([5, 7, 4])


# -- errors ----------------------------------------------------------------------------
def test_error_names_function_instruction_and_callee_and_keeps_type():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("vm.builtin.copy", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_call("test.vm.fail", args=[ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    expected = r"main: instruction 1 \(call test.vm.fail\): KeyError"
    with pytest.raises(VMError, match=expected) as info:
        vm["main"](1)
    assert isinstance(info.value, KeyError)
    assert info.value.vm_context["callee"] == "test.vm.fail"
    ok = VirtualMachine(add_program(), relaxvm.cpu())
    np.testing.assert_array_equal(ok["main"](np.ones(2, "float32"), np.ones(2, "float32"))
                                  .numpy(), [2, 2])


def test_error_in_nested_call_reports_vm_call_stack():
    ib = ExecBuilder()
    with ib.function("inner", num_inputs=1, param_names=["x"]):
        ib.emit_call("test.vm.fail", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("inner", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    with pytest.raises(VMError, match=r"inner: instruction 0 \(call test.vm.fail\)(.|\n)*"
                                      r"VM call stack: inner@0 <- main@0"):
        vm["main"](1)


def test_vm_is_usable_after_a_failed_call():
    vm = VirtualMachine(while_loop_program(), relaxvm.cpu())
    with pytest.raises(VMError):
        vm["sum_to"]("not a number")
    assert vm["sum_to"](4) == 6


def test_wrong_arity_names_parameters():
    vm = VirtualMachine(add_program(), relaxvm.cpu())
    with pytest.raises(ArgumentError, match=r"main expects 2 arguments \(a, b\), but 1 "
                                            r"arguments were provided; missing b"):
        vm["main"](np.ones(2, "float32"))


def test_missing_keyword_argument_is_named():
    vm = VirtualMachine(add_program(), relaxvm.cpu())
    one = np.ones(2, "float32")
    with pytest.raises(ArgumentError, match=r"^main: missing argument for parameter\(s\) b "
                                            r"\(parameters are \(a, b\)\)$"):
        vm["main"](a=one)
    with pytest.raises(ArgumentError, match=r"^main: missing argument for parameter\(s\) a "):
        vm["main"](b=one)
    np.testing.assert_array_equal(vm["main"](b=one, a=one * 2).numpy(), [3, 3])


def test_unknown_function_suggests_close_name():
    vm = VirtualMachine(add_program(), relaxvm.cpu())
    with pytest.raises(AttributeError, match=r"^vm\['mian'\]: unknown function 'mian'.*"
                                             r"did you mean main"):
        vm["mian"]


def test_kwargs_match_parameter_names_and_bad_kwargs_are_errors():
    vm = VirtualMachine(add_program(), relaxvm.cpu())
    one = np.ones(2, "float32")
    np.testing.assert_array_equal(vm["main"](one, b=one * 3).numpy(), [4, 4])
    with pytest.raises(ArgumentError, match=r"unexpected keyword argument\(s\) \['c'\]"):
        vm["main"](one, c=one)
    with pytest.raises(ArgumentError, match="parameter a given both positionally and by keyword"):
        vm["main"](one, a=one)


def test_declared_but_missing_packed_function_fails_at_load_with_suggestion():
    ib = ExecBuilder()
    ib.declare_function("test.vm.ad")   # opts out of get()'s check; the VM still resolves it
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("test.vm.ad", args=[ib.r(0), ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    with pytest.raises(VMError, match=r"cannot find packed function 'test.vm.ad'.*did you mean"):
        VirtualMachine(ib.get(), relaxvm.cpu())


def test_tensor_as_if_condition_is_rejected_clearly():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["c"]):
        ib.emit_if(ib.r(0), 3)
        ib.emit_call("vm.builtin.copy", args=[ib.imm(1)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
        ib.emit_call("vm.builtin.copy", args=[ib.imm(2)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    assert vm["main"](1) == 1 and vm["main"](0) == 2
    with pytest.raises(VMError, match="truth value of a Tensor"):
        vm["main"](np.ones(1, "int32"))


def test_device_list_gets_cpu_appended_without_mutating_callers_list():
    devices = [relaxvm.cpu(1)]
    vm = VirtualMachine(add_program(), devices)
    assert vm.devices == [relaxvm.cpu(1)] and devices == [relaxvm.cpu(1)]


@pytest.mark.parametrize("given, expected", [
    ([relaxvm.cuda(0)], [relaxvm.cuda(0), relaxvm.cpu(0)]),
    (relaxvm.cuda(1), [relaxvm.cuda(1), relaxvm.cpu(0)]),
    ("cuda:0", [relaxvm.cuda(0), relaxvm.cpu(0)]),
    ((relaxvm.cuda(0), relaxvm.cpu(1)), [relaxvm.cuda(0), relaxvm.cpu(1)]),
    ([relaxvm.cpu(0), relaxvm.cuda(0)], [relaxvm.cpu(0), relaxvm.cuda(0), relaxvm.cpu(0)]),
])
def test_a_cpu_is_appended_when_the_last_device_is_not_one(given, expected):
    # The rule itself needs no GPU: Device objects exist without one. Unlike TVM (whose
    # Python VM appends to the caller's list), the caller's list is left alone.
    from relaxvm.vm.interpreter import _device_list
    before = list(given) if isinstance(given, list) else given
    assert _device_list(given) == expected
    assert given == before


def test_empty_device_list_is_an_error():
    with pytest.raises(ValueError, match="device list must not be empty"):
        VirtualMachine(add_program(), [])


# -- executables made in memory are validated like loaded ones ------------------------------

def hand_made(instrs, nregs, num_args=0):
    from relaxvm.vm.executable import Executable, FunctionInfo
    offsets, data = [], []
    for ins in instrs:
        offsets.append(len(data))
        data.extend(ins.encode())
    table = [FunctionInfo(FuncKind.VM_FUNC, "main", 0, len(instrs), num_args, nregs,
                          [f"a{i}" for i in range(num_args)])]
    return Executable(table, [], offsets, data)


def test_hand_made_goto_zero_is_rejected_instead_of_hanging():
    from relaxvm.errors import ExecutableFormatError
    from relaxvm.vm.bytecode import Goto, Ret
    with pytest.raises(ExecutableFormatError, match=r"^VirtualMachine: function 'main', "
                                                    r"instruction 0 \(goto\): goto offset "
                                                    r"must not be 0"):
        VirtualMachine(hand_made([Goto(0), Ret(0)], nregs=1, num_args=1), relaxvm.cpu())


def test_hand_made_register_out_of_range_is_rejected():
    from relaxvm.errors import ExecutableFormatError
    from relaxvm.vm.bytecode import Ret
    with pytest.raises(ExecutableFormatError, match=r"function 'main', instruction 0 \(ret\): "
                                                    r"returns register 5, outside the register "
                                                    r"file \[0, 1\)"):
        VirtualMachine(hand_made([Ret(5)], nregs=1, num_args=1), relaxvm.cpu())


# -- deep recursion ------------------------------------------------------------------------

def test_runaway_recursion_reports_a_truncated_vm_call_stack():
    ib = ExecBuilder()
    with ib.function("forever", num_inputs=1, param_names=["n"]):
        ib.emit_call("forever", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    with ib.function("ok", num_inputs=1, param_names=["n"]):
        ib.emit_ret(ib.r(0))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    with pytest.raises(VMError) as info:
        vm["forever"](1)
    assert isinstance(info.value, RecursionError)
    stack = str(info.value).split("VM call stack: ")[1]
    frames = stack.split(" <- ")
    assert len(frames) == 11 and all(f == "forever@0" for f in frames[:5] + frames[6:])
    assert re.fullmatch(r"\.\.\. \d+ more frames \.\.\.", frames[5])
    assert int(frames[5].split()[1]) > 100
    assert vm["ok"](3) == 3   # the VM is still usable


def test_vm_function_kind_is_exposed():
    assert FuncKind.VM_FUNC == 1 and FuncKind.PACKED_FUNC == 0


# -- the specialised allocation sites --------------------------------------------------------

def doubling_program():
    """main(x): out = add(x, x), out a float32[4] view at offset 64 of a planned storage."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        emit_alloc(ib, 1, 2, (4,), offset=64)
        ib.emit_call("add", args=[ib.r(0), ib.r(0), ib.r(2)])
        ib.emit_ret(ib.r(2))
    return ib.get()


def test_allocation_sites_build_tensors_and_storages_as_their_constructors_do():
    # The sites skip __init__ and set the slots themselves: they must still be all there are.
    assert Tensor.__slots__ == ("array", "device", "storage", "_shape", "__weakref__")
    assert Storage.__slots__ == ("buffer", "__weakref__")
    vm = VirtualMachine(doubling_program(), relaxvm.cpu())
    x = relaxvm.tensor(np.arange(4, dtype="float32"))
    vm["main"](x)                         # the first run makes and caches the view
    out = vm["main"](x)                   # this one takes the cached view
    storage = out.storage
    assert type(out) is Tensor and type(storage) is Storage
    assert storage.buffer.allocator is vm.allocators[0] and storage.nbytes == 4096
    assert out.device is relaxvm.cpu(0) and out.byte_offset == 64
    assert out.shape == (4,) and type(out.shape) is relaxvm.Shape
    np.testing.assert_array_equal(out.numpy(), [0, 2, 4, 6])


@pytest.mark.parametrize("hold", [
    pytest.param(lambda t: t.array, id="its-array"),
    pytest.param(lambda t: t.array[1:], id="a-slice"),
    pytest.param(lambda t: np.from_dlpack(t), id="dlpack"),
])
def test_block_still_viewed_after_the_result_dies_is_not_reused_by_the_next_call(
        hold, fresh_memory):
    vm = VirtualMachine(doubling_program(), relaxvm.cpu())
    pool = vm.allocators[0]
    x = relaxvm.tensor(np.arange(4, dtype="float32"))
    vm["main"](x)                         # warm: the block and its view are cached
    outside = hold(vm["main"](x))         # the Tensor dies here; its memory is still seen
    seen = np.array(outside)
    assert pool.stats()["num_blocks_dropped_in_use"] == 1
    for _ in range(3):
        vm["main"](relaxvm.tensor(np.full(4, 100, dtype="float32")))
    np.testing.assert_array_equal(np.asarray(outside), seen)


def test_allocated_bytes_drop_when_the_result_of_a_call_dies(fresh_memory):
    vm = VirtualMachine(doubling_program(), relaxvm.cpu())
    pool = vm.allocators[0]
    x = relaxvm.tensor(np.arange(4, dtype="float32"))
    base, before = pool.allocated_bytes, pool.stats()
    for _ in range(3):
        out = vm["main"](x)
        assert pool.allocated_bytes == base + 4096
        del out
        assert pool.allocated_bytes == base
    after = pool.stats()
    assert [after[k] - before[k] for k in ("num_allocs", "num_frees", "num_cache_hits")] == \
        [3, 3, 2]


def test_function_arity_and_parameter_names_and_their_errors():
    vm = VirtualMachine(add_program(), relaxvm.cpu())
    assert vm.get_function_arity("main") == 2
    assert [vm.get_function_param_name("main", i) for i in range(2)] == ["a", "b"]
    with pytest.raises(ArgumentError, match=r"get_function_param_name: index must be an int in "
                                            r"\[0, 2\) for function 'main', got 2"):
        vm.get_function_param_name("main", 2)
    with pytest.raises(ArgumentError, match=r"get_function_param_name: .*got -1"):
        vm.get_function_param_name("main", -1)
    with pytest.raises(AttributeError, match=r"get_function_arity: unknown function .mian.*"
                                             r"did you mean main"):
        vm.get_function_arity("mian")
