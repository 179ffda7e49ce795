"""Inference rules for the signal family: ``dft``, ``stft``, ``mel_weight_matrix``,
``det``, ``bitcast`` and ``col2im``.

Lengths that ONNX feeds as tensors (``dft_length``, ``frame_step``, ``image_shape``...)
arrive as dims, possibly symbols bound at run time. A DFT ``axis`` known only at run time
is a symbol too: each output dim then becomes ``d + [axis == i] * (new - d)``, the
indicator written with min/max so the shape heap can evaluate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.compiler.symbolic import Dim, as_dim, dim_max, dim_min, floordiv, mod, prod
from relaxvm.objects import dtype_name


def _input(op: str, inputs: Sequence[Value | None], i: int = 0) -> Value:
    if len(inputs) <= i or inputs[i] is None:
        raise fail(op, f"expects input {i}")
    value = inputs[i]
    assert value is not None
    return value


def indicator(a: Dim, i: int) -> Dim:
    """1 when the integer ``a`` equals ``i``, else 0 (an int when ``a`` is one)."""
    if isinstance(a, int):
        return int(a == i)
    return 1 - dim_min(1, dim_max(a - i, i - a))


def _dft_length(n: Dim, attrs: dict[str, Any]) -> Dim:
    """The transform length for an axis of ``n``: dft_length, else the ONNX default."""
    given = attrs.get("dft_length")
    if given is not None:
        return as_dim(given)
    return 2 * (n - 1) if attrs.get("inverse") and attrs.get("onesided") else n


@register_op("dft")
def _dft(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _input("dft", inputs)
    if x.ndim < 2 or x.shape[-1] not in (1, 2):
        raise fail("dft", f"the input's last axis must be 1 (real) or 2 (complex), got "
                          f"{x.type_text()}")
    r, axis = x.ndim, as_dim(attrs.get("axis", 1))
    irfft = bool(attrs.get("inverse")) and bool(attrs.get("onesided"))
    if isinstance(axis, int):
        if not (-r <= axis <= -2 or 0 <= axis <= r - 2):
            raise fail("dft", f"axis must be in [{-r}, -2] or [0, {r - 2}] for "
                              f"{x.type_text()}, got {axis}")
        axis %= r
    else:
        axis = mod(axis, r)
    shape: list[Dim] = []
    for i, d in enumerate(x.shape[:-1]):
        length = _dft_length(d, attrs)
        new = length // 2 + 1 if attrs.get("onesided") and not irfft else length
        shape.append(d if new == d else d + indicator(axis, i) * (new - d))
    return [((*shape, 1 if irfft else 2), x.dtype)]


@register_op("stft")
def _stft(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _input("stft", inputs)
    if x.ndim != 3 or x.shape[-1] not in (1, 2):
        raise fail("stft", f"signal must be [batch, length, 1 or 2], got {x.type_text()}")
    step, length = as_dim(attrs["frame_step"]), as_dim(attrs["frame_length"])
    frames = floordiv(x.shape[1] - length, step) + 1
    bins = floordiv(length, 2) + 1 if attrs.get("onesided", 1) else length
    return [((x.shape[0], frames, bins, 2), x.dtype)]


@register_op("mel_weight_matrix")
def _mel_weight_matrix(inputs: Sequence[Value | None], attrs: dict[str, Any]
                       ) -> list[OutType]:
    n_mel, length = as_dim(attrs["num_mel_bins"]), as_dim(attrs["dft_length"])
    return [((floordiv(length, 2) + 1, n_mel), dtype_name(attrs.get("dtype", "float32")))]


@register_op("det")
def _det(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _input("det", inputs)
    if x.ndim < 2 or (isinstance(x.shape[-1], int) and isinstance(x.shape[-2], int)
                      and x.shape[-1] != x.shape[-2]):
        raise fail("det", f"expects [*, M, M], got {x.type_text()}")
    return [(tuple(x.shape[:-2]), x.dtype)]


@register_op("bitcast")
def _bitcast(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _input("bitcast", inputs)
    if "dtype" not in attrs:
        raise fail("bitcast", "attribute dtype is required")
    return [(x.shape, dtype_name(attrs["dtype"]))]


@register_op("col2im")
def _col2im(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _input("col2im", inputs)
    block = tuple(as_dim(b) for b in attrs["block_shape"])
    image = tuple(as_dim(d) for d in attrs["image_shape"])
    if x.ndim != 3 or len(block) != len(image):
        raise fail("col2im", f"expects x [N, C * prod(block), L] and image_shape and "
                             f"block_shape of one length, got {x.type_text()}, "
                             f"{[str(d) for d in image]} and {[str(b) for b in block]}")
    k = prod(block)
    if isinstance(k, int) and isinstance(x.shape[1], int) and (k < 1 or x.shape[1] % k):
        raise fail("col2im", f"x's axis 1 ({x.shape[1]}) is not a multiple of "
                             f"prod(block_shape) = {k}")
    return [((x.shape[0], floordiv(x.shape[1], k), *image), x.dtype)]
