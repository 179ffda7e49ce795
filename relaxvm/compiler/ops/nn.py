"""Inference for linear algebra and neural-network ops: matmul, gemm, convolution and
transposed convolution, pooling (max, average, Lp; 2-d and 3-d) and normalisation
(batch, layer, LRN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.common import broadcast, norm_axis
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.compiler.symbolic import Dim, floordiv


def _ins(op: str, inputs: Sequence[Value | None], n: int) -> list[Value]:
    if len(inputs) < n or any(v is None for v in inputs[:n]):
        raise fail(op, f"expects at least {n} inputs, got {len(inputs)}")
    return list(inputs)  # type: ignore[arg-type]


@register_op("matmul")
def _matmul(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    a, b = _ins("matmul", inputs, 2)[:2]
    sa: list[Dim] = list(a.shape)
    sb: list[Dim] = list(b.shape)
    if not sa or not sb:
        raise fail("matmul", "inputs must have at least one dimension")
    va, vb = len(sa) == 1, len(sb) == 1
    if va:
        sa.insert(0, 1)
    if vb:
        sb.append(1)
    _check_dim("matmul", sa[-1], sb[-2], "contracted dimensions")
    shape = list(broadcast("matmul", sa[:-2], sb[:-2])) + [sa[-2], sb[-1]]
    if va:
        shape.pop(-2)
    if vb:
        shape.pop(-1)
    return [(tuple(shape), a.dtype)]


@register_op("matmul_permuted")
def _matmul_permuted(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """matmul of the permuted operands, the product permuted by ``out_perm``."""
    a, b = _ins("matmul_permuted", inputs, 2)[:2]
    views = [Value(v.name, _permuted("matmul_permuted", v.shape, attrs.get(key)), v.dtype)
             for v, key in ((a, "a_perm"), (b, "b_perm"))]
    (shape, dtype), = _matmul(views, {})
    return [(_permuted("matmul_permuted", shape, attrs.get("out_perm")), dtype)]


def _permuted(op: str, shape: Sequence[Dim], perm: Sequence[int] | None) -> tuple[Dim, ...]:
    if perm is None:
        return tuple(shape)
    if sorted(int(p) for p in perm) != list(range(len(shape))):
        raise fail(op, f"perm {list(perm)} does not permute a {len(shape)}-d shape")
    return tuple(shape[int(p)] for p in perm)


def _check_dim(op: str, x: Dim, y: Dim, what: str) -> None:
    if isinstance(x, int) and isinstance(y, int) and x != y:
        raise fail(op, f"{what} differ: {x} vs {y}")


@register_op("gemm")
def _gemm(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    a, b = _ins("gemm", inputs, 2)[:2]
    if a.ndim != 2 or b.ndim != 2:
        raise fail("gemm", f"a and b must be 2-d, got {a.type_text()} and {b.type_text()}")
    m, ka = (a.shape[1], a.shape[0]) if attrs.get("trans_a", 0) else a.shape
    kb, n = (b.shape[1], b.shape[0]) if attrs.get("trans_b", 0) else b.shape
    _check_dim("gemm", ka, kb, "contracted dimensions")
    return [((m, n), a.dtype)]


def conv_out(size: Dim, kernel: int, stride: int, pad_begin: int, pad_end: int,
             dilation: int, ceil_mode: int = 0) -> Dim:
    """Output length of a convolution or pooling window over one axis."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = floordiv(span + stride - 1, stride) + 1
        # ONNX/PyTorch: the last window must start inside the input or the begin pad.
        if isinstance(out, int) and isinstance(size, int) and (out - 1) * stride >= \
                size + pad_begin:
            out -= 1
        return out
    return floordiv(span, stride) + 1


def _spatial(op: str, x: Value, kernel: Sequence[int], attrs: dict[str, Any],
             ceil_mode: int = 0) -> list[Dim]:
    n = len(kernel)
    strides = attrs.get("strides") or (1,) * n
    dilations = attrs.get("dilations") or (1,) * n
    pads = attrs.get("pads") or (0,) * (2 * n)
    if x.ndim != n + 2:
        raise fail(op, f"x must be {n + 2}-d, got {x.type_text()}")
    out = []
    for i in range(n):
        d = conv_out(x.shape[2 + i], int(kernel[i]), int(strides[i]), int(pads[i]),
                     int(pads[i + n]), int(dilations[i]), ceil_mode)
        if isinstance(d, int) and d < 1:
            raise fail(op, f"output size on spatial axis {i} is {d} for input "
                           f"{x.type_text()}, kernel {tuple(kernel)}")
        out.append(d)
    return out


def _conv(op: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x, w = _ins(op, inputs, 2)[:2]
        groups = int(attrs.get("groups", 1))
        _check_dim(op, x.shape[1], w.shape[1] * groups, "input channels and weight "
                                                         "channels * groups")
        spatial = _spatial(op, x, [int(k) for k in w.shape[2:]], attrs)
        return [((x.shape[0], w.shape[0], *spatial), x.dtype)]
    register_op(op)(infer)


_conv("conv1d")
_conv("conv2d")


def _pool(op: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _ins(op, inputs, 1)[0]
        spatial = _spatial(op, x, attrs["kernel_shape"], attrs, int(attrs.get("ceil_mode", 0)))
        return [((x.shape[0], x.shape[1], *spatial), x.dtype)]
    register_op(op)(infer)


for _name in ("max_pool2d", "max_pool3d", "avg_pool2d", "avg_pool3d", "lp_pool2d",
              "lp_pool3d"):
    _pool(_name)


def _pool_indices(op: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _ins(op, inputs, 1)[0]
        spatial = _spatial(op, x, attrs["kernel_shape"], attrs, int(attrs.get("ceil_mode", 0)))
        shape = (x.shape[0], x.shape[1], *spatial)
        return [(shape, x.dtype), (shape, "int64")]
    register_op(op)(infer)


_pool_indices("max_pool2d_with_indices")
_pool_indices("max_pool3d_with_indices")


@register_op("conv_transpose")
def _conv_transpose(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """(N, M, *spatial) with each axis ``stride * (in - 1) + output_padding +
    (kernel - 1) * dilation + 1 - pad_begin - pad_end``; w is (C, M / groups, *kernel)."""
    x, w = _ins("conv_transpose", inputs, 2)[:2]
    nd = x.ndim - 2
    if nd < 1 or w.ndim != x.ndim:
        raise fail("conv_transpose", f"x and w must have the same rank of at least 3, got "
                                     f"{x.type_text()} and {w.type_text()}")
    groups = int(attrs.get("groups", 1))
    _check_dim("conv_transpose", x.shape[1], w.shape[0], "input channels and weight axis 0")
    strides = attrs.get("strides") or (1,) * nd
    dilations = attrs.get("dilations") or (1,) * nd
    pads = attrs.get("pads") or (0,) * (2 * nd)
    extra = attrs.get("output_padding") or (0,) * nd
    spatial: list[Dim] = []
    for i in range(nd):
        k = w.shape[2 + i]
        if not isinstance(k, int):
            raise fail("conv_transpose", f"kernel sizes must be static, got {w.type_text()}")
        d = (x.shape[2 + i] - 1) * int(strides[i]) + int(extra[i]) + (k - 1) * \
            int(dilations[i]) + 1 - int(pads[i]) - int(pads[nd + i])
        if isinstance(d, int) and d < 1:
            raise fail("conv_transpose", f"output size on spatial axis {i} is {d} for input "
                                         f"{x.type_text()}, weight {w.type_text()}")
        spatial.append(d)
    return [((x.shape[0], w.shape[1] * groups, *spatial), x.dtype)]


def _global_pool(op: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _ins(op, inputs, 1)[0]
        if x.ndim < 3:
            raise fail(op, f"x must be at least 3-d, got {x.type_text()}")
        return [((x.shape[0], x.shape[1]) + (1,) * (x.ndim - 2), x.dtype)]
    register_op(op)(infer)


_global_pool("global_avg_pool2d")
_global_pool("global_max_pool2d")


def _same(op: str, n_inputs: int, axis_attr: str | None = None) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _ins(op, inputs, n_inputs)[0]
        if axis_attr is not None:
            norm_axis(op, attrs.get(axis_attr, -1), x.ndim)
        return [(x.shape, x.dtype)]
    register_op(op)(infer)


_same("batch_norm", 5)
_same("layer_norm", 1, "axis")
_same("softmax", 1, "axis")
_same("log_softmax", 1, "axis")
_same("cumsum", 1)
_same("lrn", 1)
