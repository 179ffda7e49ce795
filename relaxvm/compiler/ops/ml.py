"""Inference rules for the ops of ONNX's non-default domains.

``ai.onnx.ml``: ``binarizer``, ``array_feature_extractor``, ``tree_ensemble``,
``label_encoder``; ``ai.onnx.preview.training``: the optimizers ``adagrad``, ``adam`` and
``momentum``, which are variadic (one tuple ``R, T, X..., G..., state...``, see
:mod:`relaxvm.kernels.training`) with outputs ``X_new...`` then the new state tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.common import broadcast, required_inputs
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.compiler.symbolic import prod

_FLOATS = ("float32", "float64")


@register_op("binarizer")
def _binarizer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    (x,) = required_inputs("binarizer", inputs, 1)
    return [(x.shape, x.dtype)]


@register_op("array_feature_extractor")
def _array_feature_extractor(inputs: Sequence[Value | None], attrs: dict[str, Any]
                             ) -> list[OutType]:
    x, idx = required_inputs("array_feature_extractor", inputs, 2)
    if x.ndim == 0:
        raise fail("array_feature_extractor", "x must have at least one dimension")
    if idx.dtype != "int64":
        raise fail("array_feature_extractor", f"indices must be int64, got {idx.dtype}")
    lead = x.shape[:-1] if x.ndim > 1 else (1,)
    return [((*lead, prod(idx.shape)), x.dtype)]


@register_op("tree_ensemble")
def _tree_ensemble(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, _, _, _, _, weights, _ = required_inputs("tree_ensemble", inputs, 7)
    if x.ndim != 2:
        raise fail("tree_ensemble", f"x must be 2-D (samples, features), got {x.type_text()}")
    if weights.ndim != 1 or not weights.is_static:
        raise fail("tree_ensemble", f"leaf_weights must be 1-D, got {weights.type_text()}")
    n_targets = int(attrs["n_targets"])
    return [((x.shape[0], n_targets), x.dtype)]


@register_op("label_encoder")
def _label_encoder(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, keys, values, _ = required_inputs("label_encoder", inputs, 4)
    if keys.ndim != 1 or values.ndim != 1:
        raise fail("label_encoder", f"keys and values must be 1-D, got {keys.type_text()} "
                                    f"and {values.type_text()}")
    return [(x.shape, values.dtype)]


def _optimizer(op: str, inputs: Sequence[Value | None], groups: int) -> list[OutType]:
    """R, T, then ``groups`` groups of n tensors: one output per tensor but the
    gradients, shaped like the broadcast of its variable's X, G and state."""
    xs = required_inputs(op, inputs, len(inputs))
    n, extra = divmod(len(xs) - 2, groups)
    if n == 0 or extra:
        raise fail(op, f"expects R, T and {groups} groups of n >= 1 tensors, got "
                       f"{len(xs)} inputs")
    rate, count = xs[0], xs[1]
    if rate.ndim > 1 or count.ndim > 1 or rate.dtype not in _FLOATS or count.dtype != "int64":
        raise fail(op, f"R must be a float scalar and T an int64 scalar, got "
                       f"{rate.type_text()} and {count.type_text()}")
    tensors = xs[2:]
    outs: list[OutType] = []
    for g in [0, *range(2, groups)]:
        for i in range(n):
            var = [tensors[k * n + i] for k in range(groups)]
            if any(v.dtype not in _FLOATS for v in var):
                raise fail(op, f"X, G and the state tensors must be float32 or float64, got "
                               f"{[v.type_text() for v in var]}")
            outs.append((broadcast(op, *(v.shape for v in var)), tensors[g * n + i].dtype))
    return outs


@register_op("adagrad", variadic=True)
def _adagrad(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    return _optimizer("adagrad", inputs, 3)


@register_op("adam", variadic=True)
def _adam(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    return _optimizer("adam", inputs, 4)


@register_op("momentum", variadic=True)
def _momentum(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    return _optimizer("momentum", inputs, 3)
