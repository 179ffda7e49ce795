"""The compiler's graph IR: Values flowing between Nodes, in a Graph.

A :class:`Value` is a tensor: a name, a shape (ints or symbolic
:class:`~relaxvm.compiler.symbolic.Expr` dims), a dtype, a device once placement ran,
and, for constants, its data. Small integer tensors computed from shapes also carry
``sym_value``: their elements as dims, so ``Reshape(x, Concat(Shape(x)[0], 4))`` can
be resolved while compiling even when ``batch`` is unknown.

A :class:`Node` applies an op (a kernel name such as ``"conv2d"``, or a compiler op
such as ``"fused_elementwise"``) with attributes named as the kernel's parameters.
A :class:`Graph` keeps nodes in a valid execution order; :meth:`Graph.validate` says
what is wrong when it is not.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relaxvm.compiler.symbolic import Dim, as_dim, is_static, prod
from relaxvm.errors import BuildError
from relaxvm.objects import dtype_name, numpy_dtype

_ids = itertools.count()


class Value:
    """A tensor in the graph: a graph input, a constant, or a node's output."""

    __slots__ = ("name", "_shape", "dtype", "device", "data", "sym_value", "producer", "uid")

    def __init__(self, name: str, shape: Sequence[Any] | None = None, dtype: Any = "float32",
                 data: np.ndarray | None = None, device: Any = None) -> None:
        self.name = name
        self.data = data
        if data is not None:
            shape, dtype = data.shape, data.dtype
        self._shape: tuple[Dim, ...] | None = None if shape is None else \
            tuple(as_dim(d) for d in shape)
        self.dtype: str = dtype_name(dtype)
        self.device = device
        self.sym_value: tuple[Dim, ...] | None = None
        self.producer: Node | None = None
        self.uid = next(_ids)

    @property
    def shape(self) -> tuple[Dim, ...]:
        """The dims; BuildError while inference has not run (see :attr:`has_shape`)."""
        if self._shape is None:
            raise BuildError(f"Value {self.name}: shape is not known yet")
        return self._shape

    @shape.setter
    def shape(self, dims: Sequence[Any] | None) -> None:
        self._shape = None if dims is None else tuple(as_dim(d) for d in dims)

    @property
    def has_shape(self) -> bool:
        return self._shape is not None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        """True when the shape is known and every dimension is an int."""
        return self._shape is not None and is_static(self._shape)

    @property
    def itemsize(self) -> int:
        return numpy_dtype(self.dtype).itemsize

    @property
    def static_shape(self) -> tuple[int, ...]:
        """The shape as ints; BuildError when a dimension is symbolic."""
        if not self.is_static:
            raise BuildError(f"Value {self.name}: shape {self.type_text()} is not static")
        return self.shape  # type: ignore[return-value]

    @property
    def static_nbytes(self) -> int:
        """The size in bytes of a static-shaped value."""
        return int(np.prod(self.static_shape, dtype=np.int64)) * self.itemsize

    @property
    def nbytes(self) -> Dim:
        """The size in bytes (symbolic when the shape is)."""
        return prod(self._shape or ()) * self.itemsize

    def type_text(self) -> str:
        """``float32[batch, 3]``: how the value's type prints."""
        dims = "?" if self._shape is None else ", ".join(str(d) for d in self._shape)
        return f"{self.dtype}[{dims}]"

    def __repr__(self) -> str:
        return f"Value(%{self.name}: {self.type_text()})"


@dataclass(eq=False)
class Node:
    """One op application: ``outputs = op(*inputs, **attrs)``.

    ``inputs`` may hold None for an omitted optional input (a convolution's bias).
    """

    op: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    device: Any = None

    def __post_init__(self) -> None:
        for out in self.outputs:
            out.producer = self

    def __repr__(self) -> str:
        return f"Node({self.name or self.op}: {self.op})"


class Graph:
    """A function: inputs, nodes in execution order, outputs."""

    def __init__(self, name: str = "main", inputs: Iterable[Value] = (),
                 nodes: Iterable[Node] = (), outputs: Iterable[Value] = ()) -> None:
        self.name = name
        self.inputs: list[Value] = list(inputs)
        self.nodes: list[Node] = list(nodes)
        self.outputs: list[Value] = list(outputs)
        self.metadata: dict[str, Any] = {}

    # -- queries --------------------------------------------------------------------------
    def constants(self) -> list[Value]:
        """Every constant a node reads, once each, in first-use order."""
        seen: dict[int, Value] = {}
        for node in self.nodes:
            for v in node.inputs:
                if v is not None and v.is_constant:
                    seen.setdefault(v.uid, v)
        for v in self.outputs:
            if v.is_constant:
                seen.setdefault(v.uid, v)
        return list(seen.values())

    def consumers(self) -> dict[int, list[Node]]:
        """Value uid -> the nodes that read it, in order."""
        users: dict[int, list[Node]] = {}
        for node in self.nodes:
            for v in node.inputs:
                if v is not None:
                    users.setdefault(v.uid, []).append(node)
        return users

    def op_counts(self) -> dict[str, int]:
        """How many nodes use each op."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    # -- checking ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise BuildError naming the first defect: a value used before it is defined,
        defined twice, a missing shape or dtype, or an output nothing defines."""
        defined: set[int] = {v.uid for v in self.inputs}
        where = f"Graph {self.name}"
        for v in self.inputs:
            if not v.has_shape:
                raise BuildError(f"{where}: input {v.name} has no shape")
        for index, node in enumerate(self.nodes):
            label = f"{where}: node {index} ({node.name or node.op})"
            for arg in node.inputs:
                if arg is not None and not arg.is_constant and arg.uid not in defined:
                    raise BuildError(f"{label} reads %{arg.name} before it is defined")
            for out in node.outputs:
                if out.uid in defined:
                    raise BuildError(f"{label} defines %{out.name}, which is already defined")
                if not out.has_shape:
                    raise BuildError(f"{label}: output %{out.name} has no shape")
                defined.add(out.uid)
        for v in self.outputs:
            if not v.is_constant and v.uid not in defined:
                raise BuildError(f"{where}: output %{v.name} is not defined by any node or "
                                 f"input")

    # -- printing -----------------------------------------------------------------------------
    def __str__(self) -> str:
        params = ", ".join(f"%{v.name}: {v.type_text()}" for v in self.inputs)
        lines = [f"graph {self.name}({params}) {{"]
        for node in self.nodes:
            lines.append("  " + _node_text(node))
        lines.append("  return " + ", ".join(f"%{v.name}" for v in self.outputs))
        lines.append("}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, "
                f"{len(self.outputs)} outputs>")


def clone(graph: Graph) -> Graph:
    """A copy of ``graph`` with fresh Values and Nodes (constant data is shared), so
    passes can rewrite it without touching the original."""
    fresh: dict[int, Value] = {}

    def copy(v: Value) -> Value:
        if v.uid not in fresh:
            c = Value(v.name, v._shape, v.dtype, v.data, v.device)
            c.sym_value = v.sym_value
            fresh[v.uid] = c
        return fresh[v.uid]

    inputs = [copy(v) for v in graph.inputs]
    nodes = [Node(n.op, [None if v is None else copy(v) for v in n.inputs],
                  [copy(v) for v in n.outputs],
                  dict(n.attrs), n.name, n.device) for n in graph.nodes]
    out = Graph(graph.name, inputs, nodes, [copy(v) for v in graph.outputs])
    out.metadata = dict(graph.metadata)
    return out


def _arg_text(v: Value | None) -> str:
    if v is None:
        return "None"
    if v.is_constant and v.data is not None and v.data.size <= 4:
        return f"const({v.data.tolist()!r}: {v.dtype})"
    return f"%{v.name}"


def _node_text(node: Node) -> str:
    outs = ", ".join(f"%{v.name}: {v.type_text()}" for v in node.outputs)
    args = [_arg_text(v) for v in node.inputs]
    args += [f"{k}={_attr_text(a)}" for k, a in node.attrs.items()]
    where = f"  # {node.device}" if node.device is not None else ""
    return f"{outs} = {node.op}({', '.join(args)}){where}"


def _attr_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value) if isinstance(value, str) else str(value)
