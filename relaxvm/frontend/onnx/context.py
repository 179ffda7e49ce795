"""The state of one ONNX import: the value table, node emission, folding as we go.

Converters never build Nodes by hand; they call :meth:`Context.emit`, which

1. infers the output shapes and dtypes (so every later converter sees them);
2. folds the node into a constant when all its inputs are constants (shape arithmetic
   on known shapes, weight transposes, ...), evaluating it with the CPU kernels;
3. otherwise resolves small integer tensors computed from symbolic shapes into a
   ``shape_values`` node (see :mod:`relaxvm.compiler.symeval`);
4. otherwise appends the node to the graph.

Shapes, axes and counts that only exist at run time (Reshape's ``shape`` fed as a graph
input, say) become fresh symbols bound by a ``bind_dims`` node (:meth:`runtime_dims`).

``Context.convert_node`` converts one more ONNX node into the context; control-flow
converters call it for the nodes of the subgraphs they inline.

ONNX sequences and optionals never reach the compiled graph: a :class:`SequenceValue`
(its elements, a list of Values known while compiling) and an :class:`OptionalValue`
(a Value, a sequence, or empty, known while compiling) live in ``Context.aggregates``
beside the tensors, and only the converters in :data:`AGGREGATE_CONVERTERS` take them
(see :mod:`relaxvm.frontend.onnx.sequence`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from relaxvm.compiler.evaluate import run_node
from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.ops.registry import infer_types
from relaxvm.compiler.ops.shape import is_symbolic
from relaxvm.compiler.symbolic import Dim, is_static, sym
from relaxvm.compiler.symeval import MAX_ELEMENTS, sym_evaluate, sym_of
from relaxvm.errors import BuildError, UnsupportedOpError
from relaxvm.objects import dtype_name

#: Folded constants may grow past their inputs only up to this many bytes.
FOLD_GROWTH_LIMIT = 1 << 20

_MISSING = object()


class SequenceValue:
    """An ONNX sequence whose length is known while compiling: its element Values (all
    of ``dtype``, the element type, which an empty sequence still has)."""

    def __init__(self, items: Sequence[Value], dtype: str) -> None:
        self.items = list(items)
        self.dtype = dtype

    def type_text(self) -> str:
        return f"seq<{self.dtype}>[{len(self.items)}]"


class OptionalValue:
    """An ONNX optional whose emptiness is known while compiling: its content (a tensor
    or a sequence), or None when empty."""

    def __init__(self, item: Value | SequenceValue | None) -> None:
        self.item = item

    def type_text(self) -> str:
        return "optional<empty>" if self.item is None else f"optional<{self.item.type_text()}>"


#: A sequence or optional value (resolved while importing).
Aggregate = SequenceValue | OptionalValue
#: Anything an ONNX name can stand for while importing.
Item = Value | SequenceValue | OptionalValue
#: The converters used when a node has sequence or optional inputs, by ONNX op type
#: (ops not listed refuse such inputs).
AGGREGATE_CONVERTERS: dict[str, Callable[..., Any]] = {}


def describe(item: Item | None) -> str:
    """How an item's type prints in error messages."""
    return "nothing" if item is None else item.type_text()


class OnnxNode:
    """An ONNX node with decoded attributes and its inputs resolved to Values."""

    def __init__(self, proto: onnx.NodeProto, inputs: list[Value | None], opset: int,
                 items: Sequence[Item | None] | None = None) -> None:
        self.proto = proto
        self.op_type = proto.op_type
        self.name = proto.name or f"{proto.op_type}({', '.join(proto.output)})"
        self.inputs = inputs
        #: Every input as given: tensors, sequences and optionals (``inputs`` holds the
        #: tensors only, None for the others).
        self.items: list[Item | None] = list(inputs if items is None else items)
        self.outputs = list(proto.output)
        self.opset = opset
        self.attrs = {a.name: _attribute(a) for a in proto.attribute}

    def attr(self, name: str, default: Any = _MISSING) -> Any:
        """An attribute's value; BuildError when it is required and missing."""
        if name in self.attrs:
            return self.attrs[name]
        if default is _MISSING:
            raise BuildError(f"{self.op_type} node {self.name}: attribute {name} is required")
        return default

    def input(self, i: int) -> Value | None:
        """Input ``i``, or None when omitted (absent or empty name)."""
        return self.inputs[i] if i < len(self.inputs) else None

    def require(self, i: int, what: str = "") -> Value:
        """Input ``i``, which must be present; the error names the node and the input."""
        value = self.input(i)
        if value is None:
            raise BuildError(f"{self.op_type} node {self.name}: input {i} "
                             f"{'(' + what + ') ' if what else ''}is required")
        return value

    def item(self, i: int) -> Item | None:
        """Input ``i`` whatever its kind, or None when omitted."""
        return self.items[i] if i < len(self.items) else None

    def sequence(self, i: int, what: str = "input_sequence") -> SequenceValue:
        """Input ``i``, which must be a sequence."""
        value = self.item(i)
        if not isinstance(value, SequenceValue):
            raise self.fail(f"input {i} ({what}) must be a sequence, got {describe(value)}")
        return value

    def tensor(self, i: int, what: str = "") -> Value:
        """Input ``i``, which must be a tensor."""
        value = self.item(i)
        if not isinstance(value, Value):
            raise self.fail(f"input {i}{' (' + what + ')' if what else ''} must be a tensor, "
                            f"got {describe(value)}")
        return value

    def fail(self, message: str) -> BuildError:
        """A BuildError about this node (a malformed model)."""
        return BuildError(f"{self.op_type} node {self.name}: {message}")

    def unsupported(self, message: str) -> UnsupportedOpError:
        """An UnsupportedOpError about this node (valid ONNX that relaxvm does not handle)."""
        return UnsupportedOpError(f"from_onnx: {self.op_type} node {self.name}: {message}")


def _attribute(attr: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    return value


def _no_node_converter(proto: onnx.NodeProto) -> None:
    raise BuildError(f"from_onnx: cannot convert the subgraph node {proto.name!r} outside "
                     f"an import (Context.convert_node is not set)")


class Context:
    """Values by ONNX name, and the graph being built."""

    def __init__(self, name: str = "main", opset: int = 17) -> None:
        self.graph = Graph(name)
        self.values: dict[str, Value] = {}
        #: Sequences and optionals by ONNX name (never in the graph; see the docstring).
        self.aggregates: dict[str, Aggregate] = {}
        self.opset = opset
        self._ids = itertools.count()
        self._auto: set[int] = set()
        self.current = ""
        #: How deeply function bodies and control-flow subgraphs nest right now.
        self.depth = 0
        #: Converts one ONNX node into this context (set by the importer; control-flow
        #: converters use it for the nodes of their subgraphs).
        self.convert_node: Callable[[onnx.NodeProto], None] = _no_node_converter

    # -- values --------------------------------------------------------------------------
    def fresh(self, hint: str = "v") -> str:
        """A new value name, unique in the graph."""
        return f"{hint}.{next(self._ids)}"

    def const(self, data: Any, dtype: Any = None, name: str | None = None) -> Value:
        """A constant Value holding ``data`` (converted to ``dtype`` when given)."""
        array = np.asarray(data) if dtype is None else np.asarray(data, dtype=dtype_name(dtype))
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        return Value(name or self.fresh("const"), data=array)

    def _auto_value(self, hint: str, shape: Any, dtype: str) -> Value:
        value = Value(self.fresh(hint), shape, dtype)
        self._auto.add(value.uid)
        return value

    def _auto_const(self, array: np.ndarray) -> Value:
        value = self.const(array)
        self._auto.add(value.uid)
        return value

    def bind(self, onnx_name: str, value: Value) -> None:
        """Record ``value`` as the ONNX tensor ``onnx_name``; the first binding names it."""
        self.values[onnx_name] = value
        if value.uid in self._auto and onnx_name:
            value.name = onnx_name
            self._auto.discard(value.uid)

    def set_item(self, onnx_name: str, item: Item) -> None:
        """Record a tensor, sequence or optional under ``onnx_name`` (tensors as
        :meth:`bind` does)."""
        if isinstance(item, Value):
            self.aggregates.pop(onnx_name, None)
            self.bind(onnx_name, item)
        else:
            self.values.pop(onnx_name, None)
            self.aggregates[onnx_name] = item

    def lookup_item(self, onnx_name: str, where: str) -> Item:
        """The tensor, sequence or optional named ``onnx_name``."""
        aggregate = self.aggregates.get(onnx_name)
        return aggregate if aggregate is not None else self.lookup(onnx_name, where)

    def lookup(self, onnx_name: str, where: str) -> Value:
        """The tensor Value an ONNX name refers to; a sequence/optional or an unknown name is
        an error naming ``where``."""
        value = self.values.get(onnx_name)
        if value is None:
            if onnx_name in self.aggregates:
                raise UnsupportedOpError(
                    f"from_onnx: {where} reads {onnx_name!r} as a tensor, but it is a "
                    f"{describe(self.aggregates[onnx_name])}")
            raise BuildError(f"from_onnx: node {where} reads tensor {onnx_name!r}, which no "
                             f"input, initializer or earlier node defines")
        return value

    # -- emission --------------------------------------------------------------------------
    def emit(self, op: str, inputs: Sequence[Value | None], attrs: dict[str, Any] | None = None
             ) -> Value:
        """Emit a single-output op (see :meth:`emit_multi`)."""
        return self.emit_multi(op, inputs, attrs)[0]

    def emit_multi(self, op: str, inputs: Sequence[Value | None],
                   attrs: dict[str, Any] | None = None) -> list[Value]:
        """Infer, fold or append ``op(*inputs, **attrs)``; returns its output Values."""
        attrs = dict(attrs or {})
        inputs = list(inputs)
        where = f"{self.current or op}"
        types = infer_types(op, inputs, attrs, where)
        outs = [self._auto_value(op, shape, dtype) for shape, dtype in types]
        node = Node(op, inputs, outs, attrs, name=self.current)
        folded = self._fold(node)
        if folded is not None:
            return folded
        resolved = self._resolve_symbolic(node)
        if resolved is not None:
            return [resolved]
        self.graph.nodes.append(node)
        return outs

    def _fold(self, node: Node) -> list[Value] | None:
        present = [v for v in node.inputs if v is not None]
        if not present or not all(v.is_constant for v in present):
            return None
        if not all(v.is_static for v in node.outputs) or \
                any(is_symbolic(a) for a in node.attrs.values()):
            return None
        in_bytes = sum(v.static_nbytes for v in present)
        out_bytes = sum(v.static_nbytes for v in node.outputs)
        if out_bytes > max(FOLD_GROWTH_LIMIT, in_bytes):
            return None
        arrays = run_node(node, [None if v is None else v.data for v in node.inputs], {})
        return [self._auto_const(a) for a in arrays]

    def _resolve_symbolic(self, node: Node) -> Value | None:
        if len(node.outputs) != 1:
            return None
        out = node.outputs[0]
        if not out.is_static or out.dtype[0] not in "iub" or \
                int(np.prod(out.static_shape, dtype=np.int64)) > MAX_ELEMENTS:
            return None
        elems = sym_evaluate(node.op, node.inputs, node.attrs)
        if elems is None:
            return None
        return self.values_tensor(elems, out.static_shape, out.dtype)

    def values_tensor(self, elems: Sequence[Dim], shape: Sequence[int] | None = None,
                      dtype: str = "int64") -> Value:
        """A tensor of the given dims: a constant when all are ints, else ``shape_values``."""
        shape = (len(elems),) if shape is None else tuple(shape)
        if is_static(elems):
            return self._auto_const(np.asarray(elems, dtype=dtype).reshape(shape))
        attrs = {"values": tuple(elems), "shape": shape, "dtype": dtype}
        out = self._auto_value("shape", shape, dtype)
        self.graph.nodes.append(Node("shape_values", [], [out], attrs, name=self.current))
        return out

    # -- reading compile-time values ------------------------------------------------------------
    def ints(self, value: Value | None, what: str) -> list[int]:
        """The elements of a constant integer tensor; BuildError when not constant."""
        elems = self.dims(value, what)
        if not is_static(elems):
            raise BuildError(f"{self.current}: {what} must be known when compiling, got "
                             f"{[str(e) for e in elems]}")
        return [int(e) for e in elems]

    def dims(self, value: Value | None, what: str) -> list[Dim]:
        """The elements of an integer tensor as dims (constant or shape-derived)."""
        elems = sym_of(value)
        if elems is None:
            desc = "missing" if value is None else f"computed at run time ({value.name})"
            raise UnsupportedOpError(f"from_onnx: {self.current}: {what} must be a constant or "
                                     f"computed from shapes, but it is {desc}")
        return list(elems)

    def known(self, value: Value | None) -> bool:
        """Whether an integer tensor's elements are known while compiling (constant or
        computed from shapes); when not, :meth:`runtime_dims` reads them at run time."""
        return value is not None and (value.is_constant or sym_of(value) is not None)

    def runtime_dims(self, rule: str, inputs: Sequence[Value], count: int,
                     params: Sequence[int] = ()) -> list[Dim]:
        """``count`` fresh symbols that a ``bind_dims`` node sets at run time from the
        inputs by ``rule`` (see :mod:`relaxvm.kernels.dynamic_dims`). The caller checks
        that ``count`` is known: the length of each tensor whose values are read."""
        if count == 0:
            return []
        base = next(self._ids)
        names = tuple(f"{rule}#{base}.{k}" for k in range(count))
        self.emit_multi("bind_dims", list(inputs),
                        {"rule": rule, "params": tuple(int(p) for p in params),
                         "symbols": names})
        return [sym(n) for n in names]

    def dims_or_runtime(self, value: Value | None, what: str) -> list[Dim]:
        """The elements of a 1-D integer tensor: as dims when known while compiling,
        else as symbols read at run time (the ``values`` rule)."""
        if value is not None and not self.known(value) and value.is_static and \
                value.ndim <= 1:
            return self.runtime_dims("values", [value], int(np.prod(value.static_shape)))
        return self.dims(value, what)

    def scalar(self, value: Value | None, what: str) -> Any:
        """A constant one-element tensor as a Python number."""
        if value is None or not value.is_constant or value.data.size != 1:  # type: ignore
            raise UnsupportedOpError(f"from_onnx: {self.current}: {what} must be a constant "
                                     f"scalar")
        return value.data.reshape(-1)[0].item()  # type: ignore[union-attr]
