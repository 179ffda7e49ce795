"""Quantization kernels with ONNX semantics, and the low-bit conversions they share.

Kernels (the quantized matmul and conv are in :mod:`relaxvm.kernels.qlinear`):

* ``quantize_linear(x, scale, zero_point, out, axis, block_size, saturate, precision)``:
  ONNX QuantizeLinear, ``out = saturate(rint(x / scale) + zero_point)`` into int8/uint8,
  int16/uint16, int4/uint4, int2/uint2 (clamped to the type's range), float8 (RNE,
  ``saturate`` picks clamping or inf/NaN) or float4/float6 (ml_dtypes' rounding);
* ``dequantize_linear(x, scale, zero_point, out, axis, block_size)``:
  ``out = (x - zero_point) * scale``, computed in float32 (float64 for float64 results)
  and rounded once to ``out``'s dtype;
* ``dynamic_quantize_linear(x, outs)``: uint8 quantization with a scale and zero point
  computed from the data's range (ONNX DynamicQuantizeLinear).

QuantizeLinear's and DequantizeLinear's scales and zero points are per tensor (one
element), per axis (1-D along ``axis``) or blocked (``x``'s rank, each element repeated
``block_size`` times along ``axis``). Rounding is half to even (``rint``) as ONNX specifies.

Helpers used by the cast kernels too: :func:`saturate_float8` (clamp finite and infinite
values to the largest finite float8 value before rounding) and :func:`to_float8e8m0`
(ONNX's conversion to the power-of-two E8M0 scale type with its ``round_mode``).

The low-bit dtypes are ml_dtypes types, which CuPy cannot hold: on CUDA these kernels
raise ArgumentError naming the dtype (:func:`check_device_dtypes`), while the usual
int8/uint8/int16/uint16 quantization runs on either device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.registry import register_template
from relaxvm.objects import FLOAT8_DTYPES, LOW_BIT_INT_RANGES, is_ml_dtype, numpy_dtype

#: E8M0 rounding modes (ONNX Cast ``round_mode``).
E8M0_ROUND_MODES = ("up", "down", "nearest")
_E8M0_MAX_BITS, _E8M0_NAN_BITS = 0xFE, 0xFF
#: Dtypes CuPy handles (through ml_dtypes) although they are ml_dtypes types.
_CUDA_ML_DTYPES = frozenset({"bfloat16"})


def check_device_dtypes(xp: Any, kernel: str, dtypes: Sequence[Any]) -> None:
    """ArgumentError naming the dtype when a CuPy kernel is asked to handle a low-bit
    ml_dtypes type (float8, float4, int4, ...), which CuPy has no type for."""
    if getattr(xp, "__name__", "numpy") == "numpy":
        return
    for dtype in dtypes:
        name = np.dtype(dtype).name
        if name not in _CUDA_ML_DTYPES and is_ml_dtype(name):
            raise ArgumentError(f"{kernel}: dtype {name} is not supported on CUDA (CuPy has "
                                f"no {name} type); run this op on the CPU")


def integer_range(dtype: np.dtype) -> tuple[int, int] | None:
    """(min, max) of an integer dtype, the low-bit ones included; None for the others."""
    if dtype.name in LOW_BIT_INT_RANGES:
        return LOW_BIT_INT_RANGES[dtype.name]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return int(info.min), int(info.max)
    return None


def float8_max(dtype: np.dtype) -> float:
    """The largest finite value of an ml_dtypes float type."""
    import ml_dtypes
    return float(ml_dtypes.finfo(dtype).max)


def saturate_float8(xp: Any, values: Any, dtype: np.dtype) -> Any:
    """``values`` with +-inf and out-of-range values clamped to +-max of ``dtype`` (NaN
    stays NaN), so the rounding cast that follows saturates as ONNX's saturate=1 says.

    Values that only round up to beyond the maximum are clamped too, so the result
    never becomes inf or NaN."""
    if is_ml_dtype(values.dtype):  # bfloat16, float8...: float32 holds each value exactly
        values = values.astype(np.float32)
    elif values.dtype.kind != "f":  # ints and bools
        values = values.astype(np.float64)
    limit = float8_max(dtype)
    return xp.clip(values, -limit, limit)


def to_float8e8m0(xp: Any, values: Any, saturate: bool, round_mode: str) -> Any:
    """The E8M0 bit patterns (uint8) of ``values`` by ONNX Cast's rules.

    E8M0 holds only powers of two, 2**(bits - 127) for bits 0..254, and NaN (255). The
    input is read as float32; its exponent field is the result, moved up one when the
    value lies above that power of two and ``round_mode`` says so: ``up`` for any
    nonzero fraction, ``nearest`` from halfway (1.5 * 2**e) up, ``down`` never. NaN maps
    to NaN, inf to the largest value with ``saturate`` (else NaN), and a round-up past
    the largest value stays there with ``saturate`` (else NaN). The sign is ignored
    (negative inputs are unspecified by ONNX). Zero and float32 subnormals (below
    2**-126) become 2**-127, the smallest value, or 2**-126 when they round up to it.
    """
    if round_mode not in E8M0_ROUND_MODES:
        raise ArgumentError(f"cast: round_mode must be one of {', '.join(E8M0_ROUND_MODES)}, "
                            f"got {round_mode!r}")
    bits = xp.ascontiguousarray(values.astype(np.float32)).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.uint16)
    fraction = bits & 0x7FFFFF
    special = exponent == 0xFF
    # Normal numbers lie in [2**e, 2**(e+1)), halfway at fraction 0x400000; zero and
    # subnormals (exponent field 0) in [0, 2**-126), where 2**-127 is fraction 0x400000
    # and the halfway point to 2**-126 is 0x600000.
    normal = exponent != 0
    if round_mode == "up":
        bump = xp.where(normal, fraction != 0, fraction > 0x400000)
    elif round_mode == "nearest":
        bump = xp.where(normal, fraction >= 0x400000, fraction >= 0x600000)
    else:
        bump = xp.zeros(fraction.shape, dtype=bool)
    bump &= ~special
    if saturate:
        bump &= exponent != _E8M0_MAX_BITS
    result = exponent + bump.astype(np.uint16)
    inf = special & (fraction == 0)
    result = xp.where(special, _E8M0_NAN_BITS, result)
    if saturate:
        result = xp.where(inf, _E8M0_MAX_BITS, result)
    return result.astype(np.uint8)


def _expand(xp: Any, kernel: str, name: str, param: Any, shape: tuple[int, ...], axis: int,
            block_size: int) -> Any:
    """A scale or zero point broadcastable against ``x`` of ``shape``: per tensor
    (one element), per axis (1-D of ``shape[axis]``) or blocked (``block_size`` > 0)."""
    if param.size == 1 and (param.ndim <= 1 or block_size <= 0):
        return param.reshape(())
    ndim = len(shape)
    ax = normalize_axis(int(axis), ndim, kernel, "axis")
    if block_size <= 0:
        if param.ndim != 1 or param.shape[0] != shape[ax]:
            raise ArgumentError(f"{kernel}: per-axis {name} must be 1-D of length "
                                f"{shape[ax]} (axis {ax} of {list(shape)}), got "
                                f"shape {list(param.shape)}")
        dims = [1] * ndim
        dims[ax] = shape[ax]
        return param.reshape(dims)
    blocks = -(-shape[ax] // block_size)
    want = list(shape)
    want[ax] = blocks
    if list(param.shape) != want:
        raise ArgumentError(f"{kernel}: blocked {name} must have shape {want} for x of shape "
                            f"{list(shape)}, axis {ax} and block_size {block_size}, got "
                            f"{list(param.shape)}")
    repeated = xp.repeat(param, block_size, axis=ax)
    index = [slice(None)] * ndim
    index[ax] = slice(0, shape[ax])
    return repeated[tuple(index)]


def _work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a quantizing division runs in: the given float type, float32 for E8M0
    scales, float64 for integer ones."""
    if dtype.kind == "f" and dtype.itemsize >= 2 or dtype.name == "bfloat16":
        return dtype
    return np.dtype(np.float64) if dtype.kind in "iu" else np.dtype(np.float32)


@register_template("quantize_linear")
def quantize_linear(xp: Any, x: Any, scale: Any, zero_point: Any, out: Any, axis: int = 1,
                    block_size: int = 0, saturate: int = 1, precision: Any = None) -> None:
    """out = saturate(rint(x / scale) + zero_point) (ONNX QuantizeLinear).

    The division runs in ``precision`` (a dtype name) or else the scale's dtype; integer
    results are clamped to their range, float8 ones clamped to +-max when ``saturate``
    (else out-of-range values become inf/NaN), float4/float6 ones saturate always."""
    o = out.array
    zp = None if zero_point is None else zero_point.array
    check_device_dtypes(xp, "quantize_linear",
                        [x.array.dtype, scale.array.dtype, o.dtype] +
                        ([] if zp is None else [zp.dtype]))
    if zp is not None and zp.dtype != o.dtype:
        raise ArgumentError(f"quantize_linear: zero_point must have the output's dtype "
                            f"{o.dtype.name}, got {zp.dtype.name}")
    shape = tuple(x.array.shape)
    s = _expand(xp, "quantize_linear", "scale", scale.array, shape, axis, block_size)
    work = _work_dtype(numpy_dtype(precision) if precision else s.dtype)
    q = x.array.astype(work) / s.astype(work)
    limits = integer_range(o.dtype)
    if limits is not None:
        r = xp.rint(q).astype(np.float64)
        if zp is not None:
            r += _expand(xp, "quantize_linear", "zero_point", zp, shape, axis,
                         block_size).astype(np.float64)
        xp.clip(r, limits[0], limits[1], out=r)
        xp.copyto(o, xp.nan_to_num(r, copy=False, nan=0.0), casting="unsafe")
    elif o.dtype.name in FLOAT8_DTYPES:
        xp.copyto(o, saturate_float8(xp, q, o.dtype) if saturate else q, casting="unsafe")
    elif is_ml_dtype(o.dtype) and o.dtype.name != "float8_e8m0fnu":  # float4, float6
        if zp is not None:
            q = q + _expand(xp, "quantize_linear", "zero_point", zp, shape, axis,
                            block_size).astype(work)
        xp.copyto(o, q, casting="unsafe")
    else:
        raise ArgumentError(f"quantize_linear: output dtype must be an 8/16/4/2-bit integer, "
                            f"float8 or float4 type, got {o.dtype.name}")


@register_template("dequantize_linear")
def dequantize_linear(xp: Any, x: Any, scale: Any, zero_point: Any, out: Any, axis: int = 1,
                      block_size: int = 0) -> None:
    """out = (x - zero_point) * scale (ONNX DequantizeLinear), rounded once to out."""
    a, o = x.array, out.array
    zp = None if zero_point is None else zero_point.array
    check_device_dtypes(xp, "dequantize_linear",
                        [a.dtype, scale.array.dtype, o.dtype] + ([] if zp is None else
                                                                  [zp.dtype]))
    if zp is not None and zp.dtype != a.dtype:
        raise ArgumentError(f"dequantize_linear: zero_point must have x's dtype "
                            f"{a.dtype.name}, got {zp.dtype.name}")
    shape = tuple(a.shape)
    wide = np.float64 if np.float64 in (o.dtype, scale.array.dtype) else np.float32
    v = a.astype(wide)
    if zp is not None:
        v -= _expand(xp, "dequantize_linear", "zero_point", zp, shape, axis,
                     block_size).astype(wide)
    v *= _expand(xp, "dequantize_linear", "scale", scale.array, shape, axis,
                 block_size).astype(wide)
    xp.copyto(o, v, casting="unsafe")


@register_template("dynamic_quantize_linear")
def dynamic_quantize_linear(xp: Any, x: Any, outs: Any) -> None:
    """outs = (y, y_scale, y_zero_point): uint8 quantization of float32 ``x`` over the
    range [min(x, 0), max(x, 0)] (ONNX DynamicQuantizeLinear).

    scale = range / 255 (1 / 255 when the range is empty, all-zero x), zero point =
    rint(clip(-min / scale, 0, 255)), y = clip(rint(x / scale) + zero point, 0, 255);
    everything in float32, rounding half to even."""
    y, y_scale, y_zero = outs
    a = x.array.astype(np.float32, copy=False)
    f32 = np.float32
    low = f32(min(float(a.min()), 0.0)) if a.size else f32(0)
    high = f32(max(float(a.max()), 0.0)) if a.size else f32(0)
    span = f32(1.0) if high == low else f32(high - low)
    scale = f32(span / f32(255))
    zero = f32(np.rint(np.clip(f32(0) - f32(low / scale), 0, 255)))
    q = xp.rint(a / scale)
    q += zero
    xp.clip(q, 0, 255, out=q)
    xp.copyto(y.array, q, casting="unsafe")
    y_scale.array[...] = scale
    y_zero.array[...] = np.uint8(zero)
