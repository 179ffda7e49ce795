"""Type inference, constant folding and dead-code elimination
(relaxvm/compiler/passes/simplify.py)."""

from __future__ import annotations

import numpy as np
import pytest

from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.passes.simplify import eliminate_dead_code, fold_constants, infer_shapes
from relaxvm.compiler.symbolic import sym
from relaxvm.errors import BuildError
from tests.compiler.graphs import GraphMaker


def test_constant_subgraph_is_folded_with_the_cpu_kernels() -> None:
    g = GraphMaker()
    x = g.input("x", (2, 3))
    w = g.op("transpose", g.const(np.arange(6, dtype=np.float32).reshape(3, 2)), perm=(1, 0))
    scaled = g.op("multiply", w, g.const(np.float32(2.0)))
    graph = fold_constants(g.done(g.op("add", x, scaled)))
    assert [n.op for n in graph.nodes] == ["add"]
    folded = graph.nodes[0].inputs[1]
    np.testing.assert_array_equal(folded.data, np.arange(6, dtype=np.float32).reshape(3, 2).T * 2)


def test_large_expansions_of_constants_are_not_folded() -> None:
    g = GraphMaker()
    big = g.op("expand", g.const(np.float32(1.0)), shape=(1024, 1024))
    graph = fold_constants(g.done(big))
    assert [n.op for n in graph.nodes] == ["expand"]


def test_dead_nodes_are_removed_and_live_ones_kept() -> None:
    g = GraphMaker()
    x = g.input("x", (4,))
    g.op("exp", x)
    keep = g.op("relu", x)
    graph = eliminate_dead_code(g.done(keep))
    assert [n.op for n in graph.nodes] == ["relu"]


def test_inference_fills_missing_types_and_rejects_wrong_ones() -> None:
    x = Value("x", (2, 3))
    y = Value("y")
    graph = Graph("main", [x], [Node("transpose", [x], [y], {"perm": (1, 0)}, name="t")], [y])
    infer_shapes(graph)
    assert y.shape == (3, 2) and y.dtype == "float32"
    y.shape = (2, 3)
    with pytest.raises(BuildError, match=r"infer_shapes: node t output %y is recorded as "
                                         r"float32\[2, 3\] but transpose gives float32\[3, 2\]"):
        infer_shapes(graph)


def _runtime_reshape_graph(return_reshaped: bool) -> Graph:
    x, s = Value("x", (2, 6)), Value("s", (2,), "int64")
    a, b = sym("a"), sym("b")
    bind = Node("bind_dims", [x, s], [], {"rule": "reshape", "params": (0,),
                                           "symbols": ("a", "b")})
    y = Value("y", (a, b))
    reshape = Node("reshape", [x], [y], {"shape": (a, b)})
    z = Value("z", (2, 6))
    relu = Node("relu", [x], [z])
    return Graph("g", [x, s], [bind, reshape, relu], [y, z] if return_reshaped else [z])


def test_bind_dims_lives_while_a_live_node_uses_its_symbols() -> None:
    graph = eliminate_dead_code(_runtime_reshape_graph(return_reshaped=True))
    assert [n.op for n in graph.nodes] == ["bind_dims", "reshape", "relu"]


def test_bind_dims_whose_symbols_nobody_uses_is_dropped() -> None:
    graph = eliminate_dead_code(_runtime_reshape_graph(return_reshaped=False))
    assert [n.op for n in graph.nodes] == ["relu"]


def test_bind_dims_is_never_folded() -> None:
    x, s = Value("x", data=np.zeros((2, 6), np.float32)), Value("s", data=np.int64([3, 4]))
    bind = Node("bind_dims", [x, s], [], {"rule": "reshape", "symbols": ("a", "b")})
    y = Value("y", (sym("a"), sym("b")))
    graph = fold_constants(Graph("g", [], [bind, Node("reshape", [x], [y],
                                                         {"shape": (sym("a"), sym("b"))})], [y]))
    assert [n.op for n in graph.nodes] == ["bind_dims", "reshape"]
