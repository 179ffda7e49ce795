"""ONNX data-movement and shape ops as PyTorch eager calls (Reshape, Gather, Slice, ...).

Registered into the same table as ``torch_ops``; importing this module adds them. Shape
operands (Reshape's shape, Slice's starts, Unsqueeze's axes) are host int64 tensors, read
as Python ints the way eager PyTorch code passes ``x.shape`` values around.
"""

from __future__ import annotations

from typing import Any

import torch

from relaxvm.errors import UnsupportedOpError

from .torch_ops import Tensor, ints, op


@op("Shape")
def shape(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """The dims of x (from ``start`` to ``end``) as a host int64 vector."""
    dims = list(xs[0].shape)[at.get("start", 0):at.get("end", None)]
    return [torch.tensor(dims, dtype=torch.int64)]


@op("Reshape")
def reshape(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Reshape; a 0 copies the input's dim there (allowzero=0), -1 is inferred."""
    x, dims = xs[0], ints(xs[1])
    if not at.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return [x.reshape(dims)]


@op("Flatten")
def flatten(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Collapse to 2-D at ``axis``."""
    x = xs[0]
    axis = at.get("axis", 1) % (x.dim() + 1) if x.dim() else 0
    outer = 1
    for d in x.shape[:axis]:
        outer *= d
    return [x.reshape(outer, -1)]


@op("Transpose")
def transpose(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Permute axes (reverse them when ``perm`` is absent)."""
    x = xs[0]
    return [x.permute(at.get("perm", list(range(x.dim()))[::-1]))]


@op("Gather")
def gather(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Take slices along ``axis`` at ``indices`` (an embedding lookup when axis is 0)."""
    data, idx = xs
    axis = at.get("axis", 0) % data.dim()
    if idx.device.type == "cpu":           # host indices are small: normalise negatives
        idx = torch.where(idx < 0, idx + data.shape[axis], idx)
    idx = idx.to(data.device)
    if idx.dim() == 0:
        return [data.select(axis, int(idx))]
    picked = torch.index_select(data, axis, idx.reshape(-1))
    return [picked.reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1:])]


@op("Unsqueeze")
def unsqueeze(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Insert size-1 axes at the positions given by the ``axes`` input (opset 13+)."""
    x, axes = xs[0], ints(xs[1])
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return [x]


@op("Squeeze")
def squeeze(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Drop the given size-1 axes (all of them when ``axes`` is omitted)."""
    x = xs[0]
    axes = ints(xs[1]) if len(xs) > 1 and xs[1] is not None else None
    if axes is None:
        return [x.squeeze()]
    return [x.squeeze(tuple(a % x.dim() for a in axes))]


@op("Concat")
def concat(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Join along ``axis`` (host shape vectors stay on the host)."""
    devices = {t.device for t in xs}
    if len(devices) > 1:
        target = next(t.device for t in xs if t.device.type != "cpu")
        xs = [t.to(target) for t in xs]
    return [torch.cat(xs, dim=at["axis"])]


@op("Split")
def split(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Split along ``axis`` by the ``split`` input's sizes."""
    if len(xs) < 2 or xs[1] is None:
        raise UnsupportedOpError("torch_eager Split: input split must be given (sizes), got "
                                 "none (equal splits by output count are not supported)")
    return list(torch.split(xs[0], ints(xs[1]), dim=at.get("axis", 0)))


@op("Slice")
def slice_(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Basic slicing by starts/ends/axes/steps inputs; steps must be positive."""
    x, starts, ends = xs[0], ints(xs[1]), ints(xs[2])
    axes = ints(xs[3]) if len(xs) > 3 and xs[3] is not None else list(range(len(starts)))
    steps = ints(xs[4]) if len(xs) > 4 and xs[4] is not None else [1] * len(starts)
    if any(s < 1 for s in steps):
        raise UnsupportedOpError(f"torch_eager Slice: steps must be positive, got {steps}")
    index = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[axis % x.dim()] = slice(start, end, step)
    return [x[tuple(index)]]


@op("Expand")
def expand(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Broadcast x to the broadcast of its shape and the ``shape`` input."""
    x = xs[0]
    target = torch.broadcast_shapes(tuple(x.shape), tuple(ints(xs[1])))
    return [x.expand(target)]


@op("Range")
def range_(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """start, start + delta, ... below limit, on the device of ``start``."""
    start, limit, delta = xs
    return [torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype,
                         device=start.device)]


@op("ConstantOfShape")
def constant_of_shape(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """A tensor of the given shape filled with ``value`` (float32 zero by default)."""
    value = at.get("value")
    fill = value if value is not None else torch.zeros(1)
    return [torch.full(ints(xs[0]), fill.reshape(-1)[0].item(), dtype=fill.dtype)]
