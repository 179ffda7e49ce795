"""ExecBuilder: TVM's names and semantics, Formalize, constants and every BuildError."""

from __future__ import annotations

import numpy as np
import programs  # noqa: F401  (registers the test.vm.* packed functions)
import pytest

import relaxvm
from relaxvm.errors import BuildError
from relaxvm.objects import DataType, Shape
from relaxvm.vm.builder import ExecBuilder
from relaxvm.vm.bytecode import (
    VM_REGISTER,
    VOID_REGISTER,
    ArgKind,
    Call,
    Ret,
    decode_arg,
    encode_arg,
)
from relaxvm.vm.executable import FuncKind
from relaxvm.vm.registry import register_func, remove_global_func


@pytest.fixture(autouse=True)
def packed_k():
    """Most tests call a packed function ``k``; get() requires callees to exist."""
    register_func("k", lambda *args: None, override=True)
    yield
    remove_global_func("k")


def one_call(args, num_inputs=1):
    """A builder with main(x) = k(*args); returns (builder, executable)."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=num_inputs):
        ib.emit_call("k", args=args(ib) if callable(args) else args, dst=ib.r(num_inputs))
        ib.emit_ret(ib.r(num_inputs))
    return ib, ib.get()


# -- Formalize ----------------------------------------------------------------------------

def test_formalize_renumbers_r100_r50_to_r2_r3_like_tvm():
    ib = ExecBuilder()
    with ib.function("func0", num_inputs=2):
        ib.emit_call("test.vm.add", args=[ib.r(0), ib.r(1)], dst=ib.r(100))
        ib.emit_call("test.vm.mul", args=[ib.r(1), ib.r(100)], dst=ib.r(50))
        ib.emit_ret(ib.r(50))
    exe = ib.get()
    add, mul = exe.func_map["test.vm.add"], exe.func_map["test.vm.mul"]
    assert exe.instr_data == [1, 2, add, 2, 0, 1, 1, 3, mul, 2, 1, 2, 2, 3]
    assert exe.instr_offset == [0, 6, 12]
    assert exe.func_table[0].register_file_size == 4


def test_formalize_reuses_register_written_twice_and_keeps_parameter_destinations():
    ib = ExecBuilder()
    with ib.function("f", num_inputs=1):
        ib.emit_call("k", args=[ib.r(0)], dst=ib.r(9))
        ib.emit_call("k", args=[ib.r(9)], dst=ib.r(9))
        ib.emit_call("k", args=[ib.r(9)], dst=ib.r(0))    # writes the parameter register
        ib.emit_call("k", args=[ib.r(0)])                 # void destination
        ib.emit_ret(ib.r(9))
    exe = ib.get()
    calls = [exe.get_instruction(i) for i in range(4)]
    assert [c.dst for c in calls] == [1, 1, 0, VOID_REGISTER]
    assert [c.args for c in calls] == [(0,), (1,), (1,), (0,)]
    assert exe.get_instruction(4) == Ret(1)
    assert exe.func_table[0].register_file_size == 2


def test_get_is_repeatable_and_does_not_change_the_builder():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        ib.emit_call("k", args=[ib.r(0)], dst=ib.r(7))
        ib.emit_ret(ib.r(7))
    assert ib.get() == ib.get()


# -- constants ------------------------------------------------------------------------------

def test_convert_constant_makes_immediates_for_ints_in_range_only():
    ib = ExecBuilder()
    assert ib.convert_constant(-3) == 0x01FFFFFFFFFFFFFD
    assert ib.convert_constant(np.int32(4)) == 0x0100000000000004
    big = ib.convert_constant(2**55)
    assert decode_arg(big) == (ArgKind.CONST_IDX, 0)
    assert ib.get().constants == [2**55]


def test_convert_constant_dedups_structurally_equal_values():
    ib = ExecBuilder()
    a = np.arange(4, dtype="float32")
    words = [ib.convert_constant(v) for v in (
        a, a.copy(), "s", "s", Shape([2, 3]), Shape([2, 3]), DataType("float32"), "float32",
        (1, 2.5), [1, 2.5])]
    indices = [decode_arg(w)[1] for w in words]
    # Same dtype+shape+bytes share; a DataType and the str of its name do not.
    assert indices == [0, 0, 1, 1, 2, 2, 3, 4, 5, 5]


def test_convert_constant_keeps_1_and_1_point_0_and_true_and_lookalike_arrays_apart():
    ib = ExecBuilder()
    big = 1 << 60
    values = [float(big), big, True, 1.0,
              np.zeros(2, "float32"), np.zeros(2, "int32"), np.zeros((1, 2), "float32"),
              0.0, -0.0]
    indices = [decode_arg(ib.convert_constant(v))[1] for v in values]
    assert indices == list(range(len(values)))


def test_tensor_constant_is_stored_as_an_independent_host_copy():
    ib = ExecBuilder()
    source = np.arange(6, dtype="float64").reshape(2, 3)
    t = relaxvm.tensor(source)
    ib.convert_constant(t)
    ib.convert_constant(source)
    source[0, 0] = 99.0
    pool = ib.get().constants
    assert len(pool) == 1 and isinstance(pool[0], np.ndarray)
    np.testing.assert_array_equal(pool[0], np.arange(6, dtype="float64").reshape(2, 3))


def test_emit_call_converts_tuples_to_shapes_and_other_values_to_constants():
    _, exe = one_call(lambda ib: [ib.r(0), (2, 3), 2.5, "s", True, None, [1, 2],
                                  DataType("int8"), np.ones(2, "float32")])
    ins = exe.get_instruction(0)
    assert ins.args[0] == 0
    consts = [exe.constants[decode_arg(w)[1]] for w in ins.args[1:]]
    assert consts[0] == (2, 3) and type(consts[0]) is Shape
    assert consts[1:7] == [2.5, "s", True, None, (1, 2), "int8"]
    assert type(consts[3]) is bool and type(consts[6]) is DataType
    np.testing.assert_array_equal(consts[7], np.ones(2, "float32"))


def test_emit_call_takes_a_plain_int_as_an_encoded_word():
    # TVM's pitfall, kept for compatibility: 0 is register 0, not the number 0.
    _, exe = one_call([0, encode_arg(ArgKind.IMMEDIATE, 5)])
    assert exe.get_instruction(0).args == (0, 0x0100000000000005)


def test_emit_call_rejects_an_int_that_is_not_a_word_with_a_hint():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        with pytest.raises(BuildError, match=r"emit_call\('k'\) \(function 'main', instruction "
                                             r"0\): argument 1 is the int -5, which is not an "
                                             r"encoded argument word.*ib.imm\(-5\)"):
            ib.emit_call("k", args=[ib.r(0), -5])
        ib.emit_ret(ib.r(0))


# -- function table -----------------------------------------------------------------------

def test_unknown_callee_is_declared_as_packed_function_in_first_use_order():
    _, exe = one_call(lambda ib: [ib.r(0)])
    assert [(f.name, f.kind, f.num_args) for f in exe.func_table] == [
        ("main", FuncKind.VM_FUNC, 1), ("k", FuncKind.PACKED_FUNC, -2)]
    assert exe.func_map == {"main": 0, "k": 1}


def calls(*names: str, declare: tuple[str, ...] = ()) -> ExecBuilder:
    """main(x) calls each name in turn on x; ``declare`` names are declare_function'ed."""
    ib = ExecBuilder()
    for name in declare:
        ib.declare_function(name)
    with ib.function("main", num_inputs=1, param_names=["x"]):
        for name in names:
            ib.emit_call(name, args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(0))
    return ib


def test_call_of_an_unknown_function_names_caller_callee_and_close_names():
    ib = calls("test.vm.add", "test.vm.ad")
    with pytest.raises(BuildError, match=r"ExecBuilder.get: function 'main', instruction 1 "
                                         r"calls unknown function 'test.vm.ad': it is not "
                                         r"defined in this builder, not a vm.builtin, not "
                                         r"registered with register_func and not a kernel; "
                                         r"did you mean test.vm.add.*; to call a function "
                                         r"registered later, declare it with "
                                         r"ib.declare_function\('test.vm.ad'\)"):
        ib.get()


def test_unknown_callee_close_to_a_function_of_the_builder_suggests_it():
    ib = calls("helpr")
    with ib.function("helper", num_inputs=1):
        ib.emit_ret(ib.r(0))
    with pytest.raises(BuildError, match=r"unknown function 'helpr'.*did you mean helper"):
        ib.get()


def test_builtins_registered_functions_kernels_and_declared_names_are_accepted():
    pytest.importorskip("relaxvm.kernels")
    exe = calls("vm.builtin.copy", "test.vm.add_scalar", "relu", "later.fn",
                declare=("later.fn",)).get()
    assert {"vm.builtin.copy", "relu", "later.fn"} <= set(exe.func_map)


def test_declaring_after_the_call_also_opts_out_and_keeps_table_order():
    ib = calls("later.fn")
    ib.declare_function("later.fn")
    assert [f.name for f in ib.get().func_table] == ["main", "later.fn"]


def test_a_function_registered_before_get_is_found():
    ib = calls("test.builder.late")
    with pytest.raises(BuildError, match="unknown function 'test.builder.late'"):
        ib.get()
    register_func("test.builder.late", lambda x: x, override=True)
    try:
        assert "test.builder.late" in ib.get().func_map
    finally:
        remove_global_func("test.builder.late")


def test_forward_reference_by_emit_call_becomes_a_vm_function():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        ib.emit_call("double", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    with ib.function("double", num_inputs=1, param_names=["y"]):
        ib.emit_call("test.vm.add_scalar", args=[ib.r(0), ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    exe = ib.get()
    info = exe.func_table[exe.func_map["double"]]
    assert (info.kind, info.num_args, info.param_names) == (FuncKind.VM_FUNC, 1, ["y"])
    assert (info.start_instr, info.end_instr) == (2, 4)


def test_forward_reference_by_f_and_tvm_style_declaration_both_work():
    ib = ExecBuilder()
    ib.declare_function("tvm_style", FuncKind.VM_FUNC)
    with ib.function("main", num_inputs=1):
        ib.emit_call("vm.builtin.make_closure", args=[ib.f("lifted"), ib.r(0)], dst=ib.r(1))
        ib.emit_call("tvm_style", args=[ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    for name in ("lifted", "tvm_style"):
        with ib.function(name, num_inputs=1):
            ib.emit_ret(ib.r(0))
    exe = ib.get()
    assert exe.func_table[exe.func_map["lifted"]].kind == FuncKind.VM_FUNC
    assert exe.func_table[exe.func_map["tvm_style"]].kind == FuncKind.VM_FUNC


def test_param_names_default_to_argN():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2):
        ib.emit_ret(ib.r(1))
    assert ib.get().func_table[0].param_names == ["arg0", "arg1"]


def test_void_and_vm_registers_are_tvm_special_registers():
    ib = ExecBuilder()
    assert ib.void_arg() == 2**54 and ib.vm_state() == 2**54 + 1
    assert (VOID_REGISTER, VM_REGISTER) == (ib.void_arg(), ib.vm_state())


# -- every BuildError -----------------------------------------------------------------------

@pytest.mark.parametrize("emit, name", [
    (lambda ib: ib.emit_call("k"), r"emit_call\('k'\)"),
    (lambda ib: ib.emit_ret(ib.r(0)), "emit_ret"),
    (lambda ib: ib.emit_goto(1), "emit_goto"),
    (lambda ib: ib.emit_if(ib.r(0), 2), "emit_if"),
])
def test_emit_outside_a_function_scope_is_an_error(emit, name):
    ib = ExecBuilder()
    with pytest.raises(BuildError, match=rf"{name}: emit should happen in a function scope.*"
                                         r"instruction 0 was emitted outside any function"):
        emit(ib)


def get_error(body, num_inputs=1, setup=None):
    """The BuildError message of get() for main(...) whose body is ``body(ib)``."""
    ib = ExecBuilder()
    if setup:
        setup(ib)
    with ib.function("main", num_inputs=num_inputs):
        body(ib)
    with pytest.raises(BuildError) as info:
        ib.get()
    return str(info.value)


def test_function_without_ret_is_an_error():
    msg = get_error(lambda ib: ib.emit_call("k", args=[ib.r(0)]))
    assert msg == "ExecBuilder.get: function 'main' has no Ret instruction"


def test_empty_function_is_an_error():
    assert get_error(lambda ib: None) == ("ExecBuilder.get: function 'main' has no "
                                          "instructions; it needs at least a Ret")


def test_function_never_ended_is_an_error():
    ib = ExecBuilder()
    ib.function("main", num_inputs=1)   # not used as a context manager
    ib.emit_ret(ib.r(0))
    with pytest.raises(BuildError, match=r"ExecBuilder.get: function 'main' was never ended"):
        ib.get()


def test_register_read_before_written_names_function_instruction_and_register():
    def body(ib):
        ib.emit_call("k", args=[ib.r(0)], dst=ib.r(5))
        ib.emit_call("k", args=[ib.r(6)], dst=ib.r(6))
        ib.emit_ret(ib.r(6))
    assert get_error(body) == ("ExecBuilder.get: function 'main', instruction 1 (call k): "
                               "register %6 is read before any earlier instruction writes it")


def test_register_out_of_range_is_an_error():
    def body(ib):
        ib.emit_call("k", args=[ib.r(2**54 + 5)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    assert get_error(body) == ("ExecBuilder.get: function 'main', instruction 0 (call k): "
                               "register %18014398509481989 is out of range (not a register "
                               "nor %void/%vm)")


def test_ret_and_if_reads_are_checked_too():
    msg = get_error(lambda ib: ib.emit_ret(ib.r(3)))
    assert msg.endswith("instruction 0 (ret): register %3 is read before any earlier "
                        "instruction writes it")

    def body(ib):
        ib.emit_if(ib.r(4), 2)
        ib.emit_ret(ib.r(0))
        ib.emit_ret(ib.r(0))
    assert "instruction 0 (if): register %4 is read before" in get_error(body)


def test_const_index_out_of_range_is_an_error():
    def body(ib):
        ib.emit_call("k", args=[ib.c(3)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    assert get_error(body) == ("ExecBuilder.get: function 'main', instruction 0 (call k): "
                               "argument 0 uses constant c[3], but the pool has 0 constants")


def test_function_named_by_f_but_never_defined_is_an_error():
    def body(ib):
        ib.emit_call("vm.builtin.make_closure", args=[ib.f("nope")], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    assert get_error(body) == ("ExecBuilder.get: f('nope') names a function that is never "
                               "defined or declared")


def test_function_declared_vm_but_never_defined_is_an_error():
    msg = get_error(lambda ib: ib.emit_ret(ib.r(0)),
                    setup=lambda ib: ib.declare_function("later", FuncKind.VM_FUNC))
    assert msg == ("ExecBuilder.get: function 'later' is declared as a VM function but "
                   "never defined")


def test_goto_zero_is_an_error():
    def body(ib):
        ib.emit_goto(0)
        ib.emit_ret(ib.r(0))
    assert get_error(body) == ("ExecBuilder.get: function 'main', instruction 0 (goto): goto "
                               "offset must not be 0 (it would jump to itself forever)")


@pytest.mark.parametrize("offset", [1, 0, -1])
def test_if_offset_of_one_or_less_is_an_error(offset):
    def body(ib):
        ib.emit_if(ib.r(0), offset)
        ib.emit_ret(ib.r(0))
    assert get_error(body) == (f"ExecBuilder.get: function 'main', instruction 0 (if): if "
                               f"false_offset must be greater than 1 (1 is the fall-through "
                               f"instruction), got {offset}")


@pytest.mark.parametrize("emit, target", [
    (lambda ib: ib.emit_goto(5), 6),
    (lambda ib: ib.emit_goto(-2), -1),
    (lambda ib: ib.emit_if(ib.r(0), 5), 6),
])
def test_jump_that_leaves_the_function_is_an_error(emit, target):
    def body(ib):
        ib.emit_call("k", args=[ib.r(0)])
        emit(ib)
        ib.emit_ret(ib.r(0))
    msg = get_error(body)
    assert msg.startswith("ExecBuilder.get: function 'main', instruction 1 (")
    assert msg.endswith(f"jumps to instruction {target}, outside the function's "
                        f"instructions [0, 3)")


def test_last_instruction_that_falls_off_the_end_is_an_error():
    def body(ib):
        ib.emit_ret(ib.r(0))
        ib.emit_call("k", args=[ib.r(0)])
    assert get_error(body) == ("ExecBuilder.get: function 'main', instruction 1 (call k): the "
                               "last instruction must be Ret or Goto, otherwise control runs "
                               "past the end of the function")


def test_call_of_vm_function_with_wrong_arity_is_an_error():
    ib = ExecBuilder()
    with ib.function("two", num_inputs=2):
        ib.emit_ret(ib.r(0))
    with ib.function("main", num_inputs=1):
        ib.emit_call("two", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    with pytest.raises(BuildError, match=r"function 'main', instruction 0 \(call two\): calls "
                                         r"VM function 'two' with 1 arguments, but it takes 2"):
        ib.get()


def test_writing_to_the_vm_register_is_an_error():
    def body(ib):
        ib.emit_call("k", args=[], dst=ib.vm_state())
        ib.emit_ret(ib.r(0))
    assert "instruction 0 (call k): writes register 18014398509481985" in get_error(body)


def test_param_names_length_mismatch_is_an_error():
    ib = ExecBuilder()
    with pytest.raises(BuildError, match=r"function\('main'\): param_names must be 2 strings "
                                         r"\(one per input\), got \['x'\]"):
        ib.function("main", num_inputs=2, param_names=["x"])


def test_defining_a_function_twice_is_an_error():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        ib.emit_ret(ib.r(0))
    with pytest.raises(BuildError, match=r"function\('main'\): function 'main' is already "
                                         r"defined"):
        ib.function("main", num_inputs=1)


def test_nested_functions_are_an_error():
    ib = ExecBuilder()
    with ib.function("outer"):
        with pytest.raises(BuildError, match=r"function\('inner'\): function 'outer' is "
                                             r"still open; functions cannot nest"):
            ib.function("inner")


def test_redeclaring_with_another_kind_is_an_error():
    ib = ExecBuilder()
    ib.declare_function("k", FuncKind.PACKED_FUNC)
    with pytest.raises(BuildError, match=r"declare_function\('k'\): already declared as "
                                         r"PACKED_FUNC, cannot redeclare as VM_FUNC"):
        ib.declare_function("k", FuncKind.VM_FUNC)
    with pytest.raises(BuildError, match=r"function\('k'\): 'k' was declared as a packed "
                                         r"function and cannot be defined as a VM function"):
        ib.function("k")


@pytest.mark.parametrize("call, message", [
    (lambda ib: ib.r(-1), r"ExecBuilder.r: idx must be a register number >= 0, got -1"),
    (lambda ib: ib.imm(2**55), r"ExecBuilder.imm: encode_arg: value 36028797018963968 is "
                               r"outside the encodable range"),
    (lambda ib: ib.convert_constant(object()), r"ExecBuilder.convert_constant: a constant must "
                                               r"be a tensor.*got object"),
    (lambda ib: ib.convert_constant(1 << 70), r"ExecBuilder.convert_constant: int constant "
                                              r"1180591620717411303424 does not fit in 64 bits"),
    (lambda ib: ib.convert_constant(np.array(["a"])), r"convert_constant: tensor dtype <U1 is "
                                                      r"not supported"),
    (lambda ib: ib.declare_function("k", 7), r"declare_function\('k'\): kind must be a "
                                             r"FuncKind, got 7"),
    (lambda ib: ib.function("f", num_inputs=-1), r"function\('f'\): num_inputs must be an int "
                                                 r">= 0, got -1"),
])
def test_invalid_builder_arguments_are_errors(call, message):
    with pytest.raises(BuildError, match=message):
        call(ExecBuilder())


@pytest.mark.parametrize("emit, message", [
    (lambda ib: ib.emit_goto(1.5), r"emit_goto \(function 'main', instruction 0\): pc_offset "
                                   r"must be an int, got 1.5"),
    (lambda ib: ib.emit_if(ib.r(0), "2"), r"emit_if \(function 'main', instruction 0\): "
                                          r"false_offset must be an int, got '2'"),
])
def test_jump_offsets_must_be_ints(emit, message):
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        with pytest.raises(BuildError, match=message):
            emit(ib)
        ib.emit_ret(ib.r(0))


@pytest.mark.parametrize("emit, what", [
    (lambda ib: ib.emit_call("k", args=[], dst=ib.imm(1)), "dst"),
    (lambda ib: ib.emit_ret(ib.imm(1)), "result"),
    (lambda ib: ib.emit_if(ib.c(0), 2), "cond"),
])
def test_register_operands_must_be_register_words(emit, what):
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        with pytest.raises(BuildError, match=rf"\(function 'main', instruction 0\): {what} "
                                             r"must be a register word such as ib.r\(2\)"):
            emit(ib)
        ib.emit_ret(ib.r(0))


def test_builder_output_matches_an_independent_encoding():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1):
        ib.emit_call("k", args=[ib.r(0), ib.imm(-1), ib.convert_constant("s")], dst=ib.r(4))
        ib.emit_ret(ib.r(4))
    exe = ib.get()
    assert exe.get_instruction(0) == Call(1, 1, (0, (1 << 56) | ((1 << 56) - 1), 2 << 56))
