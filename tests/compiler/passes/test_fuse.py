"""Elementwise fusion (relaxvm/compiler/passes/fuse.py)."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.compiler import build, evaluate, lower
from relaxvm.compiler.passes.fuse import find_groups, fuse_elementwise
from relaxvm.compiler.passes.placement import place_devices
from relaxvm.frontend import from_onnx
from relaxvm.models.zoo import build_model
from relaxvm.vm import VirtualMachine
from tests.compiler.graphs import GraphMaker, mlp_graph, mlp_reference


def test_chain_becomes_one_fused_node() -> None:
    graph, params = mlp_graph()
    place_devices(graph, [relaxvm.cpu(0)])
    fuse_elementwise(graph)
    assert [n.op for n in graph.nodes] == ["matmul", "fused_elementwise", "matmul"]
    fused = graph.nodes[1]
    assert fused.attrs["ops"] == ("add", "relu", "multiply")
    assert fused.attrs["program"] == ("t0:float32=add(x0,x1);t1:float32=relu(t0);"
                                      "t2:float32=multiply(t1,float32(0.5))")
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(evaluate(graph, [x])[0], mlp_reference(x, params), rtol=1e-5,
                               atol=1e-5)


def test_value_read_outside_the_group_is_not_fused_away() -> None:
    g = GraphMaker()
    x = g.input("x", (3,))
    a = g.op("relu", x)
    b = g.op("exp", a)
    c = g.op("matmul", a, g.const(np.ones((3, 3), np.float32)))
    graph = g.done(g.op("add", b, c))
    groups = [[n.op for n in group] for group in find_groups(graph)]
    assert groups == [["relu"], ["exp", "add"]]


def test_returned_intermediate_is_not_fused_away() -> None:
    g = GraphMaker()
    x = g.input("x", (3,))
    a = g.op("relu", x)
    graph = g.done(g.op("exp", a), a)
    fuse_elementwise(graph)
    assert [n.op for n in graph.nodes] == ["relu", "exp"]


def test_dag_group_reads_shared_input_once() -> None:
    g = GraphMaker()
    x = g.input("x", (2, 3))
    half = g.op("multiply", x, g.const(np.float32(0.5)))
    erf = g.op("erf", g.op("multiply", x, g.const(np.float32(0.7071))))
    graph = g.done(g.op("multiply", half, g.op("add", erf, g.const(np.float32(1.0)))))
    fuse_elementwise(graph)
    assert len(graph.nodes) == 1 and graph.nodes[0].inputs == [x]


def test_cuda_groups_skip_ops_without_a_cuda_form() -> None:
    g = GraphMaker()
    x = g.input("x", (4,))
    a = g.op("exp", x)
    b = g.op("mod", a, g.const(np.float32(2.0)))
    graph = g.done(g.op("relu", b))
    place_devices(graph, [relaxvm.cuda(0)])
    assert [len(group) for group in find_groups(graph)] == [1, 1]


@pytest.mark.parametrize("name", ["bert", "gpt2", "vit"])
def test_fused_model_equals_unfused_model(name: str) -> None:
    model = build_model(name)
    fused, plain = lower(model, opt_level=2).graph, lower(model, opt_level=1).graph
    assert fused.op_counts().get("fused_elementwise", 0) > 0
    assert len(fused.nodes) < len(plain.nodes)
    rng = np.random.default_rng(0)
    graph = from_onnx(model)
    feeds = []
    for v in graph.inputs:
        shape = [d if isinstance(d, int) else 3 for d in v.shape]
        feeds.append(rng.integers(0, 2, shape) if v.dtype == "int64" else
                     rng.standard_normal(shape).astype(np.float32))
    for want, got in zip(evaluate(plain, feeds), evaluate(fused, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    vms = [VirtualMachine(build(model, opt_level=level), relaxvm.cpu()) for level in (1, 2)]
    outs = [vm["main"](*feeds) for vm in vms]
    for a, b in zip(*(o if isinstance(o, tuple) else (o,) for o in outs)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
