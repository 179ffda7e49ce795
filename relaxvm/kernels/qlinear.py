"""Quantized compute with ONNX semantics: integer matmul and convolution, and their
QLinear forms (8-bit integer operands; float8 ones too for qlinear_matmul).

* ``matmul_integer(a, b, a_zero_point, b_zero_point, out)`` and ``conv_integer(x, w,
  x_zero_point, w_zero_point, out, strides, pads, dilations, groups)``: int32 results of
  the zero-point-centered operands (ONNX MatMulInteger, ConvInteger; 1-d and 2-d conv);
* ``qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
  y_zero_point, out)`` and ``qlinear_conv(x, x_scale, ..., y_zero_point, bias, out,
  ...)``: the same exact integer sums, rescaled by ``a_scale * b_scale / y_scale`` in
  float64, rounded half to even, shifted by ``y_zero_point`` and saturated.

The qlinear sums run in int32 where no sum can overflow it (int64 beyond), so they are
exact; the integer ops sum in their int32 result, which wraps (as ONNX allows). Matmul
uses ``xp.matmul`` on the widened arrays, conv the float conv's im2col
(:func:`relaxvm.kernels.conv.conv2d_arrays`). Scales and zero points of the quantized
compute ops are per tensor, per row of ``a`` / column of ``b``, or per output channel.

Low-bit dtype checks and float8 saturation come from :mod:`relaxvm.kernels.quantize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import contiguous_view
from relaxvm.kernels.conv import conv2d_arrays
from relaxvm.kernels.quantize import check_device_dtypes, integer_range, saturate_float8
from relaxvm.kernels.registry import register_template
from relaxvm.objects import FLOAT8_DTYPES

#: The 8-bit integer types the integer matmul/conv kernels read.
_INT8_TYPES = ("int8", "uint8")
#: Largest |(q - zero_point) * (q' - zero_point')| of 8-bit operands: 255 * 255.
_MAX_PRODUCT = 255 * 255


def _array(tensor: Any) -> Any:
    """The array of an optional tensor input (None stays None)."""
    return None if tensor is None else tensor.array


def _check_types(kernel: str, allowed: Sequence[str], **arrays: Any) -> None:
    """ArgumentError naming the first array whose dtype is not in ``allowed``."""
    for name, array in arrays.items():
        if array is not None and array.dtype.name not in allowed:
            raise ArgumentError(f"{kernel}: {name} must be one of {', '.join(allowed)}, got "
                                f"{array.dtype.name}")


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when an array of ``shape`` broadcasts to ``target`` (never beyond it)."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1], strict=False))


def _operand_param(kernel: str, name: str, param: Any, shape: tuple[int, ...],
                   side: str) -> Any:
    """A matmul operand's scale or zero point shaped to broadcast against the operand and
    the product: one element (per tensor), a 1-D vector per row of ``a`` (length M) or per
    column of ``b`` (length N), or the operand's rank with a unit K axis."""
    if param is None:
        return None
    if param.size == 1:
        return param.reshape(())
    nd = len(shape)
    if nd >= 2:
        want = shape[:-1] + (1,) if side == "a" else shape[:-2] + (1, shape[-1])
        length = shape[-2] if side == "a" else shape[-1]
        if param.ndim == 1 and param.shape[0] == length:
            return param.reshape((length, 1) if side == "a" else (length,))
        if param.ndim == nd and _broadcasts_to(tuple(param.shape), want):
            return param
    what = "row of a" if side == "a" else "column of b"
    raise ArgumentError(f"{kernel}: {name} must have one element, or one per {what} "
                        f"for {side} of shape {list(shape)}, got shape {list(param.shape)}")


def _centered(xp: Any, kernel: str, name: str, x: Any, zero_point: Any, wide: Any) -> Any:
    """``x - zero_point`` in the (exact) ``wide`` dtype; ``zero_point`` is already shaped
    to broadcast against ``x`` (None means 0)."""
    v = x.astype(wide)
    if zero_point is not None:
        if zero_point.dtype != x.dtype:
            raise ArgumentError(f"{kernel}: {name} must have dtype {x.dtype.name}, got "
                                f"{zero_point.dtype.name}")
        v -= zero_point.astype(wide)
    return v


def _accumulator(*dtypes: Any, terms: int) -> Any:
    """float64 for float8 operands, else int32 where ``terms`` products cannot overflow
    it and int64 beyond, so every sum is exact."""
    if any(np.dtype(d).name in FLOAT8_DTYPES for d in dtypes):
        return np.float64
    return np.int32 if terms * _MAX_PRODUCT < 2 ** 31 else np.int64


def _store_quantized(xp: Any, kernel: str, q: Any, zero_point: Any, o: Any) -> None:
    """out = saturate(rint(q) + zero_point) for 8-bit integer outputs, saturating float8
    ``q + zero_point`` for float8 ones (``q`` is float64, already divided by the scale)."""
    if zero_point is not None and zero_point.dtype != o.dtype:
        raise ArgumentError(f"{kernel}: y_zero_point must have the output's dtype "
                            f"{o.dtype.name}, got {zero_point.dtype.name}")
    zp = 0.0 if zero_point is None else zero_point.astype(np.float64)
    limits = integer_range(o.dtype)
    if limits is not None and o.dtype.name in _INT8_TYPES:
        r = xp.rint(q) + zp
        xp.clip(r, limits[0], limits[1], out=r)
        xp.copyto(o, r, casting="unsafe")
    elif o.dtype.name in FLOAT8_DTYPES:
        xp.copyto(o, saturate_float8(xp, q + zp, o.dtype), casting="unsafe")
    else:
        raise ArgumentError(f"{kernel}: output dtype must be int8, uint8 or a float8 type, "
                            f"got {o.dtype.name}")


def _output_param(kernel: str, name: str, param: Any, shape: tuple[int, ...]) -> Any:
    """An output scale or zero point: one element, or broadcasting to the output."""
    if param is None:
        return None
    if param.size == 1:
        return param.reshape(())
    if _broadcasts_to(tuple(param.shape), shape):
        return param
    raise ArgumentError(f"{kernel}: {name} must have one element or broadcast to the "
                        f"output shape {list(shape)}, got shape {list(param.shape)}")


@register_template("matmul_integer")
def matmul_integer(xp: Any, a: Any, b: Any, a_zero_point: Any, b_zero_point: Any,
                   out: Any) -> None:
    """out = (a - a_zero_point) @ (b - b_zero_point) in int32 (ONNX MatMulInteger).

    int32 sums wrap on overflow, which ONNX allows; zero points are per tensor, per row
    of ``a`` or per column of ``b`` (None means 0)."""
    av, bv, o = a.array, b.array, out.array
    azp, bzp = _array(a_zero_point), _array(b_zero_point)
    _check_types("matmul_integer", _INT8_TYPES, a=av, b=bv)
    _check_types("matmul_integer", ("int32",), out=o)
    azp = _operand_param("matmul_integer", "a_zero_point", azp, av.shape, "a")
    bzp = _operand_param("matmul_integer", "b_zero_point", bzp, bv.shape, "b")
    xp.matmul(_centered(xp, "matmul_integer", "a_zero_point", av, azp, np.int32),
              _centered(xp, "matmul_integer", "b_zero_point", bv, bzp, np.int32), out=o)


@register_template("qlinear_matmul")
def qlinear_matmul(xp: Any, a: Any, a_scale: Any, a_zero_point: Any, b: Any, b_scale: Any,
                   b_zero_point: Any, y_scale: Any, y_zero_point: Any, out: Any) -> None:
    """out = saturate(rint(acc * a_scale * b_scale / y_scale) + y_zero_point) with the
    exact integer product acc = (a - a_zero_point) @ (b - b_zero_point) (ONNX
    QLinearMatMul); the rescale runs in float64. a's scale and zero point are per tensor
    or per row, b's per tensor or per column; float8 operands accumulate in float64."""
    kernel = "qlinear_matmul"
    av, bv, o = a.array, b.array, out.array
    check_device_dtypes(xp, kernel, [av.dtype, bv.dtype, o.dtype])
    _check_types(kernel, _INT8_TYPES + FLOAT8_DTYPES, a=av, b=bv)
    azp = _operand_param(kernel, "a_zero_point", _array(a_zero_point), av.shape, "a")
    bzp = _operand_param(kernel, "b_zero_point", _array(b_zero_point), bv.shape, "b")
    wide = _accumulator(av.dtype, bv.dtype, terms=av.shape[-1])
    acc = xp.matmul(_centered(xp, kernel, "a_zero_point", av, azp, wide),
                    _centered(xp, kernel, "b_zero_point", bv, bzp, wide))
    shape = tuple(o.shape)
    factor = _operand_param(kernel, "a_scale", a_scale.array, av.shape, "a").astype(
        np.float64) * _operand_param(kernel, "b_scale", b_scale.array, bv.shape, "b").astype(
        np.float64) / _output_param(kernel, "y_scale", y_scale.array, shape).astype(np.float64)
    yz = _output_param(kernel, "y_zero_point", _array(y_zero_point), shape)
    _store_quantized(xp, kernel, acc.astype(np.float64) * factor, yz, o)


def _channel_param(kernel: str, name: str, param: Any, channels: int, trailing: int) -> Any:
    """A per-tensor (one element) or per-output-channel (1-D of ``channels``) conv
    parameter, shaped ``(channels,) + (1,) * trailing`` in the latter case."""
    if param is None:
        return None
    if param.size == 1:
        return param.reshape(())
    if param.ndim == 1 and param.shape[0] == channels:
        return param.reshape((channels,) + (1,) * trailing)
    raise ArgumentError(f"{kernel}: {name} must have one element or one per output "
                        f"channel ({channels}), got shape {list(param.shape)}")


def _scalar_param(kernel: str, name: str, param: Any) -> Any:
    """A per-tensor parameter: exactly one element, as a 0-d array."""
    if param is None:
        return None
    if param.size != 1:
        raise ArgumentError(f"{kernel}: {name} must have one element (per tensor), got "
                            f"shape {list(param.shape)}")
    return param.reshape(())


def _integer_conv(xp: Any, kernel: str, x: Any, x_zero_point: Any, w: Any,
                  w_zero_point: Any, o: Any, strides: Sequence[int] | None,
                  pads: Sequence[int] | None, dilations: Sequence[int] | None,
                  groups: int) -> None:
    """o = conv(x - x_zero_point, w - w_zero_point), exact in o's integer dtype, through
    the float conv's im2col; NCW inputs run as NCHW of height 1. The zero points are
    subtracted first, so the zero padding stands for the real value 0."""
    _check_types(kernel, _INT8_TYPES, x=x, w=w)
    nd = x.ndim - 2
    if nd not in (1, 2) or w.ndim != x.ndim or o.ndim != x.ndim:
        raise ArgumentError(f"{kernel}: x, w and out must all be 3-d (NCW) or 4-d (NCHW), "
                            f"got shapes {list(x.shape)}, {list(w.shape)} and "
                            f"{list(o.shape)}")
    xzp = _scalar_param(kernel, "x_zero_point", x_zero_point)
    wzp = _channel_param(kernel, "w_zero_point", w_zero_point, w.shape[0], nd + 1)
    xc = _centered(xp, kernel, "x_zero_point", x, xzp, o.dtype)
    wc = _centered(xp, kernel, "w_zero_point", w, wzp, o.dtype)
    strides = tuple(strides or (1,) * nd)
    pads = tuple(pads or (0,) * (2 * nd))
    dilations = tuple(dilations or (1,) * nd)
    if nd == 1:
        if len(pads) != 2 or len(strides) != 1 or len(dilations) != 1:
            raise ArgumentError(f"{kernel}: a 1-d convolution takes 2 pads, 1 stride and 1 "
                                f"dilation, got pads={pads}, strides={strides}, "
                                f"dilations={dilations}")
        xc, wc, o = xc[:, :, None, :], wc[:, :, None, :], contiguous_view(
            o, o.shape[:2] + (1,) + o.shape[2:])
        strides, pads, dilations = (1, *strides), (0, pads[0], 0, pads[1]), (1, *dilations)
    conv2d_arrays(xp, xc, wc, None, o, strides, pads, dilations, int(groups), kernel)


@register_template("conv_integer")
def conv_integer(xp: Any, x: Any, w: Any, x_zero_point: Any, w_zero_point: Any, out: Any,
                 strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 dilations: Sequence[int] | None = None, groups: int = 1) -> None:
    """out = conv(x - x_zero_point, w - w_zero_point) in int32 (ONNX ConvInteger, 1-d
    and 2-d); x's zero point is per tensor, w's per tensor or per output channel."""
    _check_types("conv_integer", ("int32",), out=out.array)
    _integer_conv(xp, "conv_integer", x.array, _array(x_zero_point), w.array,
                  _array(w_zero_point), out.array, strides, pads, dilations, groups)


@register_template("qlinear_conv")
def qlinear_conv(xp: Any, x: Any, x_scale: Any, x_zero_point: Any, w: Any, w_scale: Any,
                 w_zero_point: Any, y_scale: Any, y_zero_point: Any, bias: Any, out: Any,
                 strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 dilations: Sequence[int] | None = None, groups: int = 1) -> None:
    """out = saturate(rint((acc + bias) * x_scale * w_scale / y_scale) + y_zero_point)
    with the exact integer conv acc of the centered x and w (ONNX QLinearConv); the
    rescale runs in float64. w's scale and zero point may be per output channel, bias
    (int32, optional) is per output channel."""
    kernel = "qlinear_conv"
    wa, o = w.array, out.array
    acc = xp.empty(o.shape, _accumulator(terms=int(np.prod(wa.shape[1:]))))
    _integer_conv(xp, kernel, x.array, _array(x_zero_point), wa, _array(w_zero_point), acc,
                  strides, pads, dilations, groups)
    real = acc.astype(np.float64)
    channels, trailing = wa.shape[0], o.ndim - 2
    if bias is not None:
        _check_types(kernel, ("int32",), bias=bias.array)
        if bias.array.shape != (channels,):
            raise ArgumentError(f"{kernel}: bias must be 1-D of length {channels}, got "
                                f"shape {list(bias.array.shape)}")
        real += bias.array.reshape((channels,) + (1,) * trailing).astype(np.float64)
    ws = _channel_param(kernel, "w_scale", w_scale.array, channels, trailing)
    factor = _scalar_param(kernel, "x_scale", x_scale.array).astype(np.float64) * \
        ws.astype(np.float64) / _scalar_param(kernel, "y_scale", y_scale.array).astype(
            np.float64)
    yz = _scalar_param(kernel, "y_zero_point", _array(y_zero_point))
    _store_quantized(xp, kernel, real * factor, yz, o)
