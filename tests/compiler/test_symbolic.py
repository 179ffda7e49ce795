"""Symbolic dimensions (relaxvm/compiler/symbolic.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaxvm.compiler.symbolic import (
    Expr,
    as_dim,
    dim_max,
    dim_min,
    evaluate,
    floordiv,
    is_static,
    mod,
    prod,
    sym,
)

b, s = sym("batch"), sym("seq")


def test_equal_polynomials_compare_equal_whatever_the_spelling() -> None:
    assert (b + 1) * 2 == 2 * b + 2
    assert b * s == s * b
    assert hash(b * s + 3) == hash(3 + s * b)
    assert (b + 2) - 2 == b
    assert b - b == 0 and isinstance(b - b, int)


def test_expressions_print_readably() -> None:
    assert str(2 * b + 2) == "2 + 2*batch"
    assert str(b * s - 1) == "-1 + batch*seq"
    assert str(b) == "batch"


def test_exact_division_stays_a_polynomial() -> None:
    assert floordiv(b * 32, 8) == 4 * b
    assert floordiv(b * s * 6, b * 3) == 2 * s
    assert mod(b * 8, 4) == 0


def test_inexact_division_is_an_atom_that_evaluates_correctly() -> None:
    q = floordiv(b + 5, 2)
    assert isinstance(q, Expr) and q.symbols() == {"batch"}
    assert evaluate(q, {"batch": 6}) == 5
    assert evaluate(mod(b + 5, 4), {"batch": 6}) == 3


def test_min_and_max_are_decided_when_the_difference_is_constant() -> None:
    assert dim_min(b + 1, b + 3) == b + 1
    assert dim_max(b + 1, b + 3) == b + 3
    m = dim_min(b, 16)
    assert isinstance(m, Expr) and evaluate(m, {"batch": 20}) == 16


def test_symbol_name_only_for_a_bare_symbol() -> None:
    assert b.symbol_name == "batch"
    assert (b + 1).symbol_name is None and (2 * b).symbol_name is None


def test_helpers_on_dimension_lists() -> None:
    assert prod([2, b, 3]) == 6 * b
    assert is_static([1, 2]) and not is_static([1, b])
    assert as_dim("n") == sym("n") and as_dim(4) == 4


def test_bad_dimensions_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"as_dim: a dimension must be an int, str or Expr, "
                                        r"got True"):
        as_dim(True)
    with pytest.raises(TypeError, match=r"Expr.symbol: name must be a non-empty str, got ''"):
        Expr.symbol("")
    with pytest.raises(TypeError, match=r"Expr.lift: expected an int or Expr, got 1.5"):
        Expr.lift(1.5)  # type: ignore[arg-type]


small = st.integers(-5, 5)


@given(small, small, small, st.integers(1, 9), st.integers(1, 9))
def test_arithmetic_matches_python_ints(c0: int, c1: int, c2: int, vb: int, vs: int) -> None:
    expr = (b * c1 + c0) * (s + c2) - b * s
    env = {"batch": vb, "seq": vs}
    assert evaluate(expr, env) == (vb * c1 + c0) * (vs + c2) - vb * vs
    assert evaluate(floordiv(expr, 3), env) == evaluate(expr, env) // 3


def test_floor_division_and_modulo_of_a_sum_print_with_parentheses() -> None:
    a, b, c = sym("a"), sym("b"), sym("c")
    assert str((a - b) // c) == "((a - b) // c)"
    assert str((a - b) % 4) == "((a - b) % 4)"
    assert str(a // 2) == "(a // 2)"
