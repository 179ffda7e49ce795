"""Converters for the ONNX recurrent ops LSTM, GRU and RNN (opsets 1 to 22).

Each becomes one ``lstm`` / ``gru`` / ``rnn`` node with the ONNX inputs in order (absent
optional ones as None) and all outputs; outputs the model leaves unnamed are dropped.
Attributes are checked here so that a bad model fails while compiling, naming the node:
the direction, the layout, the activation names and their count, and the hidden size.
"""

from __future__ import annotations

from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter
from relaxvm.kernels.recurrent import ACTIVATIONS, DIRECTIONS

#: ONNX op -> (kernel, number of inputs, activations per direction).
_OPS = {"LSTM": ("lstm", 8, 3), "GRU": ("gru", 6, 2), "RNN": ("rnn", 6, 1)}


def _activations(node: OnnxNode, per: int, directions: int) -> tuple[str, ...]:
    """The activation names, checked: known functions (any case), ``per`` per
    direction."""
    names = tuple(str(a) for a in node.attr("activations", []))
    if not names:
        return names
    unknown = [a for a in names if a.lower() not in ACTIVATIONS]
    if unknown:
        raise node.unsupported(f"activations {unknown} are not among "
                               f"{', '.join(sorted(ACTIVATIONS))}")
    if len(names) != per * directions:
        raise node.fail(f"activations must list {per} functions per direction "
                        f"({per * directions} in all), got {len(names)}")
    return names


def _attrs(node: OnnxNode, per: int) -> dict[str, Any]:
    """The kernel attributes shared by the three ops."""
    direction = str(node.attr("direction", "forward"))
    if direction not in DIRECTIONS:
        raise node.fail(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    layout = int(node.attr("layout", 0))
    if layout not in (0, 1):
        raise node.fail(f"layout must be 0 or 1, got {layout}")
    clip = node.attr("clip", None)
    if clip is not None and not float(clip) > 0:
        raise node.fail(f"clip must be positive, got {clip}")
    return {
        "hidden_size": int(node.attr("hidden_size", 0)),
        "direction": direction,
        "activations": _activations(node, per, len(DIRECTIONS[direction])),
        "activation_alpha": tuple(float(a) for a in node.attr("activation_alpha", [])),
        "activation_beta": tuple(float(b) for b in node.attr("activation_beta", [])),
        "clip": None if clip is None else float(clip),
        "layout": layout,
    }


def _inputs(node: OnnxNode, count: int) -> list[Value | None]:
    """X, W, R (required) and the optional inputs, None where absent; X must be float."""
    x = node.require(0, "X")
    inputs: list[Value | None] = [x, node.require(1, "W"), node.require(2, "R")]
    inputs += [node.input(i) for i in range(3, count)]
    if x.dtype not in ("float16", "bfloat16", "float32", "float64"):
        raise node.unsupported(f"X must be a float tensor, got {x.type_text()}")
    return inputs


@converter("LSTM", "GRU", "RNN")
def _recurrent(ctx: Context, node: OnnxNode) -> list[Value]:
    kernel, count, per = _OPS[node.op_type]
    attrs = _attrs(node, per)
    if node.op_type == "LSTM":
        attrs["input_forget"] = int(node.attr("input_forget", 0))
    if node.op_type == "GRU":
        attrs["linear_before_reset"] = int(node.attr("linear_before_reset", 0))
    return ctx.emit_multi(kernel, _inputs(node, count), attrs)
