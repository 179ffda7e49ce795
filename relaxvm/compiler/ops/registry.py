"""The compiler's op table: for each op, how to infer output types and how it behaves.

Op names are kernel names (``"add"``, ``"conv2d"``) plus a few compiler ops
(``"fused_elementwise"``, ``"to_device"``, ``"shape_values"``). Node attributes use the
kernel's parameter names, so codegen passes ``node.attrs`` straight through in the
order :func:`relaxvm.kernels.kernel_signature` gives; attributes the kernel does not
take (``reshape``'s target ``shape``, ``cast``'s ``dtype``) are compile-time only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim
from relaxvm.errors import BuildError, UnsupportedOpError

#: What inference returns: one (shape, dtype) per output.
OutType = tuple[tuple[Dim, ...], str]
InferFn = Callable[[Sequence["Value | None"], dict[str, Any]], list[OutType]]


@dataclass(frozen=True)
class OpDef:
    """How the compiler treats one op.

    ``elementwise``: output element i depends only on input elements at i after
    broadcasting (fusible); ``variadic``: the kernel takes its inputs as one tuple
    (concat); ``kernel``: the kernel to call, or None for ops codegen lowers itself.
    """

    name: str
    infer: InferFn
    elementwise: bool = False
    variadic: bool = False
    kernel: str | None = ""

    @property
    def kernel_name(self) -> str | None:
        return self.name if self.kernel == "" else self.kernel


_OPS: dict[str, OpDef] = {}


def register_op(name: str, elementwise: bool = False, variadic: bool = False,
                kernel: str | None = "") -> Callable[[InferFn], InferFn]:
    """Decorator: register ``infer(inputs, attrs) -> [(shape, dtype), ...]`` for ``name``."""
    def register(fn: InferFn) -> InferFn:
        if name in _OPS:
            raise ValueError(f"register_op: op {name!r} is already registered")
        _OPS[name] = OpDef(name, fn, elementwise, variadic, kernel)
        return fn
    return register


def get_op(name: str) -> OpDef:
    """The OpDef of ``name``; UnsupportedOpError when the compiler does not know it."""
    op = _OPS.get(name)
    if op is None:
        raise UnsupportedOpError(f"get_op: the compiler has no op named {name!r}")
    return op


def has_op(name: str) -> bool:
    return name in _OPS


def op_names() -> list[str]:
    return sorted(_OPS)


def infer_types(op: str, inputs: Sequence[Value | None], attrs: dict[str, Any],
                where: str = "") -> list[OutType]:
    """Run the inference rule of ``op``; errors name the node (``where``)."""
    try:
        return get_op(op).infer(inputs, attrs)
    except (BuildError, UnsupportedOpError):
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        types = ", ".join("None" if v is None else v.type_text() for v in inputs)
        raise BuildError(f"infer_types: {where or op}: cannot infer the output of {op}"
                         f"({types}) with {attrs}: {exc}") from exc


def fail(op: str, message: str) -> BuildError:
    """A BuildError for an inference rule: ``<op>: <message>``."""
    return BuildError(f"{op}: {message}")
