"""The fused elementwise kernel (relaxvm/kernels/fused.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import get_kernel
from relaxvm.kernels.coverage import tolerance
from relaxvm.kernels.fused import (
    cuda_source,
    cuda_supports,
    fused_elementwise,
    literal,
    parse_fused,
    plan_buffers,
    statement,
)
from relaxvm.tensor import Tensor

REFERENCE = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "maximum": np.maximum,
    "minimum": np.minimum, "relu": lambda a: np.maximum(a, 0), "tanh": np.tanh,
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "neg": np.negative, "abs": np.abs,
    "silu": lambda a: a / (1 + np.exp(-a)),
}
UNARY = ["relu", "tanh", "sigmoid", "neg", "abs", "silu"]
BINARY = ["add", "subtract", "multiply", "maximum", "minimum"]


def t(array: np.ndarray) -> Tensor:
    return Tensor(array, relaxvm.cpu(0))


def run(program: str, inputs: list[np.ndarray], shape: tuple, dtype: str = "float32"
        ) -> np.ndarray:
    out = np.full(shape, np.nan if np.dtype(dtype).kind == "f" else 0, dtype)
    fused_elementwise([t(x) for x in inputs], t(out), program)
    return out


@st.composite
def chains(draw: st.DrawFn) -> tuple[str, list[np.ndarray], np.ndarray]:
    """A random DAG of elementwise ops over 1-3 broadcastable inputs, and its float64 value."""
    n_inputs = draw(st.integers(1, 3))
    shapes = [(3, 4), (4,), (3, 1)][:n_inputs]
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    values: list[tuple[str, np.ndarray]] = [(f"x{i}", x.astype(np.float64))
                                            for i, x in enumerate(inputs)]
    lines = []
    for k in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(UNARY + BINARY))
        if op in UNARY:
            name, val = draw(st.sampled_from(values))
            lines.append(statement(k, "float32", op, [name]))
            values.append((f"t{k}", REFERENCE[op](val)))
        else:
            (n1, v1), (n2, v2) = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            if draw(st.booleans()):
                c = draw(st.floats(-2, 2, width=32))
                n2, v2 = literal(c, "float32"), np.float64(c)
            lines.append(statement(k, "float32", op, [n1, n2]))
            values.append((f"t{k}", REFERENCE[op](v1, v2)))
    want = np.broadcast_to(values[-1][1], np.broadcast_shapes(*shapes))
    return ";".join(lines), inputs, want


@settings(max_examples=60, deadline=None)
@given(chains())
def test_random_chains_match_float64_numpy(case: tuple) -> None:
    program, inputs, want = case
    got = run(program, inputs, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_float16_chain_matches_float64_numpy_at_float16_tolerance() -> None:
    program = ("t0:float16=add(x0,x1);t1:float16=tanh(t0);"
               "t2:float16=multiply(t1,float16(0.5))")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 5)).astype(np.float16), rng.standard_normal(5).astype(
        np.float16)
    want = 0.5 * np.tanh(a.astype(np.float64) + b.astype(np.float64))
    rtol, atol = tolerance("fused_elementwise", "float16")
    np.testing.assert_allclose(run(program, [a, b], (4, 5), "float16"), want, rtol=rtol,
                               atol=atol)


def test_same_dtype_chain_needs_no_scratch_buffer() -> None:
    program = "t0:float32=add(x0,x1);t1:float32=relu(t0);t2:float32=multiply(t1,float32(0.5))"
    assert plan_buffers(program, "float32") == ((0, 0, 0), ())


def test_value_still_needed_is_not_overwritten() -> None:
    # t0 feeds both t1 and t2, and gelu (a kernel call) cannot run in place.
    program = ("t0:float32=add(x0,x1);t1:float32=gelu(t0,approximate=\"none\");"
               "t2:float32=add(t1,t0)")
    targets, scratch = plan_buffers(program, "float32")
    assert targets[0] != targets[1] and scratch == ("float32",)
    a, b = np.float32([[0.5, -1.0]]), np.float32([[1.0, 2.0]])
    got = run(program, [a, b], (1, 2))
    x = np.zeros((1, 2), np.float32)
    get_kernel("gelu", "cpu")(t(a + b), t(x))
    np.testing.assert_allclose(got, x + (a + b), rtol=1e-6)


def test_mixed_dtypes_go_through_a_bool_scratch_buffer() -> None:
    program = ("t0:bool=greater(x0,float32(0.0));t1:float32=where(t0,x0,float32((-1.0)));"
               "t2:float16=cast(t1)")
    x = np.float32([-2.0, 3.0, 0.5])
    np.testing.assert_array_equal(run(program, [x], (3,), "float16"),
                                  np.float16([-1.0, 3.0, 0.5]))


def test_kernel_attributes_and_open_bounds() -> None:
    program = statement(0, "float32", "clip", ["x0"], {"min": -0.5, "max": None})
    assert program == "t0:float32=clip(x0,min=(-0.5),max=none())"
    x = np.float32([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(run(program, [x], (3,)), [-0.5, 0.0, 3.0])


def test_integer_division_uses_the_onnx_kernel() -> None:
    program = "t0:int64=divide(x0,x1);t1:int64=add(t0,int64(1))"
    got = run(program, [np.int64([7, -7]), np.int64([2, 2])], (2,), "int64")
    np.testing.assert_array_equal(got, [4, -2])


@pytest.mark.parametrize("program,message", [
    ("t0:float32=add(x0,", "program is malformed"),
    ("t0:float32=add(x0,t5)", "'t5' is neither an input x<i> nor an earlier statement"),
    ("y:float32=relu(x0)", "target must be t<k>:<dtype>, got y:float32"),
    ("t0=relu(x0)", "target must be t<k>:<dtype>, got t0:None"),
    ("t0:float99=relu(x0)", "unknown dtype 'float99'"),
    ("t0:float32=relu(x0+x1)", "arguments must be x<i>, t<k> or typed literals"),
])
def test_malformed_programs_are_rejected(program: str, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        parse_fused(program)


def test_cuda_source_is_one_expression_per_statement() -> None:
    program = ("t0:float16=multiply(x0,float16(0.5));t1:float16=tanh(t0);"
               "t2:float16=leaky_relu(t1,alpha=0.1)")
    in_params, out_params, body = cuda_source(program, ("float16",), "float16")
    assert in_params == "float16 x0" and out_params == "float16 y"
    lines = body.splitlines()
    assert lines[0] == "float t0 = (float)(((float)x0) * ((float)(0.5)));"
    assert lines[1] == "float t1 = (float)tanh(t0);"
    assert lines[2] == "float t2 = (float)(t1 >= 0 ? t1 : (float)(0.1) * t1);"
    assert lines[3] == "y = (float16)t2;"


def test_cuda_fusibility_depends_on_op_and_dtype() -> None:
    assert cuda_supports("add", ["int64", "int64", "int64"], {})
    assert not cuda_supports("exp", ["int64", "int64"], {})
    assert cuda_supports("gelu", ["float32", "float32"], {"approximate": "none"})
    assert not cuda_supports("gelu", ["float32", "float32"], {"approximate": "tanh"})
    assert not cuda_supports("mod", ["float32"] * 3, {})
    assert not cuda_supports("add", ["bfloat16"] * 3, {})


@pytest.mark.cuda
def test_cuda_fused_kernel_matches_cpu() -> None:
    program = ("t0:float32=add(x0,x1);t1:float32=sigmoid(t0);t2:float32=multiply(t1,x0);"
               "t3:float32=clip(t2,min=(-0.5),max=none())")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(
        np.float32)
    want = run(program, [a, b], (3, 4))
    dev = relaxvm.cuda(0)
    out = relaxvm.empty((3, 4), "float32", dev)
    get_kernel("fused_elementwise", "cuda")([relaxvm.tensor(a, dev), relaxvm.tensor(b, dev)],
                                            out, program)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
