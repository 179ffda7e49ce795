"""Transposed convolution (ONNX ConvTranspose), N-d (N, C, *spatial), NumPy and CuPy.

The transpose of :mod:`relaxvm.kernels.conv`'s im2col + matmul: one batched
``xp.matmul`` per call multiplies every input pixel by the transposed filters of its
group, giving a column per (output channel, kernel tap, input pixel); then "col2im"
scatters the columns back: for each of the prod(kernel_shape) taps, the slab of columns
for that tap is added into a strided window of the full output (a view stepping by the
stride, offset by tap * dilation). Each add is one elementwise ufunc over an input-sized
view, so the only Python loop is over kernel taps. The full output is then cropped by
``pads`` (negative pads, which an ``output_shape`` larger than the natural one implies,
leave zero rows) and grown by ``output_padding`` at the end, and the bias is added.
float16 and bfloat16 work in float32 on every device and round once into ``out``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import is_low_precision
from relaxvm.kernels.registry import register_template


def conv_transpose_output_size(size: int, kernel: int, stride: int, pad_begin: int,
                               pad_end: int, dilation: int, output_padding: int) -> int:
    """Output length of one spatial axis of a transposed convolution (ONNX formula)."""
    return stride * (size - 1) + output_padding + (kernel - 1) * dilation + 1 - pad_begin \
        - pad_end


def _check(x: Any, w: Any, o: Any, strides: Sequence[int], pads: Sequence[int],
           dilations: Sequence[int], groups: int, output_padding: Sequence[int]) -> None:
    """Validate ranks, attribute lengths, channel counts and the shape of ``out``."""
    nd = x.ndim - 2
    if nd < 1 or w.ndim != x.ndim or o.ndim != x.ndim:
        raise ArgumentError(f"conv_transpose: x, w and out must have the same rank of at "
                            f"least 3 (N, C, *spatial), got shapes {list(x.shape)}, "
                            f"{list(w.shape)} and {list(o.shape)}")
    if len(strides) != nd or len(pads) != 2 * nd or len(dilations) != nd or \
            len(output_padding) != nd:
        raise ArgumentError(f"conv_transpose: expected {nd} strides, {2 * nd} pads, {nd} "
                            f"dilations and {nd} output_padding for {nd} spatial axes, got "
                            f"strides={tuple(strides)}, pads={tuple(pads)}, "
                            f"dilations={tuple(dilations)}, "
                            f"output_padding={tuple(output_padding)}")
    if min(strides) < 1 or min(dilations) < 1:
        raise ArgumentError(f"conv_transpose: strides and dilations must be positive, got "
                            f"strides={tuple(strides)}, dilations={tuple(dilations)}")
    if groups < 1 or x.shape[1] != w.shape[0] or w.shape[0] % groups:
        raise ArgumentError(f"conv_transpose: x has {x.shape[1]} channels and w has shape "
                            f"{list(w.shape)}, which do not fit groups={groups} (w must be "
                            f"(C, M / groups, *kernel_shape))")
    expect = [x.shape[0], w.shape[1] * groups] + [
        conv_transpose_output_size(x.shape[2 + i], w.shape[2 + i], strides[i], pads[i],
                                   pads[nd + i], dilations[i], output_padding[i])
        for i in range(nd)]
    if list(o.shape) != expect:
        raise ArgumentError(f"conv_transpose: out must have shape {expect}, got "
                            f"{list(o.shape)}")


def _columns(xp: Any, x: Any, w: Any, groups: int) -> Any:
    """(N, M, *kernel, *spatial): every input pixel times every transposed filter tap."""
    n, c = x.shape[:2]
    cg, mg, kernel, spatial = c // groups, w.shape[1], w.shape[2:], x.shape[2:]
    taps = int(np.prod(kernel))
    filters = w.reshape(groups, cg, mg * taps).transpose(0, 2, 1)
    cols = xp.matmul(filters, x.reshape(n, groups, cg, -1))
    return cols.reshape((n, mg * groups) + tuple(kernel) + tuple(spatial))


def conv_transpose_arrays(xp: Any, x: Any, w: Any, b: Any, o: Any, strides: Sequence[int],
                          pads: Sequence[int], dilations: Sequence[int], groups: int,
                          output_padding: Sequence[int]) -> None:
    """The conv_transpose kernel on native arrays (``b`` may be None), writing ``o``."""
    _check(x, w, o, strides, pads, dilations, groups, output_padding)
    nd = x.ndim - 2
    if is_low_precision(o.dtype) or o.dtype != x.dtype or w.dtype != x.dtype:
        wide = xp.empty(o.shape, np.float32 if is_low_precision(o.dtype) else o.dtype)
        conv_transpose_arrays(xp, x.astype(wide.dtype), w.astype(wide.dtype),
                              None if b is None else b.astype(wide.dtype), wide, strides,
                              pads, dilations, groups, output_padding)
        xp.copyto(o, wide, casting="unsafe")
        return
    cols = _columns(xp, x, w, groups)
    kernel, spatial = w.shape[2:], x.shape[2:]
    full = [(spatial[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
            for i in range(nd)]
    # Buffer coordinates cover the full output and the cropped window, whichever reaches
    # further; output position p sits at full coordinate p + pads[i].
    low = [min(0, pads[i]) for i in range(nd)]
    high = [max(full[i], pads[i] + o.shape[2 + i]) for i in range(nd)]
    direct = all(lo == 0 and p == 0 and hi == size for lo, p, hi, size
                 in zip(low, pads, high, o.shape[2:], strict=False))
    buf = o if direct else xp.empty(o.shape[:2] + tuple(
        hi - lo for lo, hi in zip(low, high, strict=False)), o.dtype)
    buf.fill(0)
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(t * d - lo, t * d - lo + (s - 1) * st + 1, st)
                       for t, d, lo, s, st in zip(tap, dilations, low, spatial, strides,
                                                  strict=False))
        view = buf[(slice(None), slice(None)) + window]
        xp.add(view, cols[(slice(None), slice(None)) + tap], out=view)
    if not direct:
        crop = tuple(slice(p - lo, p - lo + size) for p, lo, size
                     in zip(pads, low, o.shape[2:], strict=False))
        xp.copyto(o, buf[(slice(None), slice(None)) + crop])
    if b is not None:
        xp.add(o, b.reshape((1, -1) + (1,) * nd), out=o)


@register_template("conv_transpose")
def conv_transpose(xp: Any, x: Any, w: Any, b: Any, out: Any, strides: Sequence[int] = (1, 1),
                   pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1),
                   groups: int = 1, output_padding: Sequence[int] = (0, 0)) -> None:
    """Transposed convolution over any number of spatial axes; w is (C, M / groups,
    *kernel_shape), pads are ONNX order (all begins, then all ends, negative to grow),
    output_padding extends the end of each axis; b may be None. The defaults fit 2-d."""
    conv_transpose_arrays(xp, x.array, w.array, None if b is None else b.array, out.array,
                          strides, pads, dilations, groups, output_padding)
