"""The converter registry: one function per ONNX op type, split by op family.

A converter ``fn(ctx, node) -> Value | list[Value]`` reads the node's inputs and
attributes and emits compiler ops through :class:`~relaxvm.frontend.onnx.context.Context`.
It returns one Value per ONNX output (trailing optional outputs may be left out).
"""

from __future__ import annotations

from collections.abc import Callable

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode

Converter = Callable[[Context, OnnxNode], Value | list]

_CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Decorator: register ``fn`` for each ONNX op type (default domain)."""
    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            if op_type in _CONVERTERS:
                raise ValueError(f"converter: ONNX op {op_type!r} already has a converter")
            _CONVERTERS[op_type] = fn
        return fn
    return register


def get_converter(op_type: str) -> Converter | None:
    return _CONVERTERS.get(op_type)


def supported_ops() -> list[str]:
    """Every ONNX op type the frontend converts, sorted."""
    return sorted(_CONVERTERS)
