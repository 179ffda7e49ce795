"""The NumPy graph evaluator (relaxvm/compiler/evaluate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from relaxvm.compiler.evaluate import evaluate
from relaxvm.errors import ArgumentError
from tests.compiler.graphs import GraphMaker, mlp_graph, mlp_reference


@pytest.mark.parametrize("batch", [1, 5])
def test_symbolic_graph_runs_at_any_batch_size(batch: int) -> None:
    g, params = mlp_graph("batch")
    x = np.random.default_rng(batch).standard_normal((batch, 8)).astype(np.float32)
    got, = evaluate(g, {"x": x})
    np.testing.assert_allclose(got, mlp_reference(x, params), rtol=1e-5, atol=1e-5)


def test_split_and_shape_values_nodes() -> None:
    g = GraphMaker()
    x = g.input("x", ("n", 6))
    a, b = g.multi("split", x, axis=1, sizes=(2, 4))
    dims = g.op("shape_values", values=(x.shape[0], 6), shape=(2,), dtype="int64")
    graph = g.done(b, dims)
    data = np.arange(18, dtype=np.float32).reshape(3, 6)
    got_b, got_dims = evaluate(graph, [data])
    np.testing.assert_array_equal(got_b, data[:, 2:])
    np.testing.assert_array_equal(got_dims, [3, 6])


def test_inconsistent_symbol_is_rejected() -> None:
    g = GraphMaker()
    x, y = g.input("x", ("n", 2)), g.input("y", ("n", 2))
    graph = g.done(g.op("add", x, y))
    with pytest.raises(ArgumentError, match=r"evaluate: input y expects float32\[n, 2\], got a "
                                            r"dimension of 4 where n is 3"):
        evaluate(graph, [np.zeros((3, 2), np.float32), np.zeros((4, 2), np.float32)])


def test_wrong_rank_and_missing_inputs_are_rejected() -> None:
    g, _ = mlp_graph()
    with pytest.raises(ArgumentError, match=r"input x expects float32\[4, 8\], got shape \[8\]"):
        evaluate(g, [np.zeros(8, np.float32)])
    with pytest.raises(ArgumentError, match=r"evaluate: missing inputs \['x'\]"):
        evaluate(g, {})
    with pytest.raises(ArgumentError, match="takes 1 inputs, got 2"):
        evaluate(g, [1, 2])
