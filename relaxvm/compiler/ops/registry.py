"""The compiler's op table: for each op, how to infer output types and how it behaves.

Op names are kernel names (``"add"``, ``"conv2d"``) plus a few compiler ops
(``"fused_elementwise"``, ``"to_device"``, ``"shape_values"``). Node attributes use the
kernel's parameter names, so codegen passes ``node.attrs`` straight through in the
order :func:`relaxvm.kernels.kernel_signature` gives; attributes the kernel does not
take (``reshape``'s target ``shape``, ``cast``'s ``dtype``) are compile-time only.

Ops flagged ``returns_outputs`` (``nonzero``, ``unique``...) have output sizes that only
the kernel knows: it is called with ``out=None`` and returns its outputs. Inference
gives each such size a fresh symbol (:func:`output_symbols`, named in the node's
``symbols`` attribute), which the generated code binds from the returned shapes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, sym
from relaxvm.errors import BuildError, UnsupportedOpError

#: What inference returns: one (shape, dtype) per output.
OutType = tuple[tuple[Dim, ...], str]
InferFn = Callable[[Sequence["Value | None"], dict[str, Any]], list[OutType]]


@dataclass(frozen=True)
class OpDef:
    """How the compiler treats one op.

    ``elementwise``: output element i depends only on input elements at i after
    broadcasting (fusible); ``variadic``: the kernel takes its inputs as one tuple
    (concat); ``kernel``: the kernel to call, or None for ops codegen lowers itself;
    ``returns_outputs``: the kernel allocates and returns its outputs (``out=None``),
    whose data-dependent sizes are the symbols in the node's ``symbols`` attribute.
    """

    name: str
    infer: InferFn
    elementwise: bool = False
    variadic: bool = False
    kernel: str | None = ""
    returns_outputs: bool = False

    @property
    def kernel_name(self) -> str | None:
        """The kernel that runs this op (None for ops lowered otherwise)."""
        return self.name if self.kernel == "" else self.kernel


_OPS: dict[str, OpDef] = {}


def register_op(name: str, elementwise: bool = False, variadic: bool = False,
                kernel: str | None = "", returns_outputs: bool = False
                ) -> Callable[[InferFn], InferFn]:
    """Decorator: register ``infer(inputs, attrs) -> [(shape, dtype), ...]`` for ``name``."""
    def register(fn: InferFn) -> InferFn:
        if name in _OPS:
            raise ValueError(f"register_op: op {name!r} is already registered")
        _OPS[name] = OpDef(name, fn, elementwise, variadic, kernel, returns_outputs)
        return fn
    return register


def get_op(name: str) -> OpDef:
    """The OpDef of ``name``; UnsupportedOpError when the compiler does not know it."""
    op = _OPS.get(name)
    if op is None:
        raise UnsupportedOpError(f"get_op: the compiler has no op named {name!r}")
    return op


def has_op(name: str) -> bool:
    """Whether ``name`` has an inference rule."""
    return name in _OPS


def op_names() -> list[str]:
    """Every registered op name, sorted."""
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


_fresh = itertools.count()


def output_symbols(op: str, attrs: dict[str, Any], count: int) -> list[Dim]:
    """The ``count`` fresh symbols for the data-dependent sizes of a ``returns_outputs``
    node, named by ``attrs["symbols"]``. When absent (a hand-built graph) they are made
    once and stored there, so every later inference of the node gives the same dims."""
    names = attrs.get("symbols")
    if names is None:
        base = next(_fresh)
        names = attrs["symbols"] = tuple(f"{op}#{base}.{k}" for k in range(count))
    if len(names) != count:
        raise fail(op, f"needs {count} symbols for its data-dependent sizes, got "
                       f"{list(names)}")
    return [sym(n) for n in names]


def fail(op: str, message: str) -> BuildError:
    """A BuildError for an inference rule: ``<op>: <message>``."""
    return BuildError(f"{op}: {message}")
