"""Translation of bytecode to Python: block dispatch that scales, unwritten registers, limits,
parameter checks as inline guards."""

from __future__ import annotations

import ast
import math

import numpy as np
import programs  # noqa: F401  (registers the test.vm.* packed functions)
import pytest
from programs import factorial_program, while_loop_program

import relaxvm
from relaxvm.errors import ArgumentError, VMError
from relaxvm.tensor import Tensor
from relaxvm.vm import translate
from relaxvm.vm.builder import ExecBuilder
from relaxvm.vm.bytecode import Call, Goto, If, Ret, encode_arg
from relaxvm.vm.executable import Executable, FuncKind, FunctionInfo
from relaxvm.vm.interpreter import VirtualMachine


def counting_loops(loops: int) -> Executable:
    """main(n): s = 0; ``loops`` times over: i = 0; while i < n: s += 1; i += 1. Returns s.

    Each loop is three blocks (init, test, body), so the function has 3 * loops + 2."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["n"]):
        ib.emit_call("vm.builtin.copy", args=[ib.imm(0)], dst=ib.r(1))
        for _ in range(loops):
            ib.emit_call("vm.builtin.copy", args=[ib.imm(0)], dst=ib.r(2))
            ib.emit_call("test.vm.less", args=[ib.r(2), ib.r(0)], dst=ib.r(3))
            ib.emit_if(ib.r(3), 4)
            ib.emit_call("test.vm.add_scalar", args=[ib.r(1), ib.imm(1)], dst=ib.r(1))
            ib.emit_call("test.vm.add_scalar", args=[ib.r(2), ib.imm(1)], dst=ib.r(2))
            ib.emit_goto(-4)
        ib.emit_ret(ib.r(1))
    return ib.get()


def blocks_of(exe: Executable, name: str = "main") -> int:
    info = exe.func_table[exe.func_map[name]]
    return len(translate._leaders([exe.get_instruction(pc)
                                   for pc in range(info.start_instr, info.end_instr)]))


def compares_to_reach_a_block(source: str) -> int:
    """The most ``if``/``elif`` tests any path through the generated dispatch makes."""
    def depth(stmts: list[ast.stmt]) -> int:
        return max((1 + max(depth(s.body), depth(s.orelse)) for s in stmts
                    if isinstance(s, ast.If)), default=0)
    loop = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.While))
    return depth(loop.body)


def test_function_of_5000_blocks_runs_and_gives_the_right_answer():
    exe = counting_loops(1700)
    assert blocks_of(exe) >= 5000
    vm = VirtualMachine(exe, relaxvm.cpu())
    assert vm["main"](3) == 3 * 1700
    assert vm["main"](0) == 0


def test_block_dispatch_makes_logarithmically_many_compares():
    exe = counting_loops(1700)
    source = VirtualMachine(exe, relaxvm.cpu())._active.source
    tree_levels = math.ceil(math.log2(blocks_of(exe) / translate.LEAF_BLOCKS))
    assert compares_to_reach_a_block(source) <= tree_levels + translate.LEAF_BLOCKS
    small = VirtualMachine(while_loop_program(), relaxvm.cpu())._active.source
    assert compares_to_reach_a_block(small) <= translate.LEAF_BLOCKS - 1   # one flat leaf


def test_loops_and_recursion_still_run_in_every_mode():
    vm = VirtualMachine(while_loop_program(), relaxvm.cpu())
    assert vm["sum_to"](5) == 10
    calls = []
    vm.set_instrument(lambda func, sym, before, ret, *args: calls.append(sym) and None)
    assert vm["sum_to"](2) == 1
    assert calls.count("test.vm.less") == 2 * 3   # before and after, 3 tests of i < n
    vm.set_instrument(None)
    assert [c["Name"] for c in vm.profile("sum_to", 1).calls].count("test.vm.less") == 2
    assert VirtualMachine(factorial_program(), relaxvm.cpu())["fact"](6) == 720


def test_code_beyond_cpythons_compiler_limits_is_a_vm_error_naming_the_function(monkeypatch):
    # A flat if/elif chain (what block dispatch used to be) over 3000 blocks overflows
    # CPython's compiler; the failure must say which VM function, not be a RecursionError.
    monkeypatch.setattr(translate, "LEAF_BLOCKS", 10**9)
    exe = counting_loops(1000)
    with pytest.raises(VMError, match=r"cannot translate VM function 'main' \(\d+ "
                                      r"instructions\) into Python.*CPython compiler limit.*"
                                      r"split the function") as info:
        VirtualMachine(exe, relaxvm.cpu())
    assert not isinstance(info.value, RecursionError)
    assert info.value.__cause__ is None


# -- registers read before any write: None, as in TVM --------------------------------------

def skipped_write_program() -> Executable:
    """main(c): if c: r1 = 5; return r1 — the false branch never writes r1."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["c"]):
        ib.emit_if(ib.r(0), 3)
        ib.emit_call("vm.builtin.copy", args=[ib.imm(5)], dst=ib.r(1))
        ib.emit_goto(1)
        ib.emit_ret(ib.r(1))
    return ib.get()


def test_register_skipped_by_a_branch_reads_as_none():
    vm = VirtualMachine(skipped_write_program(), relaxvm.cpu())
    assert vm["main"](1) == 5
    assert vm["main"](0) is None


def hand_made(instrs, nregs: int, num_args: int = 0, packed=()) -> Executable:
    table = [FunctionInfo(FuncKind.VM_FUNC, "main", 0, len(instrs), num_args, nregs,
                          [f"a{i}" for i in range(num_args)])]
    table += [FunctionInfo(FuncKind.PACKED_FUNC, name) for name in packed]
    offsets, data = [], []
    for ins in instrs:
        offsets.append(len(data))
        data.extend(ins.encode())
    return Executable(table, [], offsets, data)


def test_unwritten_register_in_straight_line_code_reads_as_none_at_no_cost():
    # What a loaded file may hold (the builder would refuse it): ret of a never-written
    # register, and a call reading one.
    exe = hand_made([Call(1, 1, (encode_arg(0, 0),)), Ret(1)], nregs=2,
                    packed=["vm.builtin.copy"])
    vm = VirtualMachine(exe, relaxvm.cpu())
    assert vm["main"]() is None
    assert "= None" not in vm._active.source      # straight-line code initialises nothing
    assert VirtualMachine(hand_made([Ret(0)], nregs=1), relaxvm.cpu())["main"]() is None
    loaded = relaxvm.load_executable(hand_made([Ret(0)], nregs=1).save_to_bytes())
    assert VirtualMachine(loaded, relaxvm.cpu())["main"]() is None


def test_parameters_are_never_reset():
    exe = hand_made([If(0, 2), Goto(1), Ret(0)], nregs=1, num_args=1)
    assert VirtualMachine(exe, relaxvm.cpu())["main"](7) == 7



# -- parameter checks as one inline guard (plain mode) --------------------------------------

def checked_program(loop: bool = False) -> Executable:
    """main(x, y): check_tensor_info + match_shape on each (float32[32, 32], float32[4]), then
    return y. With ``loop``, the checks sit in a function that also has If/Goto blocks."""
    ib = ExecBuilder()
    f32 = relaxvm.DataType("float32")
    with ib.function("main", num_inputs=2, param_names=["x", "y"]):
        for reg, name, dims in ((0, "x", (32, 32)), (1, "y", (4,))):
            ctx = ib.convert_constant(f"main: parameter {name} expects float32{list(dims)}")
            ib.emit_call("vm.builtin.check_tensor_info", args=[ib.r(reg), ib.imm(len(dims)),
                                                                f32, ctx])
            codes = [w for d in dims for w in (ib.imm(0), ib.imm(d))]
            ib.emit_call("vm.builtin.match_shape", args=[ib.r(reg), ib.void_arg(),
                                                          ib.imm(len(dims)), *codes, ctx])
        if loop:
            ib.emit_call("vm.builtin.copy", args=[ib.imm(1)], dst=ib.r(2))
            ib.emit_if(ib.r(2), 2)
            ib.emit_goto(1)
        ib.emit_ret(ib.r(1))
    return ib.get()


def guard_lines(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if line.strip().startswith("if r")]


@pytest.mark.parametrize("loop", [False, True], ids=["straight", "blocks"])
def test_a_run_of_parameter_checks_becomes_one_inline_guard(loop):
    vm = VirtualMachine(checked_program(loop), relaxvm.cpu())
    (guard,) = guard_lines(vm._active.source)
    assert "r0.array.shape != (32, 32)" in guard and "r1.array.shape != (4,)" in guard
    assert "ndim" not in guard  # the exact shape implies it
    y = relaxvm.tensor(np.ones(4, "float32"))
    assert vm["main"](relaxvm.tensor(np.zeros((32, 32), "float32")), y) is y


@pytest.mark.parametrize("loop", [False, True], ids=["straight", "blocks"])
@pytest.mark.parametrize("x, y, instruction, callee, message", [
    ((3, 3), (4,), 1, "match_shape", r"main: parameter x expects float32\[32, 32\], got "
                                     r"float32\[3, 3\]"),
    ((32, 32, "float64"), (4,), 0, "check_tensor_info",
     r"main: parameter x expects float32\[32, 32\], got float64\[32, 32\]"),
    ((32, 32), (5,), 3, "match_shape", r"main: parameter y expects float32\[4\], got "
                                       r"float32\[5\]"),
    ((32, 32), "not a tensor", 2, "check_tensor_info", r"main: parameter y expects "
                                                       r"float32\[4\], got str"),
])
def test_a_failing_guard_raises_the_checks_usual_error_at_its_instruction(
        loop, x, y, instruction, callee, message):
    vm = VirtualMachine(checked_program(loop), relaxvm.cpu())

    def value(spec):
        if isinstance(spec, str):
            return spec
        *dims, dtype = spec if isinstance(spec[-1], str) else (*spec, "float32")
        return relaxvm.tensor(np.zeros(dims, dtype))

    with pytest.raises(ArgumentError, match=message) as info:
        vm["main"](value(x), value(y))
    assert info.value.vm_context["instruction"] == instruction
    assert info.value.vm_context["callee"] == f"vm.builtin.{callee}"
    assert str(info.value).startswith(f"main: instruction {instruction} (call vm.builtin.{callee})")


def test_guard_falls_back_to_the_checks_for_an_equal_dtype_that_is_another_object():
    vm = VirtualMachine(checked_program(), relaxvm.cpu())
    tagged = np.dtype("float32", metadata={"tag": 1})
    assert tagged == np.float32 and tagged is not np.dtype("float32")
    x = Tensor(np.zeros((32, 32), tagged), relaxvm.cpu())
    y = Tensor(np.zeros(4, tagged), relaxvm.cpu())
    assert vm["main"](x, y) is y


def test_instrumented_and_profiled_runs_still_see_every_check():
    vm = VirtualMachine(checked_program(), relaxvm.cpu())
    x, y = (relaxvm.tensor(np.zeros(d, "float32")) for d in ((32, 32), (4,)))
    seen = []
    vm.set_instrument(lambda func, sym, before, ret, *args: seen.append(sym) if before else None)
    vm["main"](x, y)
    assert seen == ["vm.builtin.check_tensor_info", "vm.builtin.match_shape"] * 2
    assert guard_lines(vm._active.source) == []
    vm.set_instrument(None)
    assert len(vm.profile("main", x, y).calls) == 4


def test_a_long_run_of_checks_is_split_into_guards_of_bounded_length():
    ib = ExecBuilder()
    n = translate.GUARD_RUN * 2 + 1
    with ib.function("main", num_inputs=n, param_names=[f"x{i}" for i in range(n)]):
        for i in range(n):
            ib.emit_call("vm.builtin.check_tensor_info", args=[
                ib.r(i), ib.imm(1), relaxvm.DataType("float32"), f"main: parameter x{i}"])
        ib.emit_ret(ib.r(0))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    assert len(guard_lines(vm._active.source)) == 3
    xs = [relaxvm.tensor(np.zeros(2, "float32")) for _ in range(n)]
    assert vm["main"](*xs) is xs[0]
    xs[-1] = relaxvm.tensor(np.zeros(2, "int8"))
    with pytest.raises(ArgumentError, match=rf"main: parameter x{n - 1} expects a float32 "
                                            r"tensor of 1 dims, got int8\[2\]"):
        vm["main"](*xs)
