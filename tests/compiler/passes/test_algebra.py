"""Strength reduction of power by constant exponents (relaxvm/compiler/passes/algebra.py)."""

from __future__ import annotations

import numpy as np
import pytest

from relaxvm.compiler import evaluate
from relaxvm.compiler.passes.algebra import CHAINS, fold_batch_norm, reduce_strength
from tests.compiler.graphs import GraphMaker


def power_graph(exponent: float, x_shape: tuple = (3, 4), e_shape: tuple = (),
                dtype: str = "float32"):
    g = GraphMaker()
    x = g.input("x", x_shape, dtype)
    e = g.const(np.full(e_shape, exponent, dtype))
    return g.done(g.op("power", x, e))


@pytest.mark.parametrize("exponent", sorted(CHAINS))
def test_power_by_small_exponent_becomes_cheap_ops_with_the_same_numbers(
        exponent: float) -> None:
    x = np.abs(np.random.default_rng(0).standard_normal((3, 4))).astype(np.float32) + 0.1
    want = np.power(x.astype(np.float64), exponent)
    graph = reduce_strength(power_graph(exponent))
    assert "power" not in graph.op_counts()
    np.testing.assert_allclose(evaluate(graph, [x])[0], want, rtol=1e-6)


@pytest.mark.parametrize("exponent, x_shape, e_shape, dtype", [
    (2.5, (3, 4), (), "float32"),        # no cheap chain
    (2.0, (3, 4), (1, 1, 1), "float32"),  # the exponent broadcasts x to a higher rank
    (2.0, (3, 4), (), "int64"),          # integer power keeps its own kernel
])
def test_other_powers_are_left_alone(exponent, x_shape, e_shape, dtype) -> None:
    graph = reduce_strength(power_graph(exponent, x_shape, e_shape, dtype))
    assert graph.op_counts() == {"power": 1}


def test_the_rewritten_chain_writes_the_original_output_value() -> None:
    graph = power_graph(3.0)
    out = graph.outputs[0]
    reduce_strength(graph)
    assert [n.op for n in graph.nodes] == ["multiply", "multiply"]
    assert graph.nodes[-1].outputs[0] is out and graph.outputs[0] is out
    graph.validate()


def conv_bn_graph(with_bias: bool, extra_reader: bool = False):
    rng = np.random.default_rng(5)
    g = GraphMaker()
    x = g.input("x", (1, 3, 6, 6))
    w = g.const(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    b = g.const(rng.standard_normal(4).astype(np.float32)) if with_bias else None
    y = g.op("conv2d", x, w, b, pads=(1, 1, 1, 1))
    params = [g.const(rng.standard_normal(4).astype(np.float32)),
              g.const(rng.standard_normal(4).astype(np.float32)),
              g.const(rng.standard_normal(4).astype(np.float32)),
              g.const(rng.uniform(0.5, 2.0, 4).astype(np.float32))]
    z = g.op("batch_norm", y, *params, epsilon=1e-3)
    outs = [g.op("relu", z)] + ([g.op("abs", y)] if extra_reader else [])
    return g.done(*outs)


@pytest.mark.parametrize("with_bias", [True, False])
def test_batch_norm_after_conv_folds_into_its_weights(with_bias: bool) -> None:
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    want = evaluate(conv_bn_graph(with_bias), [x])[0]
    graph = fold_batch_norm(conv_bn_graph(with_bias))
    assert [n.op for n in graph.nodes] == ["conv2d", "relu"]
    graph.validate()
    np.testing.assert_allclose(evaluate(graph, [x])[0], want, rtol=1e-5, atol=1e-5)


def test_batch_norm_is_kept_when_the_conv_output_has_other_readers() -> None:
    graph = fold_batch_norm(conv_bn_graph(True, extra_reader=True))
    assert graph.op_counts()["batch_norm"] == 1
