"""cast/cast_float8 into and out of the low-bit types, quantize_linear, dequantize_linear,
dynamic_quantize_linear and the quantized compute kernels (matmul_integer,
qlinear_matmul, conv_integer, qlinear_conv) against onnx.reference, and against float64
NumPy where onnx.reference rounds its rescale factor to float16 or lacks a case.

The low-bit dtypes (float8, float4, int4, int2...) are ml_dtypes types that CuPy has no
type for, so those cases run on the CPU; :func:`check_device_dtypes` (what every such
kernel calls first on CUDA) is tested with a stand-in array module named like CuPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, onnx_node_reference, run_kernel, run_multi
from onnx import TensorProto, helper

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels.quantize import check_device_dtypes
from relaxvm.objects import FLOAT8_DTYPES, numpy_dtype

ml_dtypes = pytest.importorskip("ml_dtypes")

OPSET = 25
CPU = relaxvm.cpu(0)
SPECIAL = np.array([0.0, -0.0, 0.4789, -0.5, 1.0, 3.3, 100.0, 447.0, 465.0, 500.0, 1e6,
                    -1e6, 57344.0, 61440.0, 1e-7, -1e-7, np.inf, -np.inf, np.nan],
                   np.float32)


def onnx_reference(op: str, inputs: list[tuple[str, np.ndarray | None]], n_out: int = 1,
                   **attrs: Any) -> list[np.ndarray]:
    """Run one ONNX node with onnx.reference; a None input is left out (empty name)."""
    return onnx_node_reference(op, inputs, OPSET, n_out, **attrs)

def special(dtype: str) -> np.ndarray:
    """SPECIAL in ``dtype`` (overflowing to inf where the type is narrow)."""
    with np.errstate(over="ignore"):
        return SPECIAL.astype(numpy_dtype(dtype))


def onnx_code(dtype: str) -> int:
    return helper.np_dtype_to_tensor_dtype(numpy_dtype(dtype))


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype and shape, equal values (NaN equal to NaN, -0 distinct from 0 only via
    the bits of float types that have a negative zero)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    if got.dtype.kind in "biu" or got.dtype.name in ("int4", "uint4", "int2", "uint2"):
        np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64))
        return
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))
    np.testing.assert_array_equal(np.signbit(got.astype(np.float64)),
                                  np.signbit(want.astype(np.float64)))


# -- cast ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dst", FLOAT8_DTYPES)
@pytest.mark.parametrize("src", ["float32", "float16", "float64", "int32"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_into_float8_follows_saturate(src: str, dst: str, saturate: int) -> None:
    x = special(src) if src != "int32" else \
        np.array([0, 3, -17, 240, 241, 448, 500, 60000, -70000], np.int32)
    want = onnx_reference("Cast", [("x", x)], to=onnx_code(dst), saturate=saturate)[0]
    kernel = "cast_float8" if saturate else "cast"
    got = run_kernel(kernel, CPU, [x], x.shape, dst, [saturate] if saturate else [])
    assert_same(got, want)


def test_cast_float8_saturates_to_the_largest_finite_value() -> None:
    x = np.array([np.inf, -np.inf, 1e9, 470.0, np.nan], np.float32)
    got = run_kernel("cast_float8", CPU, [x], x.shape, "float8_e4m3fn", [1])
    np.testing.assert_array_equal(got.astype(np.float32)[:4], [448, -448, 448, 448])
    assert np.isnan(got.astype(np.float32)[4])
    e5m2 = run_kernel("cast", CPU, [x], x.shape, "float8_e5m2")  # saturate=0: inf stays
    np.testing.assert_array_equal(e5m2.astype(np.float32)[:3], [np.inf, -np.inf, np.inf])


E8M0_INPUTS = np.array([0.0, 0.124, 0.125, 0.25, 0.3, 0.375, 0.5, 0.74, 0.75, 1.0, 1.1,
                        1.5, 1.9, 2.0, 3.0, 1e30, 2.0**127, 3.0 * 2.0**126, 2.0**127 * 1.9,
                        np.nan, 1e-38], np.float32)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("src", ["float32", "float16"])
def test_cast_into_float8e8m0_rounds_by_round_mode(round_mode: str, saturate: int,
                                                    src: str) -> None:
    with np.errstate(over="ignore"):
        x = E8M0_INPUTS.astype(numpy_dtype(src))
    x = x[~np.isinf(x)]  # inf: see test_cast_into_float8e8m0_maps_inf_by_saturate
    want = onnx_reference("Cast", [("x", x)], to=TensorProto.FLOAT8E8M0, saturate=saturate,
                          round_mode=round_mode)[0]
    got = run_kernel("cast_float8", CPU, [x], x.shape, "float8_e8m0fnu",
                     [saturate, round_mode])
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("saturate, bits", [(1, 0xFE), (0, 0xFF)])
def test_cast_into_float8e8m0_maps_inf_by_saturate(saturate: int, bits: int) -> None:
    # ONNX's table: inf -> E8M0_MAX when saturating, NaN otherwise (onnx.reference 1.23
    # returns NaN for both).
    x = np.array([np.inf, np.inf], np.float32)
    for mode in ("up", "down", "nearest"):
        got = run_kernel("cast_float8", CPU, [x], x.shape, "float8_e8m0fnu", [saturate, mode])
        assert got.view(np.uint8).tolist() == [bits, bits]


def test_cast_into_float8e8m0_rounds_subnormals_between_the_two_smallest_values() -> None:
    tiny = np.float32(2.0 ** -126)
    x = np.array([0.0, 0.25, 0.5, 0.6, 0.75, 0.9], np.float32) * tiny
    bits = {mode: run_kernel("cast_float8", CPU, [x], x.shape, "float8_e8m0fnu",
                             [1, mode]).view(np.uint8).tolist()
            for mode in ("up", "down", "nearest")}
    assert bits == {"up": [0, 0, 0, 1, 1, 1], "down": [0] * 6, "nearest": [0, 0, 0, 0, 1, 1]}


LOW_BIT = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
           "float8_e8m0fnu", "float4_e2m1fn", "int4", "uint4", "int2", "uint2"]


@pytest.mark.parametrize("src", LOW_BIT)
@pytest.mark.parametrize("dst", ["float32", "float16", "int8", "uint8", "bfloat16"])
def test_cast_out_of_low_bit_types_matches_onnx(src: str, dst: str) -> None:
    values = np.array([0, 1, 2, 3, 0.5, 1.5, 6, 7] if src.startswith("u")
                      else [0.25, 1, 2, 4, 0.5, 0.125, 8, 16] if src == "float8_e8m0fnu"
                      else [0, 1, -1, -2, 0.5, 1.5, -6, 7], np.float32)
    if dst == "uint8":
        values = np.abs(values)  # negative floats into uint8 are undefined
    if src.startswith(("int", "uint")):
        info = ml_dtypes.iinfo(numpy_dtype(src))
        values = np.clip(np.trunc(values), int(info.min), int(info.max))
    x = values.astype(numpy_dtype(src))
    want = onnx_reference("Cast", [("x", x)], to=onnx_code(dst))[0]
    assert_same(run_kernel("cast", CPU, [x], x.shape, dst), want)


@pytest.mark.parametrize("dst", ["float4_e2m1fn", "int4", "uint4", "int2", "uint2"])
def test_cast_into_4_and_2_bit_types_matches_onnx(dst: str) -> None:
    x = np.array([0.0, 0.25, 0.5, 1.0, 1.4, 2.0, 3.0, -1.0, -2.0, 5.0, 7.0], np.float32)
    with np.errstate(invalid="ignore"):  # out of range for the integers: as ml_dtypes does
        want = onnx_reference("Cast", [("x", x)], to=onnx_code(dst))[0]
        assert_same(run_kernel("cast", CPU, [x], x.shape, dst), want)


def test_cast_float8_rejects_bad_attributes_and_targets() -> None:
    x = np.ones(3, np.float32)
    with pytest.raises(ArgumentError, match="cast: round_mode must be one of up, down, "
                                            "nearest, got 'even'"):
        run_kernel("cast_float8", CPU, [x], x.shape, "float8_e8m0fnu", [1, "even"])
    with pytest.raises(ArgumentError, match="cast_float8: saturate must be 0 or 1, got 2"):
        run_kernel("cast_float8", CPU, [x], x.shape, "float8_e4m3fn", [2])
    with pytest.raises(ArgumentError, match="cast_float8: out must be a float8 dtype"):
        run_kernel("cast_float8", CPU, [x], x.shape, "int8")


class _CupyLike:
    """An array module that calls itself CuPy (what check_device_dtypes looks at)."""

    __name__ = "cupy"


def test_low_bit_dtypes_raise_a_clear_error_on_cuda() -> None:
    xp = _CupyLike()
    check_device_dtypes(xp, "cast", [np.dtype(np.float32), numpy_dtype("bfloat16")])
    for name in LOW_BIT:
        with pytest.raises(ArgumentError, match=f"cast: dtype {name} is not supported on "
                                                f"CUDA \\(CuPy has no {name} type\\)"):
            check_device_dtypes(xp, "cast", [np.dtype(np.float32), numpy_dtype(name)])
    check_device_dtypes(np, "cast", [numpy_dtype("int4")])  # the CPU handles them


@pytest.mark.parametrize("dtype", dtype_params("cast_float8"))
def test_cast_float8_documented_input_dtypes(dtype: str) -> None:
    x = special(dtype)
    want = onnx_reference("Cast", [("x", x)], to=TensorProto.FLOAT8E4M3FN)[0]
    assert_same(run_kernel("cast_float8", CPU, [x], x.shape, "float8_e4m3fn", [1]), want)


# -- quantize_linear -----------------------------------------------------------------------
def _quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, out_dtype: str,
              dev: Any = CPU, **attrs: Any) -> tuple[np.ndarray, np.ndarray]:
    scale, zp = np.asarray(scale), None if zp is None else np.asarray(zp)
    ref_attrs = dict(attrs)
    if zp is None:
        ref_attrs["output_dtype"] = onnx_code(out_dtype)
    if "precision" in ref_attrs:
        ref_attrs["precision"] = onnx_code(ref_attrs["precision"])
    want = onnx_reference("QuantizeLinear", [("x", x), ("s", scale), ("z", zp)],
                          **ref_attrs)[0]
    order = [attrs.get("axis", 1), attrs.get("block_size", 0), attrs.get("saturate", 1),
             attrs.get("precision")]
    got = run_kernel("quantize_linear", dev, [x, scale, zp], x.shape, out_dtype, order)
    return got, want


def test_quantize_rounds_half_to_even() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, 1000.0, -1000.0], np.float32)
    got, want = _quantize(x, np.float32(1.0), np.int8(0), "int8")
    assert got.tolist() == [0, 2, 2, 0, -2, -2, 3, 127, -128]
    assert_same(got, want)


@pytest.mark.parametrize("dtype", dtype_params("quantize_linear"))
def test_quantize_per_tensor_and_per_axis_on_each_device(dev: Any, dtype: str) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 4)) * 100).astype(dtype)
    for zp_type in (np.uint8, np.int8, np.uint16, np.int16):
        got, want = _quantize(x, np.float32(0.7), zp_type(3), np.dtype(zp_type).name, dev)
        assert_same(got, want)
    scale = np.array([0.5, 1.0, 2.0], np.float32)
    got, want = _quantize(x, scale, np.array([1, 2, 3], np.uint8), "uint8", dev, axis=1)
    assert_same(got, want)
    got, want = _quantize(x, np.float32(0.5), None, "uint8", dev)  # no zero point: uint8
    assert_same(got, want)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_blocked_with_a_partial_last_block(dev: Any, axis: int) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 6)) * 20).astype(np.float32)
    blocks = [5, 6]
    blocks[axis] = -(-blocks[axis] // 4)
    scale = (rng.random(blocks) + 0.5).astype(np.float32)
    zp = rng.integers(-5, 5, blocks).astype(np.int8)
    got, want = _quantize(x, scale, zp, "int8", dev, axis=axis, block_size=4)
    assert_same(got, want)


@pytest.mark.parametrize("dtype", ["int4", "uint4", "int2", "uint2"])
def test_quantize_into_low_bit_integers_clamps_to_their_range(dtype: str) -> None:
    x = np.array([-20.0, -3.0, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.0, 20.0], np.float32)
    zp = np.array(1, numpy_dtype(dtype))
    got, want = _quantize(x, np.float32(1.0), zp, dtype)
    assert_same(got, want)
    got, want = _quantize(x, np.float32(0.5), None, dtype)
    assert_same(got, want)


@pytest.mark.parametrize("dtype", FLOAT8_DTYPES + ("float4_e2m1fn",))
@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_into_float8_and_float4(dtype: str, saturate: int) -> None:
    x = SPECIAL[np.isfinite(SPECIAL)]
    if dtype == "float4_e2m1fn":
        zp = np.zeros(1, numpy_dtype(dtype)).reshape(())
        got, want = _quantize(x, np.float32(2.0), zp, dtype)
    else:
        got, want = _quantize(x, np.float32(2.0), None, dtype, saturate=saturate)
    assert_same(got, want)


@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_quantize_divides_in_the_precision_dtype(precision: str) -> None:
    x = np.array([1000.3, 77.77, -5.5, 12.5], np.float32)
    got, want = _quantize(x, np.float32(0.3), np.int16(0), "int16", precision=precision)
    assert_same(got, want)
    half = np.float16(x[0]) / np.float16(0.3)
    expected = np.rint(np.float32(half) if precision == "float16" else x[0] / np.float32(0.3))
    assert got[0] == expected


def test_quantize_rejects_bad_shapes_and_types() -> None:
    x = np.ones((2, 4), np.float32)
    def run(s: Any, z: Any, dt: str, attrs: list[Any]) -> None:
        z = None if z is None else np.asarray(z)
        run_kernel("quantize_linear", CPU, [x, np.asarray(s), z], x.shape, dt, attrs)

    with pytest.raises(ArgumentError, match=r"quantize_linear: per-axis scale must be 1-D of "
                                            r"length 4 \(axis 1 of \[2, 4\]\), got shape \[3\]"):
        run(np.ones(3, np.float32), None, "uint8", [1, 0])
    with pytest.raises(ArgumentError, match=r"quantize_linear: blocked scale must have shape "
                                            r"\[2, 2\] for x of shape \[2, 4\], axis 1 and "
                                            r"block_size 2, got \[2, 3\]"):
        run(np.ones((2, 3), np.float32), None, "uint8", [1, 2])
    with pytest.raises(ArgumentError, match="quantize_linear: zero_point must have the "
                                            "output's dtype uint8, got int8"):
        run(np.float32(1), np.int8(0), "uint8", [1, 0])
    with pytest.raises(ArgumentError, match="quantize_linear: output dtype must be an "
                                            "8/16/4/2-bit integer, float8 or float4 type, got "
                                            "float32"):
        run(np.float32(1), None, "float32", [1, 0])
    with pytest.raises(ArgumentError, match="quantize_linear: axis"):
        run(np.ones(2, np.float32), None, "uint8", [5, 0])


# -- dequantize_linear ---------------------------------------------------------------------
def _dequantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, out_dtype: str,
                dev: Any = CPU, **attrs: Any) -> tuple[np.ndarray, np.ndarray]:
    scale, zp = np.asarray(scale), None if zp is None else np.asarray(zp)
    ref_attrs = dict(attrs)
    if out_dtype != np.asarray(scale).dtype.name:
        ref_attrs["output_dtype"] = onnx_code(out_dtype)
    want = onnx_reference("DequantizeLinear", [("x", x), ("s", scale), ("z", zp)],
                          **ref_attrs)[0]
    order = [attrs.get("axis", 1), attrs.get("block_size", 0)]
    got = run_kernel("dequantize_linear", dev, [x, scale, zp], x.shape, out_dtype, order)
    return got, want


@pytest.mark.parametrize("dtype", dtype_params("dequantize_linear"))
def test_dequantize_per_tensor_per_axis_and_blocked(dev: Any, dtype: str) -> None:
    rng = np.random.default_rng(2)
    info = np.iinfo(dtype)
    x = rng.integers(max(info.min, -1000), min(info.max, 1000), (3, 4)).astype(dtype)
    zp = None if dtype == "int32" else np.array(7, dtype)
    got, want = _dequantize(x, np.float32(0.25), zp, "float32", dev)
    check("dequantize_linear", got, want, "float32")
    scale = np.array([0.5, 2.0, 0.125], np.float32)
    zps = None if dtype == "int32" else np.array([1, 2, 3], dtype)
    got, want = _dequantize(x, scale, zps, "float32", dev, axis=0)
    check("dequantize_linear", got, want, "float32")
    block = (rng.random((3, 2)) + 0.1).astype(np.float32)
    got, want = _dequantize(x, block, None, "float32", dev, axis=1, block_size=3)
    check("dequantize_linear", got, want, "float32")


@pytest.mark.parametrize("dtype", LOW_BIT[:4] + LOW_BIT[5:])
def test_dequantize_low_bit_types(dtype: str) -> None:
    values = [0, 1, 2, 3] if dtype.startswith("u") else [0, 1, -1, -2]
    x = np.array(values * 2, np.float32).astype(numpy_dtype(dtype))
    zp = None if dtype.startswith("float") else np.array(1, numpy_dtype(dtype))
    got, want = _dequantize(x, np.float32(0.5), zp, "float32")
    assert_same(got, want)
    got, want = _dequantize(x, np.float16(0.5), zp, "float16")
    assert_same(got, want)


def test_dequantize_rejects_a_mismatched_zero_point() -> None:
    x = np.ones(4, np.int8)
    with pytest.raises(ArgumentError, match="dequantize_linear: zero_point must have x's "
                                            "dtype int8, got uint8"):
        run_kernel("dequantize_linear", CPU, [x, np.ones((), np.float32),
                                              np.zeros((), np.uint8)], x.shape,
                   "float32")


# -- dynamic_quantize_linear ---------------------------------------------------------------
@pytest.mark.parametrize("values", [[0.0, 2.0, -3.0, -2.5, 1.34, 0.5],
                                    [-1.0, -2.1, -1.3, -2.5, -3.34, -4.0],
                                    [1.0, 2.1, 1.3, 2.5, 3.34, 4.0, 1.5, 2.6, 3.9, 4.0, 3.0,
                                     2.345], [0.0, 0.0], [7.0]])
def test_dynamic_quantize_matches_onnx(dev: Any, values: list[float]) -> None:
    x = np.array(values, np.float32)
    want = onnx_reference("DynamicQuantizeLinear", [("x", x)], n_out=3)
    got = run_multi("dynamic_quantize_linear", dev, [x],
                    [(x.shape, "uint8"), ((), "float32"), ((), "uint8")])
    for g, w in zip(got, want, strict=True):
        assert_same(g, np.asarray(w))


# -- quantized compute: matmul_integer, qlinear_matmul, conv_integer, qlinear_conv ---------
def _ints(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def _requantize(acc: np.ndarray, factor: Any, zp: Any, dtype: str) -> np.ndarray:
    """float64 reference of the qlinear rescale: saturate(rint(acc * factor) + zp)."""
    info = np.iinfo(dtype)
    r = np.rint(acc.astype(np.float64) * factor) + np.asarray(zp, np.float64)
    return np.clip(r, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("dtype", dtype_params("matmul_integer"))
def test_matmul_integer_matches_onnx(dev: Any, dtype: str) -> None:
    rng = np.random.default_rng(3)
    for sa, sb in (((4, 5), (5, 3)), ((2, 4, 5), (5, 3)), ((3, 1, 2, 5), (4, 5, 2)),
                   ((5,), (5, 3)), ((2, 5), (5,))):
        a, b = _ints(rng, sa, dtype), _ints(rng, sb, "uint8")
        azp, bzp = np.array(_ints(rng, (), dtype)), np.array(7, np.uint8)
        want = onnx_reference("MatMulInteger", [("a", a), ("b", b), ("az", azp), ("bz", bzp)])
        got = run_kernel("matmul_integer", dev, [a, b, azp, bzp], want[0].shape, "int32")
        assert_same(got, want[0])
        got = run_kernel("matmul_integer", dev, [a, b, None, None], want[0].shape, "int32")
        assert_same(got, a.astype(np.int32) @ b.astype(np.int32))


def test_matmul_integer_per_row_and_per_column_zero_points(dev: Any) -> None:
    rng = np.random.default_rng(4)
    a, b = _ints(rng, (2, 4, 6), "int8"), _ints(rng, (6, 3), "uint8")
    azp, bzp = _ints(rng, (4,), "int8"), _ints(rng, (3,), "uint8")
    want = (a.astype(np.int64) - azp[:, None]) @ (b.astype(np.int64) - bzp)
    got = run_kernel("matmul_integer", dev, [a, b, azp, bzp], want.shape, "int32")
    assert_same(got, want.astype(np.int32))
    azp_nd = azp.reshape(1, 4, 1)  # the N-d form, [..., M, 1]
    got = run_kernel("matmul_integer", dev, [a, b, azp_nd, bzp.reshape(1, 3)], want.shape,
                     "int32")
    assert_same(got, want.astype(np.int32))


def test_matmul_integer_wraps_in_int32() -> None:
    k = 40000  # 40000 * 255 * 255 > 2**31
    a, b = np.full((1, k), 255, np.uint8), np.full((k, 1), 255, np.uint8)
    got = run_kernel("matmul_integer", CPU, [a, b, None, None], (1, 1), "int32")
    assert got[0, 0] == np.int64(k * 255 * 255).astype(np.int32)


def _qlinear_matmul(dev: Any, a: np.ndarray, sa: Any, za: Any, b: np.ndarray, sb: Any,
                    zb: Any, sy: Any, zy: Any) -> np.ndarray:
    args = [np.asarray(v) for v in (a, sa, za, b, sb, zb, sy, zy)]  # 0-d arrays, not scalars
    shape = np.matmul(np.zeros(a.shape, np.int8), np.zeros(b.shape, np.int8)).shape
    return run_kernel("qlinear_matmul", dev, args, shape, args[7].dtype)


@pytest.mark.parametrize("dtype", dtype_params("qlinear_matmul"))
@pytest.mark.parametrize("scale_dtype", ["float32", "float16"])
def test_qlinear_matmul_matches_onnx(dev: Any, dtype: str, scale_dtype: str) -> None:
    rng = np.random.default_rng(5)
    for sa, sb in (((3, 8), (8, 4)), ((2, 3, 8), (2, 8, 4)), ((3, 8), (2, 8, 4))):
        a, b = _ints(rng, sa, dtype), _ints(rng, sb, dtype)
        scales = [np.array([s], scale_dtype) for s in (0.0066, 0.00705, 0.0507)]
        za, zb, zy = (np.array([v], dtype) for v in rng.integers(-5, 100, 3))
        names = ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"]
        values = [a, scales[0], za, b, scales[1], zb, scales[2], zy]
        got = _qlinear_matmul(dev, *values)
        if scale_dtype == "float32":
            want = onnx_reference("QLinearMatMul", list(zip(names, values, strict=True)))[0]
            assert_same(got, want)
        # onnx.reference rounds a_scale * b_scale / y_scale to float16 for float16 scales;
        # the kernel rescales in float64, as this reference does
        acc = (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb)
        wide = [s.astype(np.float64) for s in scales]
        assert_same(got, _requantize(acc, wide[0] * wide[1] / wide[2], zy, dtype))


def test_qlinear_matmul_per_row_and_per_column_scales(dev: Any) -> None:
    rng = np.random.default_rng(6)
    a, b = _ints(rng, (2, 3, 5), "uint8"), _ints(rng, (2, 5, 4), "int8")
    sa, za = (rng.random((3,)) * 0.01 + 0.001).astype(np.float32), _ints(rng, (3,), "uint8")
    sb, zb = (rng.random((4,)) * 0.01 + 0.001).astype(np.float32), _ints(rng, (4,), "int8")
    sy, zy = np.float32(0.002), np.uint8(128)
    acc = (a.astype(np.int64) - za[:, None]) @ (b.astype(np.int64) - zb)
    factor = sa.astype(np.float64)[:, None] * sb.astype(np.float64) / np.float64(sy)
    want = _requantize(acc, factor, zy, "uint8")
    assert_same(_qlinear_matmul(dev, a, sa, za, b, sb, zb, sy, zy), want)
    nd = [sa.reshape(1, 3, 1), za.reshape(1, 3, 1), sb.reshape(1, 1, 4), zb.reshape(1, 1, 4)]
    assert_same(_qlinear_matmul(dev, a, nd[0], nd[1], b, nd[2], nd[3], sy, zy), want)
    # onnx.reference broadcasts the N-d forms the same way
    names = ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"]
    values = [a, nd[0], nd[1], b, nd[2], nd[3], np.array([sy]), np.array([zy])]
    ref = onnx_reference("QLinearMatMul", list(zip(names, values, strict=True)))[0]
    assert_same(_qlinear_matmul(dev, *values), ref)


def test_qlinear_matmul_rounds_half_to_even_and_saturates() -> None:
    a = np.array([[1], [3], [5], [-1], [-3], [100], [-100]], np.int8)
    b = np.array([[1]], np.int8)
    one, half = np.float32(1.0), np.float32(2.0)  # acc / 2: .5 ties round to even
    got = _qlinear_matmul(CPU, a, one, np.int8(0), b, one, np.int8(0), half, np.int8(100))
    assert got.ravel().tolist() == [100, 102, 102, 100, 98, 127, 50]
    got = _qlinear_matmul(CPU, a, one, np.int8(0), b, one, np.int8(0), np.float32(0.25),
                          np.int8(0))
    assert got.ravel().tolist() == [4, 12, 20, -4, -12, 127, -128]


def test_qlinear_matmul_long_sums_are_exact() -> None:
    k = 40000  # the int32 sum would overflow: the kernel sums in int64
    a, b = np.full((1, k), 255, np.uint8), np.full((k, 1), 255, np.uint8)
    sy = np.float32(2 ** 24)
    got = _qlinear_matmul(CPU, a, np.float32(1), np.uint8(0), b, np.float32(1), np.uint8(0),
                          sy, np.uint8(0))
    assert got[0, 0] == np.rint(k * 255 * 255 / 2 ** 24)


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_qlinear_matmul_float8(dtype: str) -> None:
    rng = np.random.default_rng(7)
    f8 = numpy_dtype(dtype)
    a = rng.standard_normal((3, 6)).astype(np.float32).astype(f8)
    b = rng.standard_normal((6, 2)).astype(np.float32).astype(f8)
    zero, scale = np.zeros((), f8), np.float32(0.5)
    got = _qlinear_matmul(CPU, a, scale, zero, b, scale, zero, np.float32(0.01), zero)
    real = a.astype(np.float64) @ b.astype(np.float64) * 0.25 / np.float64(np.float32(0.01))
    limit = float(ml_dtypes.finfo(f8).max)
    assert_same(got, np.clip(real, -limit, limit).astype(f8))


def _conv_case(rng: np.random.Generator, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
               dtype: str, per_channel: bool) -> list[np.ndarray]:
    x, w = _ints(rng, x_shape, dtype), _ints(rng, w_shape, "uint8")
    xzp = np.array(_ints(rng, (), dtype))
    wzp = _ints(rng, (w_shape[0],), "uint8") if per_channel else np.array(9, np.uint8)
    return [x, w, xzp, wzp]


CONV_CASES = [((1, 2, 5, 6), (3, 2, 3, 3), {}),
              ((2, 4, 7, 7), (4, 2, 2, 3), {"pads": [1, 0, 2, 1], "strides": [2, 1],
                                            "dilations": [1, 2], "group": 2}),
              ((1, 3, 6, 6), (3, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 3}),  # depthwise
              ((2, 2, 9), (4, 2, 3), {"pads": [2, 1], "strides": [2], "dilations": [2]})]


def _conv_reference(op: str, values: list[np.ndarray | None], attrs: dict[str, Any]
                    ) -> np.ndarray:
    """onnx.reference's ``op``; 1-d cases run as 2-d ones of height 1 (its per-channel
    zero points handle 2-d only)."""
    names = "abcdefghi"[:len(values)]
    if values[0] is None or values[0].ndim != 3:
        return onnx_reference(op, list(zip(names, values, strict=True)), **attrs)[0]
    lifted = [v[:, :, None, :] if i in (0, 1 if op == "ConvInteger" else 3) else v
              for i, v in enumerate(values)]
    flat = {"group": attrs.get("group", 1), "strides": [1, *attrs.get("strides", [1])],
            "dilations": [1, *attrs.get("dilations", [1])]}
    pads = attrs.get("pads", [0, 0])
    flat["pads"] = [0, pads[0], 0, pads[1]]
    return onnx_reference(op, list(zip(names, lifted, strict=True)), **flat)[0][:, :, 0, :]


def _conv_attrs(attrs: dict[str, Any], nd: int) -> list[Any]:
    return [tuple(attrs.get("strides", [1] * nd)), tuple(attrs.get("pads", [0] * 2 * nd)),
            tuple(attrs.get("dilations", [1] * nd)), attrs.get("group", 1)]


@pytest.mark.parametrize("dtype", dtype_params("conv_integer"))
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv_integer_matches_onnx(dev: Any, dtype: str, case: int) -> None:
    x_shape, w_shape, attrs = CONV_CASES[case]
    rng = np.random.default_rng(8 + case)
    for per_channel in (False, True):
        values = _conv_case(rng, x_shape, w_shape, dtype, per_channel)
        want = _conv_reference("ConvInteger", list(values), attrs)
        got = run_kernel("conv_integer", dev, values, want.shape, "int32",
                         _conv_attrs(attrs, len(x_shape) - 2))
        assert_same(got, want)


@pytest.mark.parametrize("dtype", dtype_params("qlinear_conv"))
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_qlinear_conv_matches_onnx(dev: Any, dtype: str, case: int) -> None:
    x_shape, w_shape, attrs = CONV_CASES[case]
    rng = np.random.default_rng(20 + case)
    x, w, xzp, wzp = _conv_case(rng, x_shape, w_shape, dtype, True)
    xs, ys = np.array(0.0037, np.float32), np.array(0.05, np.float32)
    ws = (rng.random(w_shape[0]) * 0.01 + 0.001).astype(np.float32)
    bias = rng.integers(-5000, 5000, w_shape[0]).astype(np.int32)
    yzp = np.array(_ints(rng, (), "int8"))
    values = [x, xs, xzp, w, ws, wzp, ys, yzp, bias]
    want = _conv_reference("QLinearConv", list(values), attrs)
    got = run_kernel("qlinear_conv", dev, values, want.shape, "int8",
                     _conv_attrs(attrs, len(x_shape) - 2))
    assert_same(got, want)


def test_quantized_compute_rejects_bad_inputs() -> None:
    a, b = np.ones((2, 3), np.int8), np.ones((3, 4), np.int8)
    one, i0, u0 = np.array(1, np.float32), np.array(0, np.int8), np.array(0, np.uint8)
    with pytest.raises(ArgumentError, match="matmul_integer: a must be one of int8, uint8, "
                                            "got int32"):
        run_kernel("matmul_integer", CPU, [a.astype(np.int32), b, None, None], (2, 4),
                   "int32")
    with pytest.raises(ArgumentError, match=r"matmul_integer: a_zero_point must have one "
                                            r"element, or one per row of a for a of shape "
                                            r"\[2, 3\], got shape \[3\]"):
        run_kernel("matmul_integer", CPU, [a, b, np.zeros(3, np.int8), None], (2, 4), "int32")
    with pytest.raises(ArgumentError, match="matmul_integer: b_zero_point must have dtype "
                                            "int8, got uint8"):
        run_kernel("matmul_integer", CPU, [a, b, None, u0], (2, 4), "int32")
    with pytest.raises(ArgumentError, match="qlinear_matmul: y_zero_point must have the "
                                            "output's dtype int8, got uint8"):
        run_kernel("qlinear_matmul", CPU, [a, one, i0, b, one, i0, one, u0], (2, 4), "int8")
    with pytest.raises(ArgumentError, match=r"qlinear_matmul: y_scale must have one element "
                                            r"or broadcast to the output shape \[2, 4\], got "
                                            r"shape \[3\]"):
        run_kernel("qlinear_matmul", CPU, [a, one, i0, b, one, i0, np.ones(3, np.float32), i0],
                   (2, 4), "int8")
    with pytest.raises(ArgumentError, match="qlinear_matmul: output dtype must be int8, "
                                            "uint8 or a float8 type, got int16"):
        run_kernel("qlinear_matmul", CPU, [a, one, i0, b, one, i0, one, None], (2, 4),
                   "int16")
    x, w = np.ones((1, 2, 4, 4), np.uint8), np.ones((3, 2, 2, 2), np.uint8)
    attrs = [(1, 1), (0, 0, 0, 0), (1, 1), 1]
    with pytest.raises(ArgumentError, match=r"conv_integer: w_zero_point must have one "
                                            r"element or one per output channel \(3\), got "
                                            r"shape \[2\]"):
        run_kernel("conv_integer", CPU, [x, w, None, np.zeros(2, np.uint8)], (1, 3, 3, 3),
                   "int32", attrs)
    with pytest.raises(ArgumentError, match=r"conv_integer: x_zero_point must have one "
                                            r"element \(per tensor\)"):
        run_kernel("conv_integer", CPU, [x, w, np.zeros(2, np.uint8), None], (1, 3, 3, 3),
                   "int32", attrs)
    with pytest.raises(ArgumentError, match="conv_integer: x, w and out must all be 3-d"):
        run_kernel("conv_integer", CPU, [x[None], w[None], None, None], (1, 1, 3, 3, 3),
                   "int32", [(1, 1, 1), (0,) * 6, (1, 1, 1), 1])
    with pytest.raises(ArgumentError, match=r"qlinear_conv: bias must be 1-D of length 3"):
        run_kernel("qlinear_conv", CPU, [x, one, u0, w, one, u0, one, u0,
                                         np.zeros(2, np.int32)], (1, 3, 3, 3), "uint8", attrs)
