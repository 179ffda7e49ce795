"""Whole-graph clean-ups: type inference, constant folding and dead-code elimination.

The ONNX frontend already infers and folds while it imports; these passes exist for
graphs built by hand (and tests), and run again after other passes change the graph.
"""

from __future__ import annotations

from relaxvm.compiler.evaluate import run_node
from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.ops.registry import infer_types
from relaxvm.compiler.ops.shape import is_symbolic
from relaxvm.compiler.symbolic import Expr
from relaxvm.errors import BuildError

#: Folding may grow constants past the size of their inputs only up to this many bytes.
FOLD_GROWTH_LIMIT = 1 << 20


def infer_shapes(graph: Graph) -> Graph:
    """Set every node output's shape and dtype from its inputs, in order.

    A node whose outputs already have types must agree with inference: a mismatch is a
    BuildError naming the node, the recorded type and the inferred one.
    """
    for node in graph.nodes:
        types = infer_types(node.op, node.inputs, node.attrs, node.name or node.op)
        if len(types) != len(node.outputs):
            raise BuildError(f"infer_shapes: node {node.name or node.op} has "
                             f"{len(node.outputs)} outputs but {node.op} produces {len(types)}")
        for out, (shape, dtype) in zip(node.outputs, types):
            if out.has_shape and (tuple(out.shape) != tuple(shape) or
                                          out.dtype != dtype):
                raise BuildError(f"infer_shapes: node {node.name or node.op} output "
                                 f"%{out.name} is recorded as {out.type_text()} but "
                                 f"{node.op} gives {Value('', shape, dtype).type_text()}")
            out.shape, out.dtype = tuple(shape), dtype
    return graph


def replace_uses(graph: Graph, mapping: dict[int, Value]) -> None:
    """Make every reader of a Value (by uid) in ``mapping`` read its replacement."""
    if not mapping:
        return
    for node in graph.nodes:
        node.inputs = [v if v is None else mapping.get(v.uid, v) for v in node.inputs]
    graph.outputs = [mapping.get(v.uid, v) for v in graph.outputs]


def _foldable(node: Node) -> bool:
    if not node.outputs:  # bind_dims: its effect is on the shape heap
        return False
    present = [v for v in node.inputs if v is not None]
    if not present or not all(v.is_constant for v in present):
        return False
    if not all(v.is_static for v in node.outputs):
        return False
    if any(is_symbolic(a) for a in node.attrs.values()):
        return False
    grown = sum(v.static_nbytes for v in node.outputs)
    return grown <= max(FOLD_GROWTH_LIMIT, sum(v.static_nbytes for v in present))


def symbols_in(value: object) -> set[str]:
    """The symbol names in a dim, a shape or a (nested) tuple of dims."""
    if isinstance(value, Expr):
        return value.symbols()
    if isinstance(value, (tuple, list)):
        return {s for v in value for s in symbols_in(v)}
    return set()


def fold_constants(graph: Graph) -> Graph:
    """Evaluate nodes whose inputs are all constants (CPU kernels) and drop them."""
    kept: list[Node] = []
    mapping: dict[int, Value] = {}
    for node in graph.nodes:
        node.inputs = [v if v is None else mapping.get(v.uid, v) for v in node.inputs]
        if not _foldable(node):
            kept.append(node)
            continue
        arrays = run_node(node, [None if v is None else v.data for v in node.inputs], {})
        for out, array in zip(node.outputs, arrays):
            mapping[out.uid] = Value(out.name, data=array)
    graph.nodes = kept
    graph.outputs = [mapping.get(v.uid, v) for v in graph.outputs]
    return graph


def eliminate_dead_code(graph: Graph) -> Graph:
    """Drop nodes none of whose outputs is read by a live node or returned. A node that
    defines symbols (``bind_dims``, which binds run-time sizes, and the ops whose output
    sizes only their kernel knows, such as ``nonzero``) also lives while a live node's
    shapes or attributes use one of its symbols: ``Shape(NonZero(x))`` needs the
    nonzero even when nothing reads its values."""
    live = {v.uid for v in graph.outputs}
    used_symbols = {s for v in graph.outputs for s in symbols_in(v.shape)}
    kept: list[Node] = []
    for node in reversed(graph.nodes):
        alive = any(v.uid in live for v in node.outputs) or \
            bool(used_symbols.intersection(node.attrs.get("symbols", ())))
        if alive:
            kept.append(node)
            live.update(v.uid for v in node.inputs if v is not None)
            used_symbols.update(s for v in node.inputs if v is not None and v.has_shape
                                for s in symbols_in(v.shape))
            used_symbols.update(s for v in node.outputs for s in symbols_in(v.shape))
            used_symbols.update(s for a in node.attrs.values() for s in symbols_in(a))
    graph.nodes = list(reversed(kept))
    return graph
