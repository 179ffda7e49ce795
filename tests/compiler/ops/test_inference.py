"""Shape and dtype inference rules (relaxvm/compiler/ops/elementwise.py, nn.py, shape.py),
checked against what NumPy produces for the same operation."""

from __future__ import annotations

import numpy as np
import pytest

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops import infer_types
from relaxvm.compiler.ops.nn import conv_out
from relaxvm.compiler.ops.shape import slice_length
from relaxvm.compiler.symbolic import evaluate, sym
from relaxvm.errors import BuildError

n = sym("n")


def one(op: str, inputs: list, **attrs: object) -> tuple:
    (shape, dtype), = infer_types(op, inputs, attrs)
    return shape, dtype


def test_binary_broadcasting_and_bool_comparisons() -> None:
    a, b = Value("a", (n, 1, 3)), Value("b", (4, 1))
    assert one("add", [a, b]) == ((n, 4, 3), "float32")
    assert one("less", [a, b]) == ((n, 4, 3), "bool")
    assert one("where", [Value("c", (3,), "bool"), a, b]) == ((n, 4, 3), "float32")


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                                   ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4,))])
def test_matmul_shapes_follow_numpy(sa: tuple, sb: tuple) -> None:
    want = np.matmul(np.zeros(sa), np.zeros(sb)).shape
    assert one("matmul", [Value("a", sa), Value("b", sb)])[0] == want


def test_matmul_contraction_mismatch_is_an_error() -> None:
    with pytest.raises(BuildError, match="matmul: contracted dimensions differ: 4 vs 5"):
        one("matmul", [Value("a", (3, 4)), Value("b", (5, 2))])


@pytest.mark.parametrize("size,k,s,pb,pe,d,ceil", [(7, 3, 2, 1, 1, 1, 0), (8, 3, 2, 0, 0, 1, 1),
                                                   (9, 2, 3, 1, 0, 2, 1), (5, 5, 1, 0, 0, 1, 0)])
def test_window_output_size_matches_the_onnx_formula(size: int, k: int, s: int, pb: int,
                                                     pe: int, d: int, ceil: int) -> None:
    span = (size + pb + pe - d * (k - 1) - 1) / s
    want = int(np.ceil(span) if ceil else np.floor(span)) + 1
    if ceil and (want - 1) * s >= size + pb:
        want -= 1
    assert conv_out(size, k, s, pb, pe, d, ceil) == want


def test_conv_with_symbolic_spatial_size_keeps_an_expression() -> None:
    shape, _ = one("conv2d", [Value("x", (1, 3, n, 8)), Value("w", (4, 3, 3, 3))],
                   strides=(2, 2), pads=(1, 1, 1, 1))
    assert evaluate(shape[2], {"n": 9}) == 5 and shape[3] == 4


@pytest.mark.parametrize("dim,start,end,step", [(10, 2, 8, 3), (10, -3, 100, 1),
                                                (10, 9, -100, -2), (5, 7, 9, 1), (6, 0, -1, 1)])
def test_static_slice_length_matches_python(dim: int, start: int, end: int, step: int) -> None:
    assert slice_length(dim, start, end, step) == len(range(dim)[start:end:step])


def test_symbolic_slice_length_evaluates_like_python() -> None:
    length = slice_length(n, 1, 2 ** 62, 1)
    assert evaluate(length, {"n": 7}) == 6
    clamped = slice_length(n, 0, 4, 1)
    assert evaluate(clamped, {"n": 3}) == 3 and evaluate(clamped, {"n": 9}) == 4


def test_reductions_and_arg_reductions() -> None:
    x = Value("x", (2, n, 4))
    assert one("sum", [x], axes=(1,), keepdims=0)[0] == (2, 4)
    assert one("mean", [x], axes=None, keepdims=1)[0] == (1, 1, 1)
    assert one("argmax", [x], axis=-1, keepdims=0) == ((2, n), "int64")


def test_reshape_element_count_mismatch_is_an_error() -> None:
    with pytest.raises(BuildError, match=r"reshape: cannot reshape float32\[2, 3\] \(6 elements\) "
                                         r"to \['4'\] \(4 elements\)"):
        one("reshape", [Value("x", (2, 3))], shape=(4,))


def test_concat_split_take_and_pad() -> None:
    a, b = Value("a", (n, 2)), Value("b", (n, 3))
    assert one("concat", [a, b], axis=1)[0] == (n, 5)
    outs = infer_types("split", [b], {"axis": 1, "sizes": (1, 2)})
    assert [s for s, _ in outs] == [(n, 1), (n, 2)]
    assert one("take", [Value("t", (5, 4)), Value("i", (n, 2), "int64")], axis=0)[0] == (n, 2, 4)
    assert one("pad", [a], pads=(1, 0, 2, 3))[0] == (n + 3, 5)
