"""Run-time shape kernels over the shape heap (relaxvm/kernels/shape_program.py) and the
programs codegen writes for them (relaxvm/compiler/shapecode.py)."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.compiler.shapecode import ShapeHeap
from relaxvm.compiler.symbolic import dim_min, evaluate, floordiv, sym
from relaxvm.errors import ArgumentError, BuildError
from relaxvm.kernels.shape_program import shape_func, shape_values
from relaxvm.tensor import Tensor

b, s = sym("batch"), sym("seq")


def heap(*values: int) -> Tensor:
    return Tensor(np.array(values, np.int64), relaxvm.cpu(0))


def test_shape_func_program_from_shapecode_matches_expr_evaluation() -> None:
    sizes = ShapeHeap()
    sizes.bind_symbol("batch")
    sizes.bind_symbol("seq")
    exprs = [b * s * 4, floordiv(s + 1, 2), dim_min(s, 16), 3 - b]
    slots = [sizes.slot(e) for e in exprs]
    h = heap(*([0] * sizes.size))
    h.array[:2] = [3, 21]
    shape_func(h, h, sizes.program())
    for e, slot in zip(exprs, slots):
        assert h.array[slot] == evaluate(e, {"batch": 3, "seq": 21})


def test_shape_values_writes_into_any_dtype() -> None:
    out = Tensor(np.zeros((2, 2), np.float32), relaxvm.cpu(0))
    shape_values(heap(5, 7), out, "v0=h0;v1=h1*2;v2=(-1);v3=h0+h1")
    np.testing.assert_array_equal(out.array, [[5, 14], [-1, 12]])


@pytest.mark.parametrize("program,message", [
    ("h0=os.system(1)", r"unsupported expression"),
    ("h0=h1 / 2", "operator '/' is not allowed"),
    ("h0=x1", "a name must be a heap slot h<k>, got 'x1'"),
    ("h0=1.5", "shape programs use ints only"),
    ("h0=(", "program is malformed"),
])
def test_malformed_shape_programs_are_rejected(program: str, message: str) -> None:
    h = heap(1, 2)
    with pytest.raises(ArgumentError, match=message):
        shape_func(h, h, program)


def test_shape_func_refuses_targets_outside_the_heap() -> None:
    h = heap(1, 2)
    with pytest.raises(ArgumentError, match="target must be a heap slot h<k> with k < 2, got "
                                            "'h5'"):
        shape_func(h, h, "h5=h0")


def test_shape_values_checks_the_count() -> None:
    out = Tensor(np.zeros(3, np.int64), relaxvm.cpu(0))
    with pytest.raises(ArgumentError, match="program has 2 values but out holds 3"):
        shape_values(heap(1), out, "v0=1;v1=2")


def test_size_of_an_unbound_symbol_is_a_build_error() -> None:
    sizes = ShapeHeap()
    sizes.bind_symbol("batch")
    with pytest.raises(BuildError, match=r"size batch\*seq depends on \['seq'\], which no input "
                                         r"shape defines"):
        sizes.slot(b * s)
