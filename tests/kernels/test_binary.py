"""Binary kernels with broadcasting, integer division and mod semantics, and where."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from kernel_harness import check, random_array, run_kernel, skip_unsupported, wide

from relaxvm.errors import ArgumentError
from relaxvm.kernels.coverage import dtypes_tested
from relaxvm.objects import numpy_dtype


def _broadcast_reference(fn: Callable[[Any, Any], Any], a: np.ndarray, b: np.ndarray,
                         otype: Any = np.float64) -> np.ndarray:
    """Apply a scalar function pairwise after broadcasting (element by element)."""
    x, y = np.broadcast_arrays(wide(a), wide(b))
    flat = [fn(p, q) for p, q in zip(x.ravel().tolist(), y.ravel().tolist(), strict=False)]
    return np.array(flat, dtype=otype).reshape(x.shape)


ARITHMETIC = {
    "add": (operator.add, -3, 3),
    "subtract": (operator.sub, -3, 3),
    "multiply": (operator.mul, -3, 3),
    "divide": (operator.truediv, 0.5, 3),
    "power": (math.pow, 0.5, 2),
    "maximum": (max, -3, 3),
    "minimum": (min, -3, 3),
}
COMPARISONS = {
    "equal": operator.eq, "not_equal": operator.ne, "less": operator.lt,
    "less_equal": operator.le, "greater": operator.gt, "greater_equal": operator.ge,
}
SHAPES = [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((5,), ()), ((), (2, 3))]


@pytest.mark.parametrize("name, dtype", [pytest.param(n, d, id=f"{n}-{d}")
                                         for n in sorted(ARITHMETIC) for d in dtypes_tested(n)])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_arithmetic_broadcasts_like_numpy(dev: Any, name: str, dtype: str, shapes: Any) -> None:
    skip_unsupported(dev, dtype)
    fn, low, high = ARITHMETIC[name]
    rng = np.random.default_rng(11)
    a = random_array(rng, shapes[0], dtype, low, high)
    b = random_array(rng, shapes[1], dtype, low, high)
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    got = run_kernel(name, dev, [a, b], out_shape, dtype)
    check(name, got, _broadcast_reference(fn, a, b), dtype)


@pytest.mark.parametrize("name", sorted(COMPARISONS))
@pytest.mark.parametrize("dtype", ["float32", "float16", "int32"])
def test_comparisons_give_bool(dev: Any, name: str, dtype: str) -> None:
    rng = np.random.default_rng(12)
    a = random_array(rng, (4, 5), dtype, -2, 3)
    b = random_array(rng, (5,), dtype, -2, 3)
    if dtype != "int32":  # make ties likely
        a, b = np.round(a), np.round(b)
    got = run_kernel(name, dev, [a, b], (4, 5), "bool")
    check(name, got, _broadcast_reference(COMPARISONS[name], a, b, bool), dtype)


@pytest.mark.parametrize("name, fn", [("logical_and", operator.and_),
                                      ("logical_or", operator.or_),
                                      ("logical_xor", operator.xor)])
def test_logical_ops_on_bools(dev: Any, name: str, fn: Any) -> None:
    rng = np.random.default_rng(13)
    a, b = rng.random((3, 4)) < 0.5, rng.random((4,)) < 0.5
    got = run_kernel(name, dev, [a, b], (3, 4), "bool")
    np.testing.assert_array_equal(got, _broadcast_reference(fn, a, b, bool))


@pytest.mark.parametrize("name, fn", [("bitwise_and", operator.and_),
                                      ("bitwise_or", operator.or_),
                                      ("bitwise_xor", operator.xor)])
@pytest.mark.parametrize("dtype", ["int32", "uint8"])
def test_bitwise_ops(dev: Any, name: str, fn: Any, dtype: str) -> None:
    rng = np.random.default_rng(14)
    a = random_array(rng, (3, 4), dtype, 0, 200)
    b = random_array(rng, (4,), dtype, 0, 200)
    got = run_kernel(name, dev, [a, b], (3, 4), dtype)
    np.testing.assert_array_equal(got, _broadcast_reference(fn, a, b, np.int64))


def _c_division(p: int, q: int) -> int:
    quotient = abs(p) // abs(q)
    return quotient if (p < 0) == (q < 0) else -quotient


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_divide_truncates_toward_zero(dev: Any, dtype: str) -> None:
    a = np.array([7, -7, 7, -7, 6, -6, 0, 1, -1], dtype)
    b = np.array([2, 2, -2, -2, 3, 4, 5, -3, 3], dtype)
    got = run_kernel("divide", dev, [a, b], a.shape, dtype)
    pairs = zip(a.tolist(), b.tolist(), strict=True)
    np.testing.assert_array_equal(got, [_c_division(p, q) for p, q in pairs])


@pytest.mark.parametrize("dtype", dtypes_tested("mod"))
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_follows_onnx_sign_rules(dev: Any, dtype: str, fmod: int) -> None:
    a = np.array([7, -7, 7, -7, 5, -5, 0], dtype)
    b = np.array([3, 3, -3, -3, 5, 2, 4], dtype)
    if dtype == "float32":
        a, b = a + np.float32(0.5), b
    ref = math.fmod if fmod else (lambda p, q: p - q * math.floor(p / q))
    got = run_kernel("mod", dev, [a, b], a.shape, dtype, [fmod])
    check("mod", got, _broadcast_reference(ref, a, b), dtype)


def test_mod_rejects_bad_fmod(dev: Any) -> None:
    a = np.ones(2, np.int32)
    with pytest.raises(ArgumentError, match="mod: fmod must be 0 or 1, got 2"):
        run_kernel("mod", dev, [a, a], a.shape, "int32", [2])


@pytest.mark.parametrize("dtype", dtypes_tested("where"))
def test_where_picks_with_broadcast_condition(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(15)
    cond = rng.random((3, 1)) < 0.5
    a = random_array(rng, (3, 4), dtype)
    b = random_array(rng, (4,), dtype)
    got = run_kernel("where", dev, [cond, a, b], (3, 4), dtype)
    x, y, c = np.broadcast_arrays(wide(a), wide(b), cond)
    triples = zip(x.ravel(), y.ravel(), c.ravel(), strict=True)
    expected = np.array([p if k else q for p, q, k in triples])
    check("where", got, expected.reshape(3, 4), dtype)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4),
       name=st.sampled_from(["add", "subtract", "multiply", "maximum", "divide"]),
       dtype=st.sampled_from(["float32", "float16"]), seed=st.integers(0, 2**16))
def test_any_broadcastable_shapes(dev: Any, shapes: Any, name: str, dtype: str,
                                  seed: int) -> None:
    rng = np.random.default_rng(seed)
    fn, low, high = ARITHMETIC[name]
    a = random_array(rng, shapes.input_shapes[0], dtype, low, high)
    b = random_array(rng, shapes.input_shapes[1], dtype, low, high)
    got = run_kernel(name, dev, [a, b], shapes.result_shape, dtype)
    check(name, got, _broadcast_reference(fn, a, b), dtype)


def test_bfloat16_add_broadcasts_on_cpu() -> None:
    import relaxvm
    bf16 = numpy_dtype("bfloat16")
    a = np.array([[1.0, 2.0, 3.0]], bf16)
    b = np.array([[0.5], [0.25]], bf16)
    got = run_kernel("add", relaxvm.cpu(0), [a, b], (2, 3), bf16)
    check("add", got, wide(a) + wide(b), "bfloat16")


# -- bit shifts (ONNX BitShift) ------------------------------------------------------------
def _shift_reference(a: int, s: int, bits: int, signed: bool, left: bool) -> int:
    """ONNX BitShift on Python ints: out-of-range amounts give the sign fill alone."""
    if not 0 <= s < bits:
        return -1 if (not left and a < 0) else 0
    if not left:
        return a >> s  # Python's >> is arithmetic
    wrapped = (a << s) % (1 << bits)
    return wrapped - (1 << bits) if signed and wrapped >= 1 << (bits - 1) else wrapped


SHIFT_DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]


@pytest.mark.parametrize("kernel", ["bitshift_left", "bitshift_right"])
@pytest.mark.parametrize("dtype", SHIFT_DTYPES)
def test_bitshift_matches_onnx_rules_with_broadcasting(dev: Any, kernel: str,
                                                       dtype: str) -> None:
    info = np.iinfo(dtype)
    bits, signed = info.bits, info.min < 0
    rng = np.random.default_rng(11)
    a = rng.integers(info.min, info.max, (3, 5), dtype=dtype, endpoint=True)
    a[0, :3] = [info.min, info.max, 1]
    low = -3 if signed else 0
    s = rng.integers(low, bits + 3, (5,)).astype(dtype)
    s[:3] = [0, bits - 1, bits]
    got = run_kernel(kernel, dev, [a, s], (3, 5), dtype)
    left = kernel == "bitshift_left"
    flat = [_shift_reference(int(p), int(q), bits, signed, left)
            for p, q in zip(*(v.ravel().tolist() for v in np.broadcast_arrays(a, s)))]
    np.testing.assert_array_equal(got, np.array(flat, dtype=object).astype(dtype).reshape(3, 5))


@pytest.mark.parametrize("dtype", dtypes_tested("bitshift_left"))
def test_bitshift_documented_dtypes_shift_a_scalar_amount(dev: Any, dtype: str) -> None:
    a = np.arange(1, 9, dtype=dtype)
    two = np.array(2, dtype=dtype)
    np.testing.assert_array_equal(run_kernel("bitshift_left", dev, [a, two], a.shape, dtype),
                                  a * 4)
    np.testing.assert_array_equal(run_kernel("bitshift_right", dev, [a, two], a.shape, dtype),
                                  a // 4)


def test_bitshift_rejects_float_inputs(dev: Any) -> None:
    a = np.ones(3, np.float32)
    with pytest.raises(ArgumentError, match="bitshift_left: a, b and out must be integer "
                                            "tensors with a's dtype in out, got float32, "
                                            "float32 and float32"):
        run_kernel("bitshift_left", dev, [a, a], a.shape, "float32")
