"""Strength reduction of power by constant exponents (relaxvm/compiler/passes/algebra.py)."""

from __future__ import annotations

import numpy as np
import pytest

from relaxvm.compiler import evaluate
from relaxvm.compiler.passes.algebra import CHAINS, reduce_strength
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
