"""The safe expression language (relaxvm/kernels/exprlang.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaxvm.kernels.exprlang import MAX_DEPTH, format_number, parse_program


def test_statements_with_dtypes_calls_and_keyword_arguments() -> None:
    (t, dtype, node), = parse_program('t0:float32 = leaky_relu(x0, alpha=0.5, mode="a b")')
    assert (t, dtype) == ("t0", "float32")
    assert node == ("call", "leaky_relu", (("ref", "x0"),),
                    (("alpha", ("num", 0.5)), ("mode", ("str", "a b"))))


def test_operator_precedence_and_unary_minus() -> None:
    (_, _, node), = parse_program("h2 = -h0 + h1 * 3 // 2")
    assert node == ("bin", "+", ("neg", ("ref", "h0")),
                    ("bin", "//", ("bin", "*", ("ref", "h1"), ("num", 3)), ("num", 2)))


def test_several_statements_and_trailing_semicolon() -> None:
    assert [t for t, _, _ in parse_program("a=1; b=(a); ")] == ["a", "b"]


@pytest.mark.parametrize("text,message", [
    ("t0 = __import__('os')", r"unexpected character \"'\" at position 16"),
    ("t0 = add(x0,", r"expected 'name'|expected '\('|end of program"),
    ("t0 add(x0)", r"expected '=' at position 3"),
    ("t0 = 1 2", r"unexpected '2' at position 7"),
    ("t0 = x0 ** 2", r"expected '\(' at position 9|unexpected"),
])
def test_malformed_programs_raise_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_program(text)


def test_nesting_and_length_are_bounded() -> None:
    with pytest.raises(ValueError, match=f"nests deeper than {MAX_DEPTH}"):
        parse_program("a=" + "(" * (MAX_DEPTH + 2) + "1" + ")" * (MAX_DEPTH + 2))
    with pytest.raises(ValueError, match="over the limit"):
        parse_program("a=" + "1+" * (1 << 20) + "1")
    with pytest.raises(ValueError, match="program must be a str, got bytes"):
        parse_program(b"a=1")  # type: ignore[arg-type]


def _value(node: tuple) -> float:
    if node[0] == "neg":
        return -_value(node[1])
    return node[1]


@given(st.floats(allow_nan=False) | st.integers(-(2 ** 62), 2 ** 62))
def test_number_literals_round_trip_exactly(value: float) -> None:
    (_, _, node), = parse_program(f"a={format_number(value)}")
    got = _value(node)
    assert got == value and type(got) is type(value)


def test_special_floats_round_trip() -> None:
    for value in (math.inf, -math.inf):
        (_, _, node), = parse_program(f"a={format_number(value)}")
        assert _value(node) == value
    (_, _, node), = parse_program(f"a={format_number(math.nan)}")
    assert math.isnan(_value(node))
