"""Unary elementwise kernels against float64 references built from the ``math`` module."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, random_array, run_kernel, skip_unsupported, wide

from relaxvm.errors import ArgumentError
from relaxvm.kernels import get_kernel
from relaxvm.kernels.coverage import dtypes_tested
from relaxvm.objects import numpy_dtype


def _elementwise(fn: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    """Apply a scalar float64 function to every element (an independent reference)."""
    return lambda x: np.vectorize(fn, otypes=[np.float64])(wide(x))


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def _sign(v: float) -> float:
    return float((v > 0) - (v < 0))


# kernel -> (reference, low, high): inputs are drawn inside each function's domain.
UNARY = {
    "relu": (lambda v: max(v, 0.0), -3, 3),
    "neg": (lambda v: -v, -3, 3),
    "abs": (abs, -3, 3),
    "floor": (math.floor, -3, 3),
    "ceil": (math.ceil, -3, 3),
    "sign": (_sign, -3, 3),
    "identity": (lambda v: v, -3, 3),
    "sigmoid": (_sigmoid, -8, 8),
    "tanh": (math.tanh, -4, 4),
    "exp": (math.exp, -5, 5),
    "log": (math.log, 0.05, 5),
    "sqrt": (math.sqrt, 0.0, 5),
    "rsqrt": (lambda v: 1.0 / math.sqrt(v), 0.1, 5),
    "erf": (math.erf, -3, 3),
    "silu": (lambda v: v * _sigmoid(v), -6, 6),
    "sin": (math.sin, -3, 3),
    "cos": (math.cos, -3, 3),
    "tan": (math.tan, -1.2, 1.2),
    "asin": (math.asin, -0.95, 0.95),
    "acos": (math.acos, -0.95, 0.95),
    "atan": (math.atan, -3, 3),
    "sinh": (math.sinh, -3, 3),
    "cosh": (math.cosh, -3, 3),
    "asinh": (math.asinh, -3, 3),
    "acosh": (math.acosh, 1.05, 5),
    "atanh": (math.atanh, -0.9, 0.9),
    "reciprocal": (lambda v: 1.0 / v, 0.25, 4),
    "softplus": (lambda v: math.log1p(math.exp(-abs(v))) + max(v, 0.0), -10, 10),
}


@pytest.mark.parametrize("name, dtype", [pytest.param(n, d, id=f"{n}-{d}") for n in sorted(UNARY)
                                         for d in dtypes_tested(n)])
def test_unary_kernel_matches_float64_reference(dev: Any, name: str, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    ref, low, high = UNARY[name]
    x = random_array(np.random.default_rng(zlib.crc32(name.encode())), (4, 33), dtype, low, high)
    got = run_kernel(name, dev, [x], x.shape, dtype)
    check(name, got, _elementwise(ref)(x), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_is_half_to_even(dev: Any, dtype: str) -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 2.51, -3.7], dtype=dtype)
    got = run_kernel("round", dev, [x], x.shape, dtype)
    check("round", got, np.array([round(float(v)) for v in x], np.float64), dtype)


def test_round_bfloat16_is_half_to_even() -> None:
    x = np.array([0.5, 1.5, 2.5, -2.5, 3.25], dtype=numpy_dtype("bfloat16"))
    got = run_kernel("round", _cpu(), [x], x.shape, "bfloat16")
    check("round", got, np.array([0.0, 2.0, 2.0, -2.0, 3.0]), "bfloat16")


def _cpu() -> Any:
    import relaxvm
    return relaxvm.cpu(0)


def test_sigmoid_saturates_without_nan_at_extremes(dev: Any) -> None:
    x = np.array([-200.0, -90.0, 0.0, 90.0, 200.0], np.float32)
    with np.errstate(over="ignore"):
        got = run_kernel("sigmoid", dev, [x], x.shape, "float32")
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)


@pytest.mark.parametrize("dtype", dtype_params("gelu"))
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_both_forms(dev: Any, dtype: str, approximate: str) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(1), (3, 50), dtype, -5, 5)
    if approximate == "none":
        ref = _elementwise(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
    else:
        c = math.sqrt(2.0 / math.pi)
        ref = _elementwise(lambda v: 0.5 * v * (1.0 + math.tanh(c * (v + 0.044715 * v ** 3))))
    got = run_kernel("gelu", dev, [x], x.shape, dtype, [approximate])
    check("gelu", got, ref(x), dtype)


def test_gelu_rejects_unknown_approximation(dev: Any) -> None:
    x = np.ones(3, np.float32)
    with pytest.raises(ArgumentError, match="gelu: approximate must be 'none' or 'tanh', got "
                                            "'fast'"):
        run_kernel("gelu", dev, [x], x.shape, "float32", ["fast"])


@pytest.mark.parametrize("dtype", dtype_params("leaky_relu"))
@pytest.mark.parametrize("alpha", [0.01, 0.3, 1.7, -0.5])
def test_leaky_relu_for_small_and_large_alpha(dev: Any, dtype: str, alpha: float) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(2), (40,), dtype)
    got = run_kernel("leaky_relu", dev, [x], x.shape, dtype, [alpha])
    check("leaky_relu", got, _elementwise(lambda v: v if v >= 0 else alpha * v)(x), dtype)


@pytest.mark.parametrize("dtype", dtype_params("elu"))
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_elu(dev: Any, dtype: str, alpha: float) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(3), (40,), dtype)
    got = run_kernel("elu", dev, [x], x.shape, dtype, [alpha])
    check("elu", got, _elementwise(lambda v: v if v > 0 else alpha * math.expm1(v))(x), dtype)


@pytest.mark.parametrize("dtype", dtype_params("hard_sigmoid"))
def test_hard_sigmoid(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(4), (40,), dtype, -6, 6)
    got = run_kernel("hard_sigmoid", dev, [x], x.shape, dtype, [0.25, 0.4])
    check("hard_sigmoid", got, _elementwise(lambda v: min(1.0, max(0.0, 0.25 * v + 0.4)))(x),
          dtype)


@pytest.mark.parametrize("dtype", dtype_params("clip"))
@pytest.mark.parametrize("lo, hi", [(None, None), (-1.0, None), (None, 0.5), (-1.0, 0.5),
                                    (1.0, -1.0)])
def test_clip_with_open_and_crossed_bounds(dev: Any, dtype: str, lo: Any, hi: Any) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(5), (40,), dtype)

    def ref(v: float) -> float:  # ONNX: max first, then min, so min > max gives max
        v = v if lo is None else max(v, lo)
        return v if hi is None else min(v, hi)

    got = run_kernel("clip", dev, [x], x.shape, dtype, [lo, hi])
    check("clip", got, _elementwise(ref)(x), dtype)


@pytest.mark.parametrize("src, dst", [("float32", "int32"), ("float32", "float16"),
                                      ("int32", "float32"), ("float32", "bool"),
                                      ("bool", "float32"), ("float16", "float32"),
                                      ("bfloat16", "float32"), ("float32", "bfloat16")])
def test_cast_converts_to_out_dtype(dev: Any, src: str, dst: str) -> None:
    skip_unsupported(dev, src)
    skip_unsupported(dev, dst)
    x = random_array(np.random.default_rng(6), (30,), src, -50, 50)
    if src != "bool":
        x[:3] = np.array([0, -2.75, 2.75]).astype(numpy_dtype(src))
    got = run_kernel("cast", dev, [x], x.shape, dst)
    values = wide(x).tolist()
    if dst == "bool":
        expected = np.array([v != 0 for v in values])
    elif dst.startswith("int"):
        expected = np.array([math.trunc(v) for v in values], np.int64)  # toward zero
    else:
        expected = np.array(values, np.float64).astype(numpy_dtype(dst)).astype(np.float64)
    np.testing.assert_array_equal(wide(got), expected)


@pytest.mark.parametrize("dtype", ["bool", "float32"])
def test_logical_not_and_isnan(dev: Any, dtype: str) -> None:
    x = random_array(np.random.default_rng(7), (20,), dtype)
    if dtype == "float32":
        x[::3] = np.nan
        got = run_kernel("isnan", dev, [x], x.shape, "bool")
        np.testing.assert_array_equal(got, [math.isnan(v) for v in x.tolist()])
    else:
        got = run_kernel("logical_not", dev, [x], x.shape, "bool")
        np.testing.assert_array_equal(got, [not v for v in x.tolist()])


@pytest.mark.parametrize("dtype", ["int32", "uint8"])
def test_bitwise_not(dev: Any, dtype: str) -> None:
    x = random_array(np.random.default_rng(8), (20,), dtype, 0, 100)
    got = run_kernel("bitwise_not", dev, [x], x.shape, dtype)
    bits = np.iinfo(numpy_dtype(dtype)).bits
    mask = (1 << bits) - 1
    expected = [(~int(v)) & mask if dtype == "uint8" else ~int(v) for v in x.tolist()]
    np.testing.assert_array_equal(got.astype(np.int64), expected)


def test_relu_writes_into_existing_output_and_keeps_input() -> None:
    import relaxvm
    x = relaxvm.tensor(np.array([-1.0, 2.0, -3.0], np.float32))
    out = relaxvm.tensor(np.full(3, 9.0, np.float32))
    get_kernel("relu", "cpu")(x, out)
    np.testing.assert_array_equal(out.numpy(), [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(x.numpy(), [-1.0, 2.0, -3.0])


def test_relu_cpu_cached_zeros_follow_shape_and_dtype() -> None:
    relu = get_kernel("relu", "cpu")
    for shape, dtype in [((5,), "float32"), ((2, 3), "float64"), ((5,), "float64"),
                         ((5,), "int32")]:
        x = random_array(np.random.default_rng(9), shape, dtype, -5, 5)
        got = run_kernel("relu", _cpu(), [x], shape, dtype)
        np.testing.assert_array_equal(got, np.where(x > 0, x, 0))
    assert relu is get_kernel("relu", "cpu")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_in_place_reads_x_before_overwriting_it(approximate: str, dtype: str) -> None:
    import relaxvm
    x = random_array(np.random.default_rng(10), (64,), dtype)
    expected = run_kernel("gelu", _cpu(), [x], x.shape, dtype, [approximate])
    t = relaxvm.tensor(x)
    get_kernel("gelu", "cpu")(t, t, approximate)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-7)
