"""The converter registry: one function per (ONNX domain, op type), split by op family.

A converter ``fn(ctx, node) -> Value | list[Value]`` reads the node's inputs and
attributes and emits compiler ops through :class:`~relaxvm.frontend.onnx.context.Context`.
It returns one Value per ONNX output (trailing optional outputs may be left out).

Converters are keyed by domain and op type. The default domain has two spellings,
``""`` and ``"ai.onnx"`` (:data:`DEFAULT_DOMAINS`), which look up the same table; other
domains (``ai.onnx.ml``, ``ai.onnx.preview.training``) register with
``@converter("Adam", domain="ai.onnx.preview.training")``, and their ops are named
``domain.Op`` in listings and error messages (:func:`op_label`).
"""

from __future__ import annotations

from collections.abc import Callable

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode

Converter = Callable[[Context, OnnxNode], Value | list]

#: The spellings of ONNX's default operator domain.
DEFAULT_DOMAINS = ("", "ai.onnx")

#: The default domain's converters by op type.
_CONVERTERS: dict[str, Converter] = {}
#: Every domain's converters: canonical domain name -> op type -> converter.
_DOMAINS: dict[str, dict[str, Converter]] = {"": _CONVERTERS}


def canonical_domain(domain: str) -> str:
    """``domain`` with the default domain's spellings folded into ``""``."""
    return "" if domain in DEFAULT_DOMAINS else domain


def op_label(op_type: str, domain: str = "") -> str:
    """How an op is named to users: ``Op`` in the default domain, else ``domain.Op``."""
    domain = canonical_domain(domain)
    return f"{domain}.{op_type}" if domain else op_type


def converter(*op_types: str, domain: str = "") -> Callable[[Converter], Converter]:
    """Decorator: register ``fn`` for each ONNX op type of ``domain`` (default: ai.onnx)."""
    table = _DOMAINS.setdefault(canonical_domain(domain), {})

    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            if op_type in table:
                raise ValueError(f"converter: ONNX op {op_label(op_type, domain)!r} already "
                                 f"has a converter")
            table[op_type] = fn
        return fn
    return register


def get_converter(op_type: str, domain: str = "") -> Converter | None:
    """The converter of ``op_type`` in ``domain``, or None."""
    table = _DOMAINS.get(canonical_domain(domain))
    return None if table is None else table.get(op_type)


def supported_ops() -> list[str]:
    """Every ONNX op the frontend converts, sorted: default-domain ops by type, the
    others as ``domain.Op``."""
    return sorted(op_label(op, domain) for domain, table in _DOMAINS.items() for op in table)
