"""The graph IR: values, nodes, printing, validation and cloning (relaxvm/compiler/ir.py)."""

from __future__ import annotations

import numpy as np
import pytest

from relaxvm.compiler.ir import Graph, Node, Value, clone
from relaxvm.compiler.symbolic import sym
from relaxvm.errors import BuildError
from tests.compiler.graphs import GraphMaker, mlp_graph


def test_value_reports_type_and_size() -> None:
    v = Value("x", ("batch", 3), "float16")
    assert v.type_text() == "float16[batch, 3]"
    assert v.nbytes == 6 * sym("batch")
    assert not v.is_static and v.ndim == 2
    c = Value("c", data=np.zeros((2, 2), np.int32))
    assert c.is_constant and c.is_static and c.nbytes == 16 and c.dtype == "int32"


def test_graph_prints_one_node_per_line() -> None:
    g = GraphMaker()
    x = g.input("x", ("n", 4))
    y = g.op("relu", x)
    text = str(g.done(y))
    assert text.splitlines()[0] == "graph main(%x: float32[n, 4]) {"
    assert f"%{y.name}: float32[n, 4] = relu(%x)" in text
    assert text.splitlines()[-2] == f"  return %{y.name}"


def test_validate_reports_use_before_definition() -> None:
    x = Value("x", (2,))
    a, b = Value("a", (2,)), Value("b", (2,))
    g = Graph("main", [x], [Node("relu", [a], [b], name="second"),
                            Node("relu", [x], [a], name="first")], [b])
    with pytest.raises(BuildError, match=r"Graph main: node 0 \(second\) reads %a before it is "
                                         r"defined"):
        g.validate()


def test_validate_reports_double_definition_and_missing_shapes() -> None:
    x, a = Value("x", (2,)), Value("a", (2,))
    twice = Graph("main", [x], [Node("relu", [x], [a], name="n1"),
                                Node("relu", [x], [a], name="n2")], [a])
    with pytest.raises(BuildError, match=r"node 1 \(n2\) defines %a, which is already defined"):
        twice.validate()
    untyped = Graph("main", [x], [Node("relu", [x], [Value("u")], name="n")], [])
    with pytest.raises(BuildError, match=r"node 0 \(n\): output %u has no shape"):
        untyped.validate()
    with pytest.raises(BuildError, match=r"Graph main: output %ghost is not defined"):
        Graph("main", [x], [], [Value("ghost", (1,))]).validate()


def test_clone_is_independent_of_the_original() -> None:
    g, _ = mlp_graph()
    copy = clone(g)
    copy.nodes[0].op = "changed"
    copy.inputs[0].shape = (99, 8)
    assert g.nodes[0].op == "matmul" and g.inputs[0].shape == (4, 8)
    assert str(clone(g)) == str(g)


def test_queries_list_constants_consumers_and_op_counts() -> None:
    g, _ = mlp_graph()
    assert len(g.constants()) == 4
    users = g.consumers()
    assert [n.op for n in users[g.inputs[0].uid]] == ["matmul"]
    assert g.op_counts() == {"matmul": 2, "add": 1, "relu": 1, "multiply": 1}
