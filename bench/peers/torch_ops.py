"""ONNX ops as PyTorch eager calls: the op table behind the "PyTorch eager" peer.

Each entry takes the node's input tensors (None for an omitted optional input) and its
attributes as a plain dict, and returns the list of output tensors. Every op is the call
an eager PyTorch model makes for the same layer (``F.linear`` for ``Gemm(transB=1)``,
``F.conv2d``, ``F.layer_norm``, ``F.embedding``-style ``index_select`` ...), so running a
zoo graph through this table is PyTorch eager running the zoo model op by op.

Shape arithmetic follows eager PyTorch too: ``Shape`` yields a small int64 tensor on the
host (eager code reads ``x.shape`` in Python), so Reshape/Slice/Expand read their shape
operands without a device round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)
from onnx import TensorProto

from relaxvm.errors import UnsupportedOpError

Tensor = torch.Tensor
OpFn = Callable[[list[Any], dict[str, Any]], list[Tensor]]
OPS: dict[str, OpFn] = {}

ONNX_TO_TORCH = {
    TensorProto.FLOAT: torch.float32, TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16, TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
    TensorProto.INT8: torch.int8, TensorProto.UINT8: torch.uint8, TensorProto.BOOL: torch.bool,
}


def op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register ``fn`` as the implementation of each ONNX op type in ``names``."""
    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
        return fn
    return register


def ints(t: Tensor | None) -> list[int]:
    """A host int64 operand (shape, axes, starts) as Python ints."""
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _together(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Move a host shape value to the other operand's device when both are non-scalars."""
    if a.device != b.device:
        if a.device.type == "cpu" and a.dim() > 0:
            a = a.to(b.device)
        elif b.device.type == "cpu" and b.dim() > 0:
            b = b.to(a.device)
    return a, b


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    return lambda xs, at: [fn(*_together(xs[0], xs[1]))]


def _div(a: Tensor, b: Tensor) -> Tensor:
    # ONNX integer Div truncates toward zero, like C; torch's default is true division.
    if a.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")


OPS.update({
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": _binary(_div), "Pow": _binary(torch.pow), "Equal": _binary(torch.eq),
    "Relu": lambda xs, at: [torch.relu(xs[0])], "Tanh": lambda xs, at: [torch.tanh(xs[0])],
    "Erf": lambda xs, at: [torch.erf(xs[0])], "Sigmoid": lambda xs, at: [torch.sigmoid(xs[0])],
    "Sqrt": lambda xs, at: [torch.sqrt(xs[0])], "Exp": lambda xs, at: [torch.exp(xs[0])],
    "Neg": lambda xs, at: [torch.neg(xs[0])], "Identity": lambda xs, at: [xs[0]],
})


@op("Where")
def where(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Select from x where cond, else y (broadcasting)."""
    return [torch.where(xs[0], xs[1], xs[2])]


@op("Cast")
def cast(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Convert to the element type ``to``."""
    target = ONNX_TO_TORCH.get(at["to"])
    if target is None:
        raise UnsupportedOpError(f"torch_eager Cast: attribute to must be one of "
                                 f"{sorted(ONNX_TO_TORCH)}, got {at['to']}")
    return [xs[0].to(target)]


@op("MatMul")
def matmul(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """numpy.matmul semantics, batched."""
    return [torch.matmul(xs[0], xs[1])]


@op("Gemm")
def gemm(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """alpha * A' B' + beta * C; the nn.Linear form (transB=1, unit scales) is F.linear."""
    a, b, c = xs[0], xs[1], xs[2] if len(xs) > 2 else None
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    if at.get("transA", 0):
        a = a.t()
    if at.get("transB", 0) and alpha == 1.0 and beta == 1.0:
        return [F.linear(a, b, c)]
    b = b.t() if at.get("transB", 0) else b
    if c is None:
        return [torch.mm(a, b) * alpha]
    return [torch.addmm(c.expand(a.shape[0], b.shape[1]), a, b, beta=beta, alpha=alpha)]


def _symmetric_pads(name: str, at: dict[str, Any], rank: int) -> list[int]:
    if at.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise UnsupportedOpError(f"torch_eager {name}: attribute auto_pad must be NOTSET, "
                                 f"got {at['auto_pad']!r}")
    pads = list(at.get("pads", [0] * (2 * rank)))
    if pads[:rank] != pads[rank:]:
        raise UnsupportedOpError(f"torch_eager {name}: attribute pads must be symmetric "
                                 f"(begin == end), got {pads}")
    return pads[:rank]


@op("Conv")
def conv(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """2-D convolution (F.conv2d), NCHW, symmetric padding."""
    x, w, bias = xs[0], xs[1], xs[2] if len(xs) > 2 else None
    rank = w.dim() - 2
    if rank != 2:
        raise UnsupportedOpError(f"torch_eager Conv: weight must be 4-D (2-D conv), "
                                 f"got {w.dim()}-D")
    return [F.conv2d(x, w, bias, stride=at.get("strides", [1, 1]),
                     padding=_symmetric_pads("Conv", at, rank),
                     dilation=at.get("dilations", [1, 1]), groups=at.get("group", 1))]


@op("BatchNormalization")
def batch_norm(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Inference-mode batch norm with the running statistics."""
    x, scale, bias, mean, var = xs[:5]
    return [F.batch_norm(x, mean, var, scale, bias, training=False,
                         eps=at.get("epsilon", 1e-5))]


@op("MaxPool")
def max_pool(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """2-D max pooling (F.max_pool2d)."""
    kernel = at["kernel_shape"]
    return [F.max_pool2d(xs[0], kernel, stride=at.get("strides", [1] * len(kernel)),
                         padding=_symmetric_pads("MaxPool", at, len(kernel)),
                         dilation=at.get("dilations", [1] * len(kernel)),
                         ceil_mode=bool(at.get("ceil_mode", 0)))]


@op("GlobalAveragePool")
def global_average_pool(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Mean over every spatial axis, kept as size-1 axes (torchvision's adaptive pool)."""
    x = xs[0]
    if x.dim() == 4:
        return [F.adaptive_avg_pool2d(x, 1)]
    return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]


@op("LayerNormalization")
def layer_norm(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """F.layer_norm over the axes from ``axis`` on."""
    x = xs[0]
    axis = at.get("axis", -1) % x.dim()
    bias = xs[2] if len(xs) > 2 else None
    return [F.layer_norm(x, tuple(x.shape[axis:]), xs[1], bias, eps=at.get("epsilon", 1e-5))]


@op("Softmax")
def softmax(xs: list[Any], at: dict[str, Any]) -> list[Tensor]:
    """Softmax along one axis (opset 13+ semantics)."""
    return [torch.softmax(xs[0], dim=at.get("axis", -1))]
