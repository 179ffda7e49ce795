"""ONNX sequence and optional ops, resolved while importing.

A sequence whose length is known while compiling is a
:class:`~relaxvm.frontend.onnx.context.SequenceValue` (a list of element Values); an
optional whose emptiness is known is an
:class:`~relaxvm.frontend.onnx.context.OptionalValue`. Neither reaches the compiled
graph: the ops on them are list operations here, and only the tensors they hold become
graph values.

- SequenceConstruct, SequenceEmpty, SequenceLength (a constant), SequenceAt,
  SequenceInsert and SequenceErase (positions known while compiling);
- ConcatFromSequence (``concat``, or a stack when ``new_axis`` is 1) and
  SplitToSequence (``split``; the number of pieces must be known while compiling);
- SequenceMap: its body converted once per element, as Scan is unrolled;
- Optional, OptionalHasElement (a constant), OptionalGetElement, and Identity on a
  sequence or optional.

:func:`flatten_outputs` and :func:`nest_outputs` map graph outputs of these types to
and from the VM's flat list of tensors (a sequence of ``n`` gives ``n`` tensors, an
empty optional none), with a JSON-able layout recorded in the graph's metadata.
Anything whose length, position or emptiness is only known at run time is refused with
an UnsupportedOpError naming the node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, is_static
from relaxvm.compiler.symeval import sym_of
from relaxvm.frontend.onnx.context import (
    AGGREGATE_CONVERTERS,
    Context,
    Item,
    OnnxNode,
    OptionalValue,
    SequenceValue,
    describe,
)
from relaxvm.frontend.onnx.control_flow import Budget, inline_graph
from relaxvm.frontend.onnx.dtypes import dtype_of
from relaxvm.frontend.onnx.registry import converter
from relaxvm.frontend.onnx.shape import reshape

#: How one graph output maps onto the VM's flat outputs (see :func:`nest_outputs`).
Layout = Any


def aggregate_converter(*op_types: str) -> Callable[[Any], Any]:
    """Decorator: register a converter for ONNX ops that take sequences and optionals."""
    def register(fn: Any) -> Any:
        for op_type in op_types:
            AGGREGATE_CONVERTERS[op_type] = fn
        return converter(*op_types)(fn)
    return register


# -- helpers -------------------------------------------------------------------------------------
def _position(ctx: Context, node: OnnxNode, index: int, length: int, default: int,
              insert: bool = False) -> int:
    """Input ``index`` as a position into a sequence of ``length`` (negative counts from
    the end); ``default`` when omitted. Insert positions may equal ``length``."""
    value = node.item(index)
    if value is None:
        return default
    if not isinstance(value, Value):
        raise node.fail(f"position must be a tensor, got {describe(value)}")
    elems = sym_of(value)
    if elems is None or len(elems) != 1 or not is_static(elems):
        raise node.unsupported(f"position ({value.name}) is computed at run time; only "
                               f"positions known while compiling are supported")
    pos = int(elems[0])
    top = length if insert else length - 1
    if not -length <= pos <= top:
        raise node.fail(f"position {pos} is out of range for a sequence of {length}")
    return pos + length if pos < 0 else pos


def _check_dtype(node: OnnxNode, seq: SequenceValue, value: Value) -> None:
    if value.dtype != seq.dtype:
        raise node.fail(f"the tensor is {value.dtype}, but the sequence holds {seq.dtype}")


def _squeeze(ctx: Context, x: Value, axis: int) -> Value:
    dims = list(x.shape)
    del dims[axis]
    return reshape(ctx, x, dims)


# -- building and reading sequences --------------------------------------------------------------
@aggregate_converter("SequenceConstruct")
def _construct(ctx: Context, node: OnnxNode) -> SequenceValue:
    items = [node.tensor(i, "inputs") for i in range(len(node.items))]
    if not items:
        raise node.fail("it needs at least one input")
    dtypes = sorted({v.dtype for v in items})
    if len(dtypes) != 1:
        raise node.fail(f"its inputs must share one dtype, got {dtypes}")
    return SequenceValue(items, dtypes[0])


@aggregate_converter("SequenceEmpty")
def _empty(ctx: Context, node: OnnxNode) -> SequenceValue:
    return SequenceValue([], dtype_of(int(node.attr("dtype", 1)), f"{node.name} dtype"))


@aggregate_converter("SequenceLength")
def _length(ctx: Context, node: OnnxNode) -> Value:
    return ctx.const(np.array(len(node.sequence(0).items), np.int64))


@aggregate_converter("SequenceAt")
def _at(ctx: Context, node: OnnxNode) -> Value:
    seq = node.sequence(0)
    if node.item(1) is None:
        raise node.fail("input 1 (position) is required")
    return seq.items[_position(ctx, node, 1, len(seq.items), 0)]


@aggregate_converter("SequenceInsert")
def _insert(ctx: Context, node: OnnxNode) -> SequenceValue:
    seq, value = node.sequence(0), node.tensor(1, "tensor")
    _check_dtype(node, seq, value)
    pos = _position(ctx, node, 2, len(seq.items), len(seq.items), insert=True)
    return SequenceValue([*seq.items[:pos], value, *seq.items[pos:]], seq.dtype)


@aggregate_converter("SequenceErase")
def _erase(ctx: Context, node: OnnxNode) -> SequenceValue:
    seq = node.sequence(0)
    if not seq.items:
        raise node.fail("it cannot erase from an empty sequence")
    pos = _position(ctx, node, 1, len(seq.items), len(seq.items) - 1)
    return SequenceValue(seq.items[:pos] + seq.items[pos + 1:], seq.dtype)


@aggregate_converter("ConcatFromSequence")
def _concat_from_sequence(ctx: Context, node: OnnxNode) -> Value:
    seq = node.sequence(0)
    if not seq.items:
        raise node.unsupported("its sequence is empty, so the result's shape is unknown")
    new_axis = int(node.attr("new_axis", 0))
    rank = seq.items[0].ndim + (1 if new_axis else 0)
    axis = int(node.attr("axis"))
    if not -rank <= axis < rank:
        raise node.fail(f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    parts = seq.items
    if new_axis:
        parts = []
        for item in seq.items:
            dims = list(item.shape)
            dims.insert(axis, 1)
            parts.append(reshape(ctx, item, dims))
    if len(parts) == 1:
        return parts[0]
    return ctx.emit("concat", parts, {"axis": axis})


def _split_sizes(ctx: Context, node: OnnxNode, x: Value, axis: int) -> list[Dim] | None:
    """SplitToSequence's piece sizes, or None when ``split`` is omitted."""
    split = node.item(1)
    if split is None:
        return None
    if not isinstance(split, Value):
        raise node.fail(f"split must be a tensor, got {describe(split)}")
    if split.ndim == 0:
        elems = sym_of(split)
        if elems is None or not is_static(elems):
            raise node.unsupported(f"split ({split.name}) is a scalar computed at run time: "
                                   f"the number of pieces depends on its value, so the "
                                   f"sequence's length is not known while compiling")
        chunk, dim = int(elems[0]), x.shape[axis]
        if chunk <= 0:
            raise node.fail(f"split must be positive, got {chunk}")
        if not isinstance(dim, int):
            raise node.unsupported(f"axis {axis} of the input has run-time length {dim}, so "
                                   f"the number of pieces is not known while compiling")
        return [min(chunk, dim - start) for start in range(0, dim, chunk)]
    if not split.is_static or split.ndim != 1:
        raise node.fail(f"split must be a scalar or a 1-D tensor, got {split.type_text()}")
    sizes = ctx.dims_or_runtime(split, "split")
    dim = x.shape[axis]
    if is_static(sizes) and isinstance(dim, int) and sum(int(s) for s in sizes) != dim:
        raise node.fail(f"split sizes {[int(s) for s in sizes]} do not add up to axis "
                        f"{axis}'s length {dim}")
    return sizes


@aggregate_converter("SplitToSequence")
def _split_to_sequence(ctx: Context, node: OnnxNode) -> SequenceValue:
    x = node.tensor(0, "input")
    axis = int(node.attr("axis", 0))
    if not -x.ndim <= axis < x.ndim:
        raise node.fail(f"axis {axis} is out of range for {x.type_text()}")
    axis %= x.ndim
    sizes = _split_sizes(ctx, node, x, axis)
    squeeze = sizes is None and not int(node.attr("keepdims", 1))
    if sizes is None:
        dim = x.shape[axis]
        if not isinstance(dim, int):
            raise node.unsupported(f"axis {axis} of the input has run-time length {dim}, so "
                                   f"the sequence's length is not known while compiling")
        sizes = [1] * dim
    if not sizes:
        return SequenceValue([], x.dtype)
    pieces = ctx.emit_multi("split", [x], {"axis": axis, "sizes": tuple(sizes)})
    if squeeze:
        pieces = [_squeeze(ctx, p, axis) for p in pieces]
    return SequenceValue(pieces, x.dtype)


# -- SequenceMap ---------------------------------------------------------------------------------
@aggregate_converter("SequenceMap")
def _sequence_map(ctx: Context, node: OnnxNode) -> list[SequenceValue]:
    """The body converted once per element; tensor inputs are passed to every copy."""
    body = node.attr("body")
    node.sequence(0)
    inputs: list[Value | SequenceValue] = []
    for i, x in enumerate(node.items):
        if not isinstance(x, (Value, SequenceValue)):
            raise node.fail(f"input {i} must be a tensor or a sequence, got {describe(x)}")
        inputs.append(x)
    lengths = sorted({len(x.items) for x in inputs if isinstance(x, SequenceValue)})
    if len(lengths) != 1:
        raise node.fail(f"its input sequences differ in length: {lengths}")
    outs: list[list[Value]] = [[] for _ in body.output]
    budget = Budget(ctx, node)
    for k in range(lengths[0]):
        budget.step()
        args = [x.items[k] if isinstance(x, SequenceValue) else x for x in inputs]
        for part, out in zip(outs, inline_graph(ctx, node, body, args, f"elem{k}")):
            if not isinstance(out, Value):
                raise node.unsupported(f"its body returns a {describe(out)}; only tensor "
                                       f"elements are supported")
            part.append(out)
    return [SequenceValue(part, _body_dtype(node, out.type, part))
            for part, out in zip(outs, body.output)]


def _body_dtype(node: OnnxNode, type_proto: Any, part: Sequence[Value]) -> str:
    if part:
        return part[0].dtype
    code = type_proto.tensor_type.elem_type if type_proto.HasField("tensor_type") else 0
    return dtype_of(code, f"{node.name} body output") if code else "float32"


# -- optionals -----------------------------------------------------------------------------------
@aggregate_converter("Optional")
def _optional(ctx: Context, node: OnnxNode) -> OptionalValue:
    value = node.item(0)
    if isinstance(value, OptionalValue):
        raise node.fail("its input must be a tensor or a sequence, not an optional")
    return OptionalValue(value)


@aggregate_converter("OptionalHasElement")
def _has_element(ctx: Context, node: OnnxNode) -> Value:
    value = node.item(0)
    present = value is not None and not (isinstance(value, OptionalValue) and value.item is None)
    return ctx.const(np.array(present))


@aggregate_converter("OptionalGetElement")
def _get_element(ctx: Context, node: OnnxNode) -> Item:
    value = node.item(0)
    if value is None:
        raise node.fail("input 0 is required")
    if isinstance(value, OptionalValue):
        if value.item is None:
            raise node.fail("its optional input is empty")
        return value.item
    return value


def _identity(ctx: Context, node: OnnxNode) -> Item:
    """Identity on a sequence or an optional: the same value."""
    value = node.item(0)
    if value is None:
        raise node.fail("input 0 is required")
    return value


AGGREGATE_CONVERTERS["Identity"] = _identity  # tensors keep elementwise.py's converter


# -- graph outputs -------------------------------------------------------------------------------
def flatten_outputs(items: Sequence[Item], names: Sequence[str]
                    ) -> tuple[list[Value], list[Layout], list[str]]:
    """The graph outputs as flat tensors, their layout (one entry per ONNX output:
    ``"tensor"``, ``{"sequence": n}`` or ``{"optional": None | inner layout}``) and a
    name for each tensor (``name[k]`` for a sequence's elements)."""
    values: list[Value] = []
    layout: list[Layout] = []
    flat_names: list[str] = []
    for item, name in zip(items, names):
        layout.append(_flatten(item, name, values, flat_names))
    return values, layout, flat_names


def _flatten(item: Item | None, name: str, values: list[Value], names: list[str]) -> Layout:
    if isinstance(item, Value):
        values.append(item)
        names.append(name)
        return "tensor"
    if isinstance(item, SequenceValue):
        values.extend(item.items)
        names.extend(f"{name}[{k}]" for k in range(len(item.items)))
        return {"sequence": len(item.items)}
    inner = item.item if isinstance(item, OptionalValue) else None
    return {"optional": None if inner is None else _flatten(inner, name, values, names)}


def nest_outputs(layout: Sequence[Layout] | None, flat: Sequence[Any]) -> list[Any]:
    """The VM's flat outputs regrouped by ``layout`` (the graph's
    ``metadata["output_layout"]``): a sequence becomes a list, an empty optional None.
    Without a layout, ``flat`` is returned as a list."""
    if layout is None:
        return list(flat)
    rest = list(flat)
    out = [_nest(entry, rest) for entry in layout]
    if rest:
        raise ValueError(f"nest_outputs: {len(rest)} outputs left over after the layout")
    return out


def _nest(entry: Layout, rest: list[Any]) -> Any:
    if entry == "tensor":
        return rest.pop(0)
    if "sequence" in entry:
        count = int(entry["sequence"])
        taken, rest[:] = rest[:count], rest[count:]
        return taken
    return None if entry["optional"] is None else _nest(entry["optional"], rest)
