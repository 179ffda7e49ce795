"""Inference for the recurrent ops ``lstm``, ``gru`` and ``rnn``.

Inputs follow ONNX order (x, w, r, b, sequence_lens, initial_h[, initial_c, p]); absent
optional inputs are None. Every op has all its outputs: Y (T, D, B, H), Y_h (D, B, H)
and, for lstm, Y_c (D, B, H); with ``layout=1`` they are (B, T, D, H) and (B, D, H).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.compiler.symbolic import Dim

#: Gate blocks per op, and how many outputs it has.
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
OUTPUTS = {"lstm": 3, "gru": 2, "rnn": 2}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def recurrent_types(op: str, inputs: Sequence[Value | None], attrs: dict[str, Any]
                    ) -> list[OutType]:
    """Y, Y_h (and Y_c) for ``op``; checks ranks, directions and the hidden size."""
    if len(inputs) < 3 or any(v is None for v in inputs[:3]):
        raise fail(op, f"expects x, w and r, got "
                       f"{['None' if v is None else v.type_text() for v in inputs]}")
    x, w, r = inputs[0], inputs[1], inputs[2]
    assert x is not None and w is not None and r is not None
    if x.ndim != 3 or w.ndim != 3 or r.ndim != 3:
        raise fail(op, f"x, w and r must be 3-d, got {x.type_text()}, {w.type_text()} and "
                       f"{r.type_text()}")
    direction = attrs.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise fail(op, f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise fail(op, f"layout must be 0 or 1, got {layout}")
    d = DIRECTIONS[direction]
    hidden: Dim = int(attrs.get("hidden_size", 0)) or r.shape[2]
    for name, value, want in (("w", w, GATES[op]), ("r", r, GATES[op])):
        dims = value.shape[1]
        if isinstance(dims, int) and isinstance(hidden, int) and dims != want * hidden:
            raise fail(op, f"{name} must have {want} * hidden_size = {want * hidden} rows, got "
                           f"{value.type_text()}")
        if isinstance(value.shape[0], int) and value.shape[0] != d:
            raise fail(op, f"{name} must have {d} directions for direction={direction}, got "
                           f"{value.type_text()}")
    steps, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
    y = (steps, d, batch, hidden) if layout == 0 else (batch, steps, d, hidden)
    state = (d, batch, hidden) if layout == 0 else (batch, d, hidden)
    return [(y, x.dtype)] + [(state, x.dtype)] * (OUTPUTS[op] - 1)


def _register(op: str) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        return recurrent_types(op, inputs, attrs)
    infer.__doc__ = f"Output types of {op} (see :func:`recurrent_types`)."
    register_op(op)(infer)


for _op in GATES:
    _register(_op)
