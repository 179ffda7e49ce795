"""Argument words, instruction records and their flat encoding (relaxvm/vm/bytecode.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaxvm.vm.bytecode import (
    BEGIN_SPECIAL_REG,
    KIND_BIT,
    VALUE_BIT,
    VALUE_MAX,
    VALUE_MIN,
    VM_REGISTER,
    VOID_REGISTER,
    ArgKind,
    Call,
    Goto,
    If,
    Opcode,
    Ret,
    decode_arg,
    decode_instruction,
    encode_arg,
    format_arg,
    function_defect,
    instruction_length,
)


def test_enum_values_match_tvm():
    assert [int(o) for o in (Opcode.CALL, Opcode.RET, Opcode.GOTO, Opcode.IF)] == [1, 2, 3, 4]
    assert [int(k) for k in ArgKind] == [0, 1, 2, 3]
    assert (KIND_BIT, VALUE_BIT) == (8, 56)
    assert (VALUE_MAX, VALUE_MIN) == (2**55 - 1, -(2**55 - 1))
    assert BEGIN_SPECIAL_REG == VOID_REGISTER == 1 << 54 and VM_REGISTER == (1 << 54) + 1


# Vectors measured with TVM (facts §1.2).
@pytest.mark.parametrize("kind, value, word", [
    (ArgKind.IMMEDIATE, -3, 0x01FFFFFFFFFFFFFD),
    (ArgKind.IMMEDIATE, 4, 0x0100000000000004),
    (ArgKind.CONST_IDX, 0, 0x0200000000000000),
    (ArgKind.REGISTER, 7, 7),
    (ArgKind.REGISTER, VOID_REGISTER, 2**54),
    (ArgKind.FUNC_IDX, 2, 0x0300000000000002),
])
def test_encode_arg_matches_tvm_vectors(kind, value, word):
    assert encode_arg(kind, value) == word
    assert decode_arg(word) == (kind, value)


def test_encode_arg_accepts_the_limits_and_sign_extends_on_decode():
    assert decode_arg(encode_arg(ArgKind.IMMEDIATE, VALUE_MAX)) == (ArgKind.IMMEDIATE, VALUE_MAX)
    assert decode_arg(encode_arg(ArgKind.IMMEDIATE, VALUE_MIN)) == (ArgKind.IMMEDIATE, VALUE_MIN)


@pytest.mark.parametrize("value", [VALUE_MAX + 1, VALUE_MIN - 1, 2**63])
def test_encode_arg_rejects_values_outside_56_bit_range(value):
    with pytest.raises(ValueError, match=rf"encode_arg: value {value} is outside the "
                                         rf"encodable range \[{VALUE_MIN}, {VALUE_MAX}\]"):
        encode_arg(ArgKind.IMMEDIATE, value)


def test_encode_arg_rejects_unknown_kind_and_non_int_value():
    with pytest.raises(ValueError, match=r"encode_arg: kind must be an ArgKind \(0..3\), got 4"):
        encode_arg(4, 0)
    with pytest.raises(ValueError, match=r"encode_arg: value must be an int, got float 1.5"):
        encode_arg(ArgKind.IMMEDIATE, 1.5)


def test_decode_arg_rejects_unknown_kind_and_non_words():
    with pytest.raises(ValueError, match=r"decode_arg: word 0x0500000000000001 has unknown "
                                         r"kind 5 \(expected 0..3\)"):
        decode_arg(0x0500000000000001)
    with pytest.raises(ValueError, match=r"decode_arg: word must be a 64-bit int, got 'x'"):
        decode_arg("x")
    with pytest.raises(ValueError, match=r"decode_arg: word must be a 64-bit int"):
        decode_arg(1 << 64)


@given(st.sampled_from(list(ArgKind)), st.integers(VALUE_MIN, VALUE_MAX))
@settings(deadline=None, max_examples=200)
def test_encode_decode_round_trip_against_independent_bit_arithmetic(kind, value):
    word = encode_arg(kind, value)
    # Independent reference: two's complement of value in 56 bits, kind in the top byte.
    expected = (int(kind) << 56) + (value if value >= 0 else (1 << 56) + value)
    assert word == expected and 0 <= word < 2**64
    assert decode_arg(word) == (kind, value)


def test_format_arg_prints_like_tvm_as_text():
    names = ["main", "lifted"]
    assert format_arg(3, names) == "%3"
    assert format_arg(VOID_REGISTER, names) == "%void"
    assert format_arg(VM_REGISTER, names) == "%vm"
    assert format_arg(encode_arg(ArgKind.IMMEDIATE, -3), names) == "i-3"
    assert format_arg(encode_arg(ArgKind.CONST_IDX, 2), names) == "c[2]"
    assert format_arg(encode_arg(ArgKind.FUNC_IDX, 1), names) == "f[lifted]"
    assert format_arg(encode_arg(ArgKind.FUNC_IDX, 9), names) == "f[#9]"


def test_instructions_encode_to_tvm_flat_layout_and_decode_back():
    call = Call(2, 1, (0, encode_arg(ArgKind.IMMEDIATE, -3)))
    program = [call, If(2, 3), Goto(-1), Ret(2)]
    data: list[int] = []
    offsets = []
    for ins in program:
        offsets.append(len(data))
        data.extend(ins.encode())
    assert data == [1, 2, 1, 2, 0, 0x01FFFFFFFFFFFFFD, 4, 2, 3, 3, -1, 2, 2]
    assert offsets == [0, 6, 9, 11]
    assert [decode_instruction(data, o) for o in offsets] == program
    assert [ins.opcode for ins in program] == [Opcode.CALL, Opcode.IF, Opcode.GOTO, Opcode.RET]
    assert not hasattr(Ret(0), "func_idx")   # the interpreter relies on this


@pytest.mark.parametrize("data, offset, message", [
    ([9, 0], 0, r"unknown opcode 9 at word 0 \(expected 1..4\)"),
    ([1, 0, 0], 0, r"Call at word 0 is truncated: needs 4 header words, 3 remain"),
    ([1, 0, 0, 5, 0], 0, r"Call at word 0 has 5 arguments but only 1 words remain"),
    ([1, 0, 0, -1], 0, r"Call at word 0 has -1 arguments"),
    ([4, 0], 0, r"IF at word 0 is truncated: needs 3 words, 2 remain"),
    ([2, 0], 2, r"instruction offset 2 is outside instr_data \(length 2\)"),
])
def test_instruction_length_rejects_malformed_words(data, offset, message):
    with pytest.raises(ValueError, match=message):
        instruction_length(data, offset)


def test_function_defect_accepts_a_loop_and_names_first_problem():
    names = ["f", "k"]
    body = [Call(1, 1, (0,)), If(1, 2), Goto(-2), Ret(1)]
    assert function_defect("f", body, 2, 0, [1, None], names) is None
    bad = [Call(1, 1, (5,)), Ret(1)]
    assert function_defect("f", bad, 2, 0, [1, None], names) == (
        "function 'f', instruction 0 (call k): argument 0 reads register 5, outside the "
        "register file [0, 2) and not %void or %vm")
