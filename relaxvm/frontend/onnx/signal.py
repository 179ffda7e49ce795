"""Converters for ONNX signal and small linear-algebra ops: DFT (opset 17 axis attribute,
opset 20 axis input), STFT, MelWeightMatrix, Det, BitCast and Col2Im.

Lengths and axes fed as tensors (``dft_length``, DFT-20's ``axis``, ``frame_step``,
``frame_length``, ``num_mel_bins``, ``image_shape``, ``block_shape``) are read while
compiling when constant or shape-derived, else at run time into symbols
(:meth:`Context.dims_or_runtime`); MelWeightMatrix's sample rate and edge frequencies
stay tensors that the kernel reads. Window functions (HannWindow...) come from ONNX
function expansion.
"""

from __future__ import annotations

from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.dtypes import dtype_of
from relaxvm.frontend.onnx.registry import converter
from relaxvm.kernels.signal import DTYPE_BITS, dtype_bits
from relaxvm.objects import numpy_dtype


def _scalar_dim(ctx: Context, node: OnnxNode, i: int, what: str) -> Dim:
    """Input ``i`` (a one-element integer tensor) as a dim, known now or at run time."""
    dims = ctx.dims_or_runtime(node.require(i, what), what)
    if len(dims) != 1:
        raise node.fail(f"{what} must be a scalar, got {len(dims)} values")
    return dims[0]


def _optional_ints(node: OnnxNode, name: str) -> tuple[int, ...] | None:
    value = node.attr(name, None)
    return None if value is None else tuple(int(v) for v in value)


@converter("DFT")
def _dft(ctx: Context, node: OnnxNode) -> Value:
    """DFT: opset < 20 takes ``axis`` as an attribute (default 1), opset 20 as input 2
    (default -2); ``dft_length`` is input 1 in both."""
    x = node.require(0)
    if node.opset >= 20:
        axis: Dim = -2 if node.input(2) is None else _scalar_dim(ctx, node, 2, "axis")
    else:
        axis = int(node.attr("axis", 1))
    length = None if node.input(1) is None else _scalar_dim(ctx, node, 1, "dft_length")
    inverse, onesided = int(node.attr("inverse", 0)), int(node.attr("onesided", 0))
    if inverse not in (0, 1) or onesided not in (0, 1):
        raise node.fail(f"inverse and onesided must be 0 or 1, got {inverse} and {onesided}")
    return ctx.emit("dft", [x], {"axis": axis, "inverse": inverse, "onesided": onesided,
                                 "dft_length": length})


@converter("STFT")
def _stft(ctx: Context, node: OnnxNode) -> Value:
    """STFT: frame_length is input 3, else the window's length, else the signal's."""
    signal, window = node.require(0, "signal"), node.input(2)
    step = _scalar_dim(ctx, node, 1, "frame_step")
    if node.input(3) is not None:
        length = _scalar_dim(ctx, node, 3, "frame_length")
        if window is not None and isinstance(length, int) and \
                isinstance(window.shape[0], int) and window.shape[0] != length:
            raise node.fail(f"the window has {window.shape[0]} samples but frame_length is "
                            f"{length}")
    elif window is not None:
        length = window.shape[0]
    else:
        length = signal.shape[1]
    onesided = int(node.attr("onesided", 1))
    if onesided not in (0, 1):
        raise node.fail(f"onesided must be 0 or 1, got {onesided}")
    return ctx.emit("stft", [signal, window], {"frame_step": step, "frame_length": length,
                                               "onesided": onesided})


@converter("MelWeightMatrix")
def _mel_weight_matrix(ctx: Context, node: OnnxNode) -> Value:
    n_mel = _scalar_dim(ctx, node, 0, "num_mel_bins")
    length = _scalar_dim(ctx, node, 1, "dft_length")
    dtype = dtype_of(int(node.attr("output_datatype", 1)), f"MelWeightMatrix node {node.name}")
    scalars = [node.require(i, what) for i, what in
               ((2, "sample_rate"), (3, "lower_edge_hertz"), (4, "upper_edge_hertz"))]
    return ctx.emit("mel_weight_matrix", scalars,
                    {"num_mel_bins": n_mel, "dft_length": length, "dtype": dtype})


@converter("Det")
def _det(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("det", [node.require(0)])


@converter("BitCast")
def _bitcast(ctx: Context, node: OnnxNode) -> Value:
    """BitCast: a byte view, so both dtypes must be as wide, and not sub-byte (ml_dtypes
    holds those one per byte, so a view would not reinterpret their bits)."""
    x = node.require(0)
    to = dtype_of(int(node.attr("to")), f"BitCast node {node.name}")
    src, dst = numpy_dtype(x.dtype), numpy_dtype(to)
    if dtype_bits(src) != dtype_bits(dst):
        raise node.fail(f"BitCast needs equal bit widths, got {x.dtype} ({dtype_bits(src)} "
                        f"bits) to {to} ({dtype_bits(dst)} bits)")
    if src != dst and (src.name in DTYPE_BITS or dst.name in DTYPE_BITS):
        raise node.unsupported(f"bitcast between sub-byte types ({x.dtype} to {to}) is not "
                               f"supported: they are stored one element per byte")
    return ctx.emit("bitcast", [x], {"dtype": to})


@converter("Col2Im")
def _col2im(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    image = ctx.dims_or_runtime(node.require(1, "image_shape"), "image_shape")
    block = ctx.dims_or_runtime(node.require(2, "block_shape"), "block_shape")
    attrs: dict[str, Any] = {"image_shape": tuple(image), "block_shape": tuple(block)}
    for name in ("dilations", "pads", "strides"):
        attrs[name] = _optional_ints(node, name)
    return ctx.emit("col2im", [x], attrs)
