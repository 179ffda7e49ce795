"""Inference for data-movement, indexing and reduction ops, and the compiler's own
``shape_values`` and ``to_device`` ops.

Ops whose output shape is not a function of input shapes (``reshape``, ``expand``,
``split``, ``range``, ``resize_nearest``, ``resize``) carry it in a compile-time attribute
that the frontend resolved (``shape``, ``sizes``, ``length``, ``out_shape``);
``resize_shape`` computes Resize's output shape from run-time scales or sizes. When a
slice's bounds or a reduction's axes are only known at run time, a ``bind_dims`` node
binds them and the output dims to fresh symbols, and the node carries its shape in
``out_shape``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.common import broadcast, norm_axes, norm_axis
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.compiler.symbolic import Dim, Expr, as_dim, dim_min, floordiv, prod
from relaxvm.objects import dtype_name

#: Slice bounds at or past this are "to the end" (exporters write INT64_MAX or INT32_MAX).
BIG = 2 ** 31 - 1


def _x(op: str, inputs: Sequence[Value | None]) -> Value:
    if not inputs or inputs[0] is None:
        raise fail(op, "expects an input tensor")
    return inputs[0]


@register_op("reshape")
def _reshape(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("reshape", inputs)
    shape = tuple(as_dim(d) for d in attrs["shape"])
    total, want = prod(x.shape), prod(shape)
    if isinstance(total, int) and isinstance(want, int) and total != want:
        raise fail("reshape", f"cannot reshape {x.type_text()} ({total} elements) to "
                              f"{[str(d) for d in shape]} ({want} elements)")
    return [(shape, x.dtype)]


@register_op("expand")
def _expand(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("expand", inputs)
    return [(broadcast("expand", x.shape, tuple(attrs["shape"])), x.dtype)]


@register_op("transpose")
def _transpose(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("transpose", inputs)
    perm = attrs.get("perm")
    perm = list(reversed(range(x.ndim))) if perm is None else norm_axes("transpose", perm,
                                                                          x.ndim)
    if sorted(perm) != list(range(x.ndim)):
        raise fail("transpose", f"perm {perm} is not a permutation of {x.ndim} axes")
    return [(tuple(x.shape[p] for p in perm), x.dtype)]


@register_op("concat", variadic=True)
def _concat(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    xs = [v for v in inputs if v is not None]
    if not xs:
        raise fail("concat", "expects at least one input")
    axis = norm_axis("concat", attrs.get("axis", 0), xs[0].ndim)
    total: Dim = 0
    for v in xs:
        if v.ndim != xs[0].ndim:
            raise fail("concat", f"inputs differ in rank: {xs[0].type_text()} and "
                                 f"{v.type_text()}")
        total = total + v.shape[axis]
    shape = list(xs[0].shape)
    shape[axis] = total
    return [(tuple(shape), xs[0].dtype)]


@register_op("split")
def _split(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("split", inputs)
    axis = norm_axis("split", attrs.get("axis", 0), x.ndim)
    out = []
    for size in attrs["sizes"]:
        shape = list(x.shape)
        shape[axis] = as_dim(size)
        out.append((tuple(shape), x.dtype))
    return out


def slice_length(dim: Dim, start: Dim, end: Dim, step: int) -> Dim:
    """Elements ONNX Slice keeps on one axis; symbolic bounds are assumed in range."""
    if isinstance(dim, int) and isinstance(start, int) and isinstance(end, int):
        return len(range(*slice(*_clamp(dim, start, end, step)).indices(dim)))
    # A symbolic dim is at least 1; int bounds are clamped against it with min atoms,
    # symbolic bounds are assumed to be in range.
    if isinstance(start, int):
        start = dim + start if start < 0 else (dim_min(start, dim) if start > 1 else start)
    if isinstance(end, int):
        if end >= BIG:
            end = dim
        elif end <= -BIG:
            end = -1
        elif end < 0:
            end = dim + end
        elif step > 0:
            end = dim_min(end, dim)
    if step > 0:
        return floordiv(end - start + (step - 1), step)
    return floordiv(start - end + (-step - 1), -step)


def _clamp(dim: int, start: int, end: int, step: int) -> tuple[int, int | None, int]:
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim), step
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return start, (None if end < 0 else end), step


@register_op("slice")
def _slice(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("slice", inputs)
    if attrs.get("out_shape") is not None:  # bounds read at run time (bind_dims)
        return [(tuple(as_dim(d) for d in attrs["out_shape"]), x.dtype)]
    starts, ends = list(attrs["starts"]), list(attrs["ends"])
    axes = list(attrs.get("axes") or range(len(starts)))
    steps = list(attrs.get("steps") or [1] * len(starts))
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise fail("slice", "starts, ends, axes and steps must have equal lengths")
    shape = list(x.shape)
    for s, e, a, st in zip(starts, ends, norm_axes("slice", axes, x.ndim), steps):
        if int(st) == 0:
            raise fail("slice", f"steps must be non-zero, got 0 for axis {a}")
        shape[a] = slice_length(shape[a], as_dim(s), as_dim(e), int(st))
    return [(tuple(shape), x.dtype)]


@register_op("take")
def _take(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, idx = inputs[0], inputs[1]
    if x is None or idx is None:
        raise fail("take", "expects x and indices")
    axis = norm_axis("take", attrs.get("axis", 0), x.ndim)
    return [(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)]


@register_op("gather_elements")
def _gather_elements(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, idx = inputs[0], inputs[1]
    if x is None or idx is None:
        raise fail("gather_elements", "expects x and indices")
    return [(idx.shape, x.dtype)]


@register_op("pad")
def _pad(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("pad", inputs)
    pads = [as_dim(p) for p in attrs["pads"]]
    if len(pads) != 2 * x.ndim:
        raise fail("pad", f"pads must have {2 * x.ndim} entries, got {len(pads)}")
    return [(tuple(d + pads[i] + pads[i + x.ndim] for i, d in enumerate(x.shape)), x.dtype)]


@register_op("tile")
def _tile(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("tile", inputs)
    reps = [as_dim(r) for r in attrs["repeats"]]
    if len(reps) != x.ndim:
        raise fail("tile", f"repeats must have {x.ndim} entries, got {len(reps)}")
    return [(tuple(d * r for d, r in zip(x.shape, reps)), x.dtype)]


def _given_shape(op: str, attr: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _x(op, inputs)
        return [(tuple(as_dim(d) for d in attrs[attr]), x.dtype)]
    register_op(op)(infer)


_given_shape("resize_nearest", "sizes")
_given_shape("resize", "out_shape")


@register_op("resize_shape")
def _resize_shape(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """Resize's output shape as an int64 vector, one entry per axis of x."""
    x = _x("resize_shape", inputs)
    return [((x.ndim,), "int64")]


@register_op("trilu")
def _trilu(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("trilu", inputs)
    return [(x.shape, x.dtype)]


@register_op("range")
def _range(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    return [((as_dim(attrs["length"]),), dtype_name(attrs["dtype"]))]


def reduced_shape(op: str, shape: Sequence[Dim], axes: Sequence[int] | None,
                  keepdims: int) -> tuple[Dim, ...]:
    """The shape after reducing ``axes`` (all when None)."""
    ndim = len(shape)
    chosen = set(range(ndim) if axes is None else norm_axes(op, axes, ndim))
    if keepdims:
        return tuple(1 if i in chosen else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in chosen)


def _reduction(op: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _x(op, inputs)
        if attrs.get("out_shape") is not None:  # axes read at run time (bind_dims)
            return [(tuple(as_dim(d) for d in attrs["out_shape"]), x.dtype)]
        axes = attrs.get("axes")
        return [(reduced_shape(op, x.shape, axes, int(attrs.get("keepdims", 1))), x.dtype)]
    register_op(op)(infer)


for _name in ("sum", "mean", "max", "min", "prod"):
    _reduction(_name)


def _arg_reduction(op: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _x(op, inputs)
        axis = [attrs.get("axis", 0)]
        return [(reduced_shape(op, x.shape, axis, int(attrs.get("keepdims", 1))), "int64")]
    register_op(op)(infer)


_arg_reduction("argmax")
_arg_reduction("argmin")


@register_op("shape_values", kernel="shape_values")
def _shape_values(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    values = tuple(attrs["values"])
    shape = tuple(attrs.get("shape", (len(values),)))
    if prod(shape) != len(values):
        raise fail("shape_values", f"shape {shape} does not hold {len(values)} values")
    return [(shape, dtype_name(attrs.get("dtype", "int64")))]


@register_op("bind_dims", variadic=True)
def _bind_dims(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """No outputs: the node stores run-time sizes in the symbols ``attrs["symbols"]``."""
    if not attrs.get("symbols"):
        raise fail("bind_dims", "needs the symbols it binds")
    return []


@register_op("to_device", kernel=None)
def _to_device(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("to_device", inputs)
    return [(x.shape, x.dtype)]


def is_symbolic(value: Any) -> bool:
    """True for an Expr, or a tuple/list holding one."""
    if isinstance(value, Expr):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, Expr) for v in value)
