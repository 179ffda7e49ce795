"""Converters for ONNX control flow: If, Loop and Scan, by inlining their subgraphs.

The compiled graph has no control flow, so subgraphs are converted into the enclosing
graph while importing, through the importer's own per-node conversion
(``Context.convert_node``), so function ops and nested control flow inside them work:

* **If** with a condition known while compiling (initializer, Constant, or folded)
  converts only the taken branch. With a run-time condition it converts both branches
  (ONNX branches have no side effects) and selects each output with ``where``; that
  needs both branches to give the same shapes and dtypes.
* **Loop** and **Scan** with a trip count known while compiling are unrolled: the body
  is converted once per iteration, with loop-carried values wired from one iteration
  to the next. Scan slices its scan inputs per iteration (``scan_input_axes``,
  ``scan_input_directions``) and stacks its scan outputs (``scan_output_axes``,
  ``scan_output_directions``); Loop stacks its scan outputs on a new axis 0. A Loop
  stops early when its body's condition output folds to false; a condition or trip
  count computed at run time is unsupported. Unrolling is capped
  (:data:`MAX_ITERATIONS`, :data:`MAX_UNROLLED_NODES`).
* Sequences and optionals (:mod:`relaxvm.frontend.onnx.sequence`) may flow through If
  outputs and Loop-carried values: a run-time If selects sequences of equal length
  element by element, and optionals when both branches agree on emptiness.

Each inlined copy of a subgraph gets a fresh name prefix, so its values never collide
with the enclosing graph's; names the subgraph does not define are read from the
enclosing scopes (:func:`relaxvm.frontend.onnx.functions.rename_free`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import is_static
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
from relaxvm.frontend.onnx.functions import MAX_DEPTH, graph_locals, rename_free
from relaxvm.frontend.onnx.registry import converter
from relaxvm.frontend.onnx.shape import reshape

#: The most iterations one Loop or Scan node may unroll into.
MAX_ITERATIONS = 4096
#: The most graph nodes one Loop or Scan node may unroll into.
MAX_UNROLLED_NODES = 200_000

_ids = itertools.count()


# -- inlining a subgraph ------------------------------------------------------------------------
def inline_graph(ctx: Context, node: OnnxNode, graph: onnx.GraphProto,
                 inputs: Sequence[Item], tag: str) -> list[Item]:
    """Convert ``graph``'s nodes into ``ctx`` with its formal inputs bound to ``inputs``;
    returns its outputs. ``tag`` names this copy (``then``, ``iter3``, ...)."""
    if len(inputs) != len(graph.input):
        raise node.fail(f"its {tag} subgraph {graph.name!r} takes {len(graph.input)} "
                        f"inputs, but {len(inputs)} are given")
    if ctx.depth >= MAX_DEPTH:
        raise node.unsupported("subgraphs and function bodies nest too deeply")
    prefix = f"{node.name}#{next(_ids)}/{tag}/"
    local = graph_locals(graph)

    def rename(name: str) -> str:
        return prefix + name if name in local else name

    for formal, value in zip(graph.input, inputs):
        if isinstance(value, Value):
            ctx.values[prefix + formal.name] = value
        else:
            ctx.set_item(prefix + formal.name, value)
    for init in graph.initializer:
        ctx.values[prefix + init.name] = ctx.const(numpy_helper.to_array(init))
    if graph.sparse_initializer:
        raise node.unsupported("sparse initializers in subgraphs are not supported")
    current, ctx.depth = ctx.current, ctx.depth + 1
    try:
        for proto in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(proto)
            del copy.input[:]
            del copy.output[:]
            copy.input.extend(rename(n) if n else "" for n in proto.input)
            copy.output.extend(rename(n) if n else "" for n in proto.output)
            copy.name = prefix + (proto.name or proto.op_type)
            rename_free(copy, rename)
            ctx.convert_node(copy)
    finally:
        ctx.current, ctx.depth = current, ctx.depth - 1
    return [ctx.lookup_item(rename(out.name), f"{node.name} ({tag} output)")
            for out in graph.output]


def constant_bool(ctx: Context, value: Value | None) -> bool | None:
    """A one-element condition's value when known while compiling, else None."""
    if value is None:
        return None
    if value.is_constant:
        data = np.asarray(value.data)
        return bool(data.reshape(-1)[0]) if data.size == 1 else None
    elems = sym_of(value)
    if elems is not None and len(elems) == 1 and is_static(elems):
        return bool(elems[0])
    return None


def stack(ctx: Context, node: OnnxNode, parts: Sequence[Value], axis: int, what: str
          ) -> Value:
    """``parts`` (equal shapes) stacked along a new axis ``axis`` (negative counts from
    the end of the result)."""
    first = parts[0]
    rank = first.ndim + 1
    if not -rank <= axis < rank:
        raise node.fail(f"{what} axis {axis} is out of range for rank {rank}")
    axis %= rank
    for part in parts[1:]:
        if tuple(part.shape) != tuple(first.shape) or part.dtype != first.dtype:
            raise node.unsupported(f"{what} changes from {first.type_text()} to "
                                   f"{part.type_text()} between iterations; unrolling needs "
                                   f"equal shapes to stack them")
    dims = list(first.shape)
    dims.insert(axis, 1)
    expanded = [reshape(ctx, p, dims) for p in parts]
    if len(expanded) == 1:
        return expanded[0]
    return ctx.emit("concat", expanded, {"axis": axis})


class Budget:
    """Counts the iterations and graph nodes one Loop or Scan unrolls into."""

    def __init__(self, ctx: Context, node: OnnxNode) -> None:
        self.ctx, self.node = ctx, node
        self.start = len(ctx.graph.nodes)
        self.iterations = 0

    def step(self) -> None:
        """Count one unrolled iteration and its nodes; unsupported past the caps."""
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise self.node.unsupported(f"unrolling stops at {MAX_ITERATIONS} iterations; "
                                        f"this node runs more")
        grown = len(self.ctx.graph.nodes) - self.start
        if grown > MAX_UNROLLED_NODES:
            raise self.node.unsupported(f"unrolling it would add more than "
                                        f"{MAX_UNROLLED_NODES} nodes (reached {grown} after "
                                        f"{self.iterations} iterations)")


# -- If ------------------------------------------------------------------------------------------
@converter("If")
def _if(ctx: Context, node: OnnxNode) -> list[Item]:
    cond = node.tensor(0, "cond")
    then_graph, else_graph = node.attr("then_branch"), node.attr("else_branch")
    taken = constant_bool(ctx, cond)
    if taken is not None:
        return inline_graph(ctx, node, then_graph if taken else else_graph, [],
                            "then" if taken else "else")
    if len(then_graph.output) != len(else_graph.output):
        raise node.fail(f"its branches give {len(then_graph.output)} and "
                        f"{len(else_graph.output)} outputs")
    then_outs = inline_graph(ctx, node, then_graph, [], "then")
    else_outs = inline_graph(ctx, node, else_graph, [], "else")
    if not cond.is_static or int(np.prod(cond.static_shape)) != 1:
        raise node.fail(f"cond must hold one element, got {cond.type_text()}")
    flag = reshape(ctx, cond, ())
    if flag.dtype != "bool":
        flag = ctx.emit("cast", [flag], {"dtype": "bool"})
    return [_select(ctx, node, flag, a, b, f"output {i}")
            for i, (a, b) in enumerate(zip(then_outs, else_outs))]


def _select(ctx: Context, node: OnnxNode, flag: Value, a: Item, b: Item, what: str) -> Item:
    """``a`` where the run-time ``flag`` holds, else ``b``: tensors by ``where``,
    sequences element by element, optionals when both are empty or both hold a value."""
    if a is b:
        return a
    if isinstance(a, OptionalValue) and isinstance(b, OptionalValue):
        if a.item is None and b.item is None:
            return a
        if a.item is None or b.item is None:
            raise _differs(node, a, b, what, "an optional's emptiness must be known while "
                                             "compiling")
        return OptionalValue(_select_content(ctx, node, flag, a.item, b.item, what))
    if isinstance(a, OptionalValue) or isinstance(b, OptionalValue):
        raise _differs(node, a, b, what, "the branches give different kinds of values")
    return _select_content(ctx, node, flag, a, b, what)


def _select_content(ctx: Context, node: OnnxNode, flag: Value, a: Value | SequenceValue,
                    b: Value | SequenceValue, what: str) -> Value | SequenceValue:
    if isinstance(a, SequenceValue) and isinstance(b, SequenceValue):
        if len(a.items) != len(b.items):
            raise _differs(node, a, b, what, "a sequence's length must be known while "
                                             "compiling")
        return SequenceValue([_where(ctx, node, flag, x, y, f"{what}[{k}]")
                              for k, (x, y) in enumerate(zip(a.items, b.items))], a.dtype)
    if isinstance(a, Value) and isinstance(b, Value):
        return _where(ctx, node, flag, a, b, what)
    raise _differs(node, a, b, what, "the branches give different kinds of values")


def _where(ctx: Context, node: OnnxNode, flag: Value, a: Value, b: Value, what: str) -> Value:
    if a is b:
        return a
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        raise _differs(node, a, b, what, "selecting with where needs equal shapes and dtypes")
    return ctx.emit("where", [flag, a, b])


def _differs(node: OnnxNode, a: Item, b: Item, what: str, why: str) -> Exception:
    return node.unsupported(f"the condition is computed at run time and {what} differs "
                            f"between the branches ({describe(a)} vs {describe(b)}); {why}")


# -- Loop ----------------------------------------------------------------------------------------
def _trip_count(ctx: Context, node: OnnxNode) -> int | None:
    """Loop's M as an int (None when omitted); unsupported when computed at run time."""
    m = node.input(0)
    if m is None:
        return None
    elems = sym_of(m)
    if elems is None or len(elems) != 1 or not is_static(elems):
        raise node.unsupported(f"its trip count M ({m.name}) is computed at run time; "
                               f"only loops with a trip count known while compiling are "
                               f"unrolled")
    return int(elems[0])


@converter("Loop")
def _loop(ctx: Context, node: OnnxNode) -> list[Item]:
    body = node.attr("body")
    for i in (0, 1):
        if node.item(i) is not None:
            node.tensor(i, "M" if i == 0 else "cond")
    trip = _trip_count(ctx, node)
    cond_in = node.input(1)
    going = True if cond_in is None else constant_bool(ctx, cond_in)
    if going is None:
        name = cond_in.name if cond_in is not None else ""
        raise node.unsupported(f"its initial condition ({name}) is "
                               f"computed at run time; only loops whose condition is known "
                               f"while compiling are unrolled")
    if trip is None and cond_in is None:
        raise node.unsupported("it has neither a trip count nor a condition (an endless "
                               "loop)")
    carried = [_carried(node, i) for i in range(2, len(node.items))]
    n_scan = len(body.output) - 1 - len(carried)
    if n_scan < 0 or len(body.input) != 2 + len(carried):
        raise node.fail(f"its body has {len(body.input)} inputs and {len(body.output)} "
                        f"outputs for {len(carried)} loop-carried values")
    scans: list[list[Item]] = [[] for _ in range(n_scan)]
    budget = Budget(ctx, node)
    k = 0
    while going and (trip is None or k < trip):
        budget.step()
        index = ctx.const(np.array(k, np.int64))
        outs = inline_graph(ctx, node, body, [index, ctx.const(np.array(True)), *carried],
                            f"iter{k}")
        carried = outs[1:1 + len(carried)]
        for part, out in zip(scans, outs[1 + len(carried):]):
            part.append(out)
        going = constant_bool(ctx, outs[0]) if isinstance(outs[0], Value) else None
        if going is None:
            raise node.unsupported(f"its body's condition output is computed at run time "
                                   f"(in iteration {k}); only loops that end by their trip "
                                   f"count or a condition known while compiling are unrolled")
        k += 1
    if n_scan and not k:
        raise node.unsupported("it runs zero times, so the shapes of its scan outputs are "
                               "unknown")
    return [*carried, *(stack(ctx, node, _tensors(node, part, f"scan output {i}"), 0,
                              f"scan output {i}") for i, part in enumerate(scans))]


def _carried(node: OnnxNode, i: int) -> Item:
    value = node.item(i)
    if value is None:
        raise node.fail(f"input {i} (loop-carried initial value) is required")
    return value


def _tensors(node: OnnxNode, parts: Sequence[Item], what: str) -> list[Value]:
    """``parts`` as tensors; scan outputs cannot be sequences or optionals."""
    for part in parts:
        if not isinstance(part, Value):
            raise node.unsupported(f"{what} is a {describe(part)}; scan outputs must be "
                                   f"tensors")
    return [p for p in parts if isinstance(p, Value)]


# -- Scan ----------------------------------------------------------------------------------------
def _axes(node: OnnxNode, name: str, count: int, default: int) -> list[int]:
    values = [int(v) for v in node.attr(name, [default] * count)]
    if len(values) != count:
        raise node.fail(f"{name} has {len(values)} entries for {count} values")
    return values


def _scan_length(node: OnnxNode, xs: Sequence[Value], axes: Sequence[int]) -> int:
    lengths = set()
    for x, axis in zip(xs, axes):
        if not -x.ndim <= axis < x.ndim:
            raise node.fail(f"scan axis {axis} is out of range for {x.type_text()}")
        dim = x.shape[axis % x.ndim]
        if not isinstance(dim, int):
            raise node.unsupported(f"the scan axis length of {x.name} is {dim}, known only "
                                   f"at run time; only scans of a length known while "
                                   f"compiling are unrolled")
        lengths.add(dim)
    if len(lengths) != 1:
        raise node.fail(f"its scan inputs differ in length along the scan axes: "
                        f"{sorted(lengths)}")
    return lengths.pop()


def _scan(ctx: Context, node: OnnxNode, body: onnx.GraphProto, states: list[Value],
          xs: Sequence[Value], budget: Budget, in_axes: Sequence[int],
          in_dirs: Sequence[int], out_axes: Sequence[int], out_dirs: Sequence[int]
          ) -> list[Value]:
    """One scan over ``xs``: final states, then the stacked scan outputs."""
    length = _scan_length(node, xs, in_axes)
    n_out = len(body.output) - len(states)
    if length == 0:
        if n_out:
            raise node.unsupported("its scan inputs are empty, so the shapes of its scan "
                                   "outputs are unknown")
        return states
    scans: list[list[Value]] = [[] for _ in range(n_out)]
    for t in range(length):
        budget.step()
        slices = [ctx.emit("take", [x, ctx.const(np.array(length - 1 - t if d else t,
                                                          np.int64))], {"axis": a})
                  for x, a, d in zip(xs, in_axes, in_dirs)]
        outs = _tensors(node, inline_graph(ctx, node, body, [*states, *slices], f"iter{t}"),
                        "a Scan body output")
        states = outs[:len(states)]
        for part, out in zip(scans, outs[len(states):]):
            part.append(out)
    stacked = [stack(ctx, node, part[::-1] if d else part, a, f"scan output {i}")
               for i, (part, a, d) in enumerate(zip(scans, out_axes, out_dirs))]
    return [*states, *stacked]


@converter("Scan")
def _scan_node(ctx: Context, node: OnnxNode) -> list[Value]:
    body = node.attr("body")
    n_in = int(node.attr("num_scan_inputs"))
    inputs = node.inputs[1:] if node.opset < 9 else node.inputs
    values = [v for v in inputs if v is not None]
    if len(values) != len(inputs) or n_in > len(values):
        raise node.fail(f"expects {n_in} scan inputs after the initial states, all present")
    states, xs = values[:len(values) - n_in], values[len(values) - n_in:]
    n_out = len(body.output) - len(states)
    budget = Budget(ctx, node)
    if node.opset >= 9:
        return _scan(ctx, node, body, states, xs, budget,
                     _axes(node, "scan_input_axes", n_in, 0),
                     _axes(node, "scan_input_directions", n_in, 0),
                     _axes(node, "scan_output_axes", n_out, 0),
                     _axes(node, "scan_output_directions", n_out, 0))
    return _scan8(ctx, node, body, states, xs, budget, _axes(node, "directions", n_in, 0))


def _scan8(ctx: Context, node: OnnxNode, body: onnx.GraphProto, states: list[Value],
           xs: Sequence[Value], budget: Budget, dirs: Sequence[int]) -> list[Value]:
    """Scan-8: every input and output has a leading batch axis; each batch row is one
    scan over axis 0 of its rows (``sequence_lens`` must be omitted or all full)."""
    batch = _scan_length(node, [*states, *xs], [0] * (len(states) + len(xs)))
    lens = node.input(0)
    if lens is not None:
        full = xs[0].shape[1] if xs and xs[0].ndim > 1 else None
        known = lens.is_constant and full is not None and \
            bool(np.all(np.asarray(lens.data) == full))
        if not known:
            raise node.unsupported("sequence_lens shorter than the scan inputs are not "
                                   "supported (only omitted or all equal to the full length)")
    n_out = len(body.output) - len(states)
    rows = []
    for b in range(batch):
        index = ctx.const(np.array(b, np.int64))
        row = [ctx.emit("take", [v, index], {"axis": 0}) for v in (*states, *xs)]
        rows.append(_scan(ctx, node, body, row[:len(states)], row[len(states):], budget,
                          [0] * len(xs), dirs, [0] * n_out, [0] * n_out))
    return [stack(ctx, node, [r[i] for r in rows], 0, f"output {i}")
            for i in range(len(states) + n_out)]


AGGREGATE_CONVERTERS["If"] = _if
AGGREGATE_CONVERTERS["Loop"] = _loop
