"""Executable: listings (as_text golden, as_python round trip), stats, equality, access."""

from __future__ import annotations

import numpy as np
import programs  # noqa: F401  (registers the test.vm.* packed functions)
import pytest

from relaxvm.errors import ArgumentError, ExecutableFormatError
from relaxvm.objects import DataType, Shape
from relaxvm.vm.builder import ExecBuilder
from relaxvm.vm.bytecode import Call, Goto, If, Ret
from relaxvm.vm.executable import Executable, FuncKind, FunctionInfo, load_executable

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is a test dependency
    ml_dtypes = None


def branchy_program() -> Executable:
    """An if/else, a storage allocation, a closure and special registers."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["x", "y"]):
        ib.emit_call("vm.builtin.read_if_cond", args=[ib.r(0)], dst=ib.r(2))        # 0
        ib.emit_if(ib.r(2), 3)                                                      # 1 -> 4
        ib.emit_call("test.vm.add", args=[ib.r(0), ib.r(1)], dst=ib.r(3))           # 2
        ib.emit_goto(2)                                                             # 3 -> 5
        ib.emit_call("test.vm.mul", args=[ib.r(0), ib.r(1)], dst=ib.r(3))           # 4
        ib.emit_call("vm.builtin.alloc_storage",
                     args=[ib.vm_state(), (16,), ib.imm(0), DataType("uint8"), "global"],
                     dst=ib.r(4))                                                   # 5
        ib.emit_call("vm.builtin.null_value", args=[], dst=ib.r(4))                 # 6
        ib.emit_call("vm.builtin.make_closure", args=[ib.f("lifted"), ib.r(3)], dst=ib.r(5))
        ib.emit_call("vm.builtin.invoke_closure",
                     args=[ib.vm_state(), ib.r(5), ib.r(0), ib.void_arg(), ib.imm(-3)],
                     dst=ib.r(6))                                                   # 8
        ib.emit_ret(ib.r(6))                                                        # 9
    with ib.function("lifted", num_inputs=2, param_names=["x", "env"]):
        ib.emit_call("test.vm.add", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    return ib.get()


# Written by hand from TVM's documented layout (facts §1.7): "call  " + callee padded to 16,
# " in: " + args padded to 12, " dst: " + register; VM functions end with a blank line,
# packed functions print "@name packed_func;" and a blank line.
GOLDEN_TEXT = """\
@main:
  call  vm.builtin.read_if_cond in: %0           dst: %2
  If    %2, 3
  call  test.vm.add      in: %0, %1       dst: %3
  goto  2
  call  test.vm.mul      in: %0, %1       dst: %3
  call  vm.builtin.alloc_storage in: %vm, c[0], i0, c[1], c[2] dst: %4
  call  vm.builtin.null_value in:              dst: %4
  call  vm.builtin.make_closure in: f[lifted], %3 dst: %5
  call  vm.builtin.invoke_closure in: %vm, %5, %0, %void, i-3 dst: %6
  ret   %6

@vm.builtin.read_if_cond packed_func;

@test.vm.add packed_func;

@test.vm.mul packed_func;

@vm.builtin.alloc_storage packed_func;

@vm.builtin.null_value packed_func;

@lifted:
  call  test.vm.add      in: %0, %1       dst: %2
  ret   %2

@vm.builtin.make_closure packed_func;

@vm.builtin.invoke_closure packed_func;

"""


def test_as_text_matches_hand_written_golden_listing():
    assert branchy_program().as_text() == GOLDEN_TEXT


def test_as_text_prints_a_void_destination():
    ib = ExecBuilder()
    with ib.function("f", num_inputs=1):
        ib.emit_call("k", args=[ib.r(0)])
        ib.emit_ret(ib.r(0))
    ib.declare_function("k")  # an external packed function, resolved when a VM loads
    line = ib.get().as_text().splitlines()[1]
    assert line == "  call  k                in: %0           dst: %void"


def every_constant_program() -> Executable:
    ib = ExecBuilder()
    values = [np.arange(6, dtype="float32").reshape(2, 3), np.array(True), np.float16(0.5),
              np.zeros((0, 3), "int8"), np.array([1 + 2j], "complex64"), Shape([2, 3]),
              DataType("float16"), "héllo \"q\"\n", 1 << 60, -(1 << 63), 2.5, float("nan"),
              float("-inf"), -0.0, True, False, None, (1, 2.5, ("a", Shape([1])), (None,)), ()]
    if ml_dtypes is not None:
        values.append(np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16))
    with ib.function("main", num_inputs=1, param_names=["x"]):
        words = [ib.convert_constant(v) for v in values]
        ib.emit_call("k", args=[ib.r(0), *words], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    ib.declare_function("k")
    return ib.get()


@pytest.mark.parametrize("make", [branchy_program, every_constant_program])
def test_as_python_is_runnable_and_rebuilds_an_equal_executable(make):
    exe = make()
    text = exe.as_python()
    namespace: dict = {}
    exec(compile(text, "<as_python>", "exec"), namespace)
    rebuilt = namespace["ib"].get()
    assert rebuilt == exe
    assert rebuilt.as_text() == exe.as_text()


def test_as_python_uses_valid_special_registers_and_emits_param_names():
    text = branchy_program().as_python()
    assert "ib.vm_state()" in text and "ib.void_arg()" in text and "ib.r(vm)" not in text
    assert "with ib.function('main', num_inputs=2, param_names=['x', 'y']):" in text
    assert "ib.declare_function('test.vm.add', FuncKind.PACKED_FUNC)" in text
    assert "    ib.emit_if(ib.r(2), 3)" in text and "    ib.emit_goto(2)" in text
    assert "    ib.emit_call('vm.builtin.null_value', args=[], dst=ib.r(4))" in text


def test_stats_lists_constants_in_tvm_style_and_does_not_crash_on_floats():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        args = [ib.convert_constant(v) for v in (
            2.5, np.zeros((2, 3), "float32"), np.float32(7), np.array(1.0), Shape([4]),
            DataType("int8"), "s", 1 << 60, True, None, (1, 0.5))]
        ib.emit_call("k", args=[ib.r(0), *args], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    ib.declare_function("k")
    assert ib.get().stats() == (
        "Relax VM executable statistics:\n"
        "  Constant pool (# 11): [2.5, [2, 3], 7.0, scalar, shapetuple[4], int8, \"s\", "
        "1152921504606846976, True, None, (1, 0.5)]\n"
        "  Globals (#2): [main, k]")


def test_accessors_report_instructions_and_functions():
    exe = branchy_program()
    assert exe.num_instructions == 12
    assert exe.get_instruction(1) == If(2, 3) and exe.get_instruction(3) == Goto(2)
    assert exe.get_instruction(9) == Ret(6)
    assert isinstance(exe.get_instruction(0), Call)
    assert exe.has_function("lifted") and exe.has_function("test.vm.add")
    assert not exe.has_function("nope")
    with pytest.raises(ArgumentError, match=r"Executable.get_instruction: i must be in "
                                            r"\[0, 12\), got 12"):
        exe.get_instruction(12)


def test_equality_is_structural_and_tensors_compare_by_dtype_shape_and_bytes():
    a, b = every_constant_program(), every_constant_program()
    assert a == b and a is not b
    b.constants[0] = b.constants[0].astype("float64")
    assert a != b
    b = every_constant_program()
    b.constants[0] = b.constants[0].reshape(3, 2)
    assert a != b
    b = every_constant_program()
    b.func_table[0].param_names = ["y"]
    assert a != b
    b = every_constant_program()
    b.instr_data[-1] = 0
    assert a != b
    assert a != "not an executable"


def test_validate_reports_defect_of_a_hand_made_executable():
    exe = Executable([FunctionInfo(FuncKind.VM_FUNC, "main", 0, 1, 0, 0, [])], [], [0], [3, 0])
    with pytest.raises(ExecutableFormatError, match=r"Executable.validate: function 'main', "
                                                    r"instruction 0 \(goto\): goto offset must "
                                                    r"not be 0"):
        exe.validate()


def test_load_executable_rejects_other_argument_types():
    with pytest.raises(ArgumentError, match=r"load_executable: path_or_bytes must be a path "
                                            r"or bytes, got int"):
        load_executable(3)
