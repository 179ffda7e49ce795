"""Transpose folding into matmuls (relaxvm/compiler/passes/layout.py)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.compiler.passes.layout import fold_transposes
from relaxvm.compiler.passes.placement import place_devices
from relaxvm.models import example_inputs
from relaxvm.models.zoo import build_model
from relaxvm.vm import VirtualMachine
from tests.compiler.graphs import GraphMaker

rng = np.random.default_rng(3)


def attention_graph() -> tuple[GraphMaker, list[np.ndarray]]:
    """Heads split by transposes, K transposed twice, heads merged after P @ V."""
    g = GraphMaker()
    q, k, v = (g.input(n, (2, 5, 3, 4)) for n in "qkv")
    qh = g.op("transpose", q, perm=(0, 2, 1, 3))
    kh = g.op("transpose", g.op("transpose", k, perm=(0, 2, 1, 3)), perm=(0, 1, 3, 2))
    vh = g.op("transpose", v, perm=(0, 2, 1, 3))
    scores = g.op("softmax", g.op("matmul", qh, kh), axis=-1)
    merged = g.op("transpose", g.op("matmul", scores, vh), perm=(0, 2, 1, 3))
    g.done(merged)
    feeds = [rng.standard_normal((2, 5, 3, 4)).astype(np.float32) for _ in range(3)]
    return g, feeds


def test_attention_transposes_fold_into_two_permuted_matmuls() -> None:
    g, feeds = attention_graph()
    expected = evaluate(g.graph, feeds)[0]
    place_devices(g.graph, [relaxvm.cpu(0)])
    fold_transposes(g.graph)
    ops = [n.op for n in g.graph.nodes]
    assert ops == ["matmul_permuted", "softmax", "matmul_permuted"]
    qk, _, pv = g.graph.nodes
    assert qk.attrs["a_perm"] == (0, 2, 1, 3) and qk.attrs["b_perm"] == (0, 2, 3, 1)
    assert pv.attrs["b_perm"] == (0, 2, 1, 3) and pv.attrs["out_perm"] == (0, 2, 1, 3)
    assert "a_perm" not in pv.attrs
    np.testing.assert_allclose(evaluate(g.graph, feeds)[0], expected, rtol=1e-6, atol=1e-6)
    got = VirtualMachine(build(g.graph), relaxvm.cpu())["main"](*feeds).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_transposes_with_other_readers_or_no_unit_stride_axis_stay() -> None:
    g = GraphMaker()
    x = g.input("x", (4, 3, 2))
    w = g.input("w", (4, 2, 3))
    shared = g.op("transpose", x, perm=(0, 2, 1))       # also returned: must stay
    out = g.op("matmul", shared, g.input("z", (4, 3, 6)))
    strided = g.op("transpose", w, perm=(2, 0, 1))      # (3, 4, 2): no unit-stride axis left
    other = g.op("matmul", strided, g.input("y", (3, 2, 5)))
    g.done(out, shared, other)
    feeds = [rng.standard_normal(v.shape).astype(np.float32) for v in g.graph.inputs]
    expected = evaluate(g.graph, feeds)
    place_devices(g.graph, [relaxvm.cpu(0)])
    fold_transposes(g.graph)
    assert [n.op for n in g.graph.nodes] == ["transpose", "matmul", "transpose", "matmul"]
    for got, want in zip(evaluate(g.graph, feeds), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_zoo_transformer_keeps_onnxruntime_outputs_with_no_attention_transposes_left() -> None:
    model = build_model("bert", "tiny")
    feeds = example_inputs(model)
    exe = build(model, shape_dict={k: v.shape for k, v in feeds.items()})
    assert "call  transpose " not in exe.as_text() and "matmul_permuted" in exe.as_text()
    outs = VirtualMachine(exe, relaxvm.cpu())["main"](**feeds)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    ref = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    for o, r in zip(outs, ref, strict=True):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-4, atol=1e-5)
