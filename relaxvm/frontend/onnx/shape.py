"""Converters for ONNX shape and layout ops: Shape, Size, Reshape, Flatten, Squeeze,
Unsqueeze, Transpose, Concat, Split, Expand, Tile, ConstantOfShape, Constant, Range,
Trilu, EyeLike, DepthToSpace and SpaceToDepth.

Target shapes are resolved while compiling: from constants, or from expressions of
the symbolic input sizes (``Context.dims``). A shape, axes or count that is tensor
*data* the program only has at run time becomes symbols bound by ``bind_dims``
(``Context.runtime_dims``); the tensor itself must have a static shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, floordiv, prod
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.dtypes import dtype_of
from relaxvm.frontend.onnx.registry import converter


def _axis(node: OnnxNode, axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise node.fail(f"axis {axis} is out of range for rank {ndim}")
    return axis + ndim if axis < 0 else axis


def count(node: OnnxNode, value: Value, what: str) -> int:
    """The number of elements of a 1-D (or 0-d) tensor whose shape is static."""
    if not value.is_static or value.ndim > 1:
        raise node.unsupported(f"{what} is read at run time, so it must be a 1-D tensor of "
                               f"static length, got {value.type_text()}")
    return int(np.prod(value.static_shape))


def reshape(ctx: Context, x: Value, shape: Sequence[Dim]) -> Value:
    """``x`` reshaped (a no-op when the shape is unchanged)."""
    shape = tuple(shape)
    if shape == tuple(x.shape):
        return x
    return ctx.emit("reshape", [x], {"shape": shape})


@converter("Shape")
def _shape(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    n = x.ndim
    start, end = int(node.attr("start", 0)), int(node.attr("end", n))
    dims = list(x.shape)[slice(max(start + n if start < 0 else start, 0),
                               end + n if end < 0 else end)]
    return ctx.values_tensor(dims)


@converter("Size")
def _size(ctx: Context, node: OnnxNode) -> Value:
    return ctx.values_tensor([prod(node.require(0).shape)], ())


@converter("Reshape")
def _reshape(ctx: Context, node: OnnxNode) -> Value:
    x, given = node.require(0), node.require(1, "shape")
    allow_zero = int(node.attr("allowzero", 0))
    if not ctx.known(given):
        n = count(node, given, "the target shape")
        return reshape(ctx, x, ctx.runtime_dims("reshape", [x, given], n, (allow_zero,)))
    target = ctx.dims(given, "the target shape")
    dims: list[Dim] = []
    infer = None
    for i, d in enumerate(target):
        if d == 0 and not allow_zero:
            if i >= x.ndim:
                raise node.fail(f"shape entry {i} is 0 (copy), but the input has rank {x.ndim}")
            d = x.shape[i]
        elif d == -1:
            if infer is not None:
                raise node.fail(f"shape {target} has more than one -1")
            infer = i
        dims.append(d)
    if infer is not None:
        known = prod(d for i, d in enumerate(dims) if i != infer)
        dims[infer] = floordiv(prod(x.shape), known)
    return reshape(ctx, x, dims)


@converter("Flatten")
def _flatten(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    axis = int(node.attr("axis", 1))
    axis = _axis(node, axis + x.ndim if axis < 0 else axis, x.ndim + 1)
    return reshape(ctx, x, (prod(x.shape[:axis]), prod(x.shape[axis:])))


def _runtime_axes(ctx: Context, node: OnnxNode) -> Value | None:
    """Squeeze/Unsqueeze's axes input when it is only known at run time, else None."""
    given = node.input(1) if node.opset >= 13 else None
    return None if given is None or ctx.known(given) else given


def _axes_of(ctx: Context, node: OnnxNode) -> list[int] | None:
    if node.opset >= 13:
        given = node.input(1)
        return None if given is None else ctx.ints(given, "axes")
    axes = node.attr("axes", None)
    return None if axes is None else [int(a) for a in axes]


@converter("Squeeze")
def _squeeze(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    runtime = _runtime_axes(ctx, node)
    if runtime is not None:
        rank = x.ndim - count(node, runtime, "axes")
        return reshape(ctx, x, ctx.runtime_dims("squeeze", [x, runtime], rank))
    axes = _axes_of(ctx, node)
    if axes is None:
        if not x.is_static:
            raise node.unsupported(f"Squeeze without axes needs a static shape, got "
                                   f"{x.type_text()}")
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    drop = {_axis(node, a, x.ndim) for a in axes}
    for a in drop:
        if isinstance(x.shape[a], int) and x.shape[a] != 1:
            raise node.fail(f"cannot squeeze axis {a} of {x.type_text()}: it is not 1")
    return reshape(ctx, x, [d for i, d in enumerate(x.shape) if i not in drop])


@converter("Unsqueeze")
def _unsqueeze(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    runtime = _runtime_axes(ctx, node)
    if runtime is not None:
        rank = x.ndim + count(node, runtime, "axes")
        return reshape(ctx, x, ctx.runtime_dims("unsqueeze", [x, runtime], rank))
    axes = _axes_of(ctx, node) or []
    rank = x.ndim + len(axes)
    inserted = sorted(_axis(node, a, rank) for a in axes)
    dims = list(x.shape)
    for a in inserted:
        dims.insert(a, 1)
    return reshape(ctx, x, dims)


@converter("Transpose")
def _transpose(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    perm = node.attr("perm", None)
    perm = tuple(reversed(range(x.ndim))) if perm is None else tuple(int(p) for p in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return ctx.emit("transpose", [x], {"perm": perm})


@converter("Concat")
def _concat(ctx: Context, node: OnnxNode) -> Value:
    xs = [v for v in node.inputs if v is not None]
    if len(xs) == 1:
        return xs[0]
    return ctx.emit("concat", xs, {"axis": int(node.attr("axis"))})


@converter("Split")
def _split(ctx: Context, node: OnnxNode) -> list[Value]:
    x = node.require(0)
    axis = _axis(node, int(node.attr("axis", 0)), x.ndim)
    sizes: list[Dim] | None = None
    if node.opset >= 13 and node.input(1) is not None:
        sizes = ctx.dims_or_runtime(node.input(1), "split")
    elif node.opset < 13 and node.attr("split", None) is not None:
        sizes = [int(s) for s in node.attr("split")]
    if sizes is None:
        sizes = _equal_parts(node, x.shape[axis], int(node.attr("num_outputs",
                                                                len(node.outputs))))
    if len(sizes) != len(node.outputs):
        raise node.fail(f"split has {len(sizes)} parts but the node has {len(node.outputs)} "
                        f"outputs")
    return ctx.emit_multi("split", [x], {"axis": axis, "sizes": tuple(sizes)})


def _equal_parts(node: OnnxNode, dim: Dim, n: int) -> list[Dim]:
    if isinstance(dim, int):
        size = -(-dim // n)
        return [min(size, dim - i * size) for i in range(n)]
    return [floordiv(dim, n)] * n


@converter("Expand")
def _expand(ctx: Context, node: OnnxNode) -> Value:
    x, given = node.require(0), node.require(1, "shape")
    if not ctx.known(given):
        rank = max(x.ndim, count(node, given, "the target shape"))
        return ctx.emit("expand", [x], {"shape": tuple(ctx.runtime_dims("expand", [x, given],
                                                                        rank))})
    shape = ctx.dims(given, "the target shape")
    return ctx.emit("expand", [x], {"shape": tuple(shape)})


@converter("Tile")
def _tile(ctx: Context, node: OnnxNode) -> Value:
    x, repeats = node.require(0), ctx.dims_or_runtime(node.require(1, "repeats"), "repeats")
    return ctx.emit("tile", [x], {"repeats": tuple(repeats)})


@converter("ConstantOfShape")
def _constant_of_shape(ctx: Context, node: OnnxNode) -> Value:
    shape = ctx.dims_or_runtime(node.require(0, "shape"), "the shape")
    value = node.attr("value", None)
    fill = np.zeros((), np.float32) if value is None else np.asarray(value).reshape(())
    return ctx.emit("expand", [ctx.const(fill)], {"shape": tuple(shape)})


@converter("Constant")
def _constant(ctx: Context, node: OnnxNode) -> Value:
    for key, dtype in (("value", None), ("value_float", np.float32),
                       ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in node.attrs:
            return ctx.const(np.asarray(node.attrs[key], dtype=dtype))
    raise node.unsupported(f"Constant with attribute(s) {sorted(node.attrs)} is not supported "
                           f"(value, value_float(s) and value_int(s) are)")


@converter("Range")
def _range(ctx: Context, node: OnnxNode) -> Value:
    start, limit, delta = (node.require(i) for i in range(3))
    if not all(ctx.known(v) for v in (start, limit, delta)):
        for v in (start, limit, delta):
            if count(node, v, "Range's start, limit and delta") != 1:
                raise node.fail(f"start, limit and delta must be scalars, got {v.type_text()}")
        length = ctx.runtime_dims("range", [start, limit, delta], 1)[0]
        return ctx.emit("range", [start, limit, delta], {"length": length,
                                                          "dtype": start.dtype})
    if start.is_constant and limit.is_constant and delta.is_constant:
        first, last, step = (ctx.scalar(v, "Range input") for v in (start, limit, delta))
        return ctx.const(np.arange(first, last, step).astype(start.dtype))
    s, e, d = (ctx.dims(v, name)[0] for v, name in ((start, "start"), (limit, "limit"),
                                                    (delta, "delta")))
    if not isinstance(d, int) or d == 0:
        raise node.unsupported("Range needs a constant, non-zero delta")
    length = floordiv(e - s + (d - 1), d) if d > 0 else floordiv(s - e + (-d - 1), -d)
    if isinstance(length, int):
        length = max(length, 0)
    return ctx.emit("range", [start, limit, delta], {"length": length, "dtype": start.dtype})


@converter("Trilu")
def _trilu(ctx: Context, node: OnnxNode) -> Value:
    k = node.input(1)
    attrs = {"upper": int(node.attr("upper", 1)),
             "k": 0 if k is None else ctx.dims_or_runtime(k, "k")[0]}
    return ctx.emit("trilu", [node.require(0)], attrs)


@converter("EyeLike")
def _eye_like(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    if not x.is_static or x.ndim != 2:
        raise node.unsupported(f"EyeLike needs a static 2-d input, got {x.type_text()}")
    dtype = dtype_of(node.attr("dtype"), node.name) if "dtype" in node.attrs else x.dtype
    rows, cols = x.static_shape
    return ctx.const(np.eye(rows, cols, int(node.attr("k", 0)), dtype=dtype))


@converter("DepthToSpace")
def _depth_to_space(ctx: Context, node: OnnxNode) -> Value:
    x, b = node.require(0), int(node.attr("blocksize"))
    n, c, h, w = x.shape
    if node.attr("mode", "DCR") == "DCR":
        y = reshape(ctx, x, (n, b, b, floordiv(c, b * b), h, w))
        y = ctx.emit("transpose", [y], {"perm": (0, 3, 4, 1, 5, 2)})
    else:
        y = reshape(ctx, x, (n, floordiv(c, b * b), b, b, h, w))
        y = ctx.emit("transpose", [y], {"perm": (0, 1, 4, 2, 5, 3)})
    return reshape(ctx, y, (n, floordiv(c, b * b), h * b, w * b))


@converter("SpaceToDepth")
def _space_to_depth(ctx: Context, node: OnnxNode) -> Value:
    x, b = node.require(0), int(node.attr("blocksize"))
    n, c, h, w = x.shape
    y = reshape(ctx, x, (n, c, floordiv(h, b), b, floordiv(w, b), b))
    perm = (0, 3, 5, 1, 2, 4) if node.attr("mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
    y = ctx.emit("transpose", [y], {"perm": perm})
    return reshape(ctx, y, (n, c * b * b, floordiv(h, b), floordiv(w, b)))
