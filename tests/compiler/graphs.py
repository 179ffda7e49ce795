"""Hand-built graphs for compiler tests: ``GraphMaker`` appends typed nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.ops import infer_types


class GraphMaker:
    """Builds a Graph node by node, inferring every output type."""

    def __init__(self) -> None:
        self.graph = Graph("main")
        self.count = 0

    def input(self, name: str, shape: Sequence[Any], dtype: str = "float32") -> Value:
        v = Value(name, shape, dtype)
        self.graph.inputs.append(v)
        return v

    def const(self, data: Any) -> Value:
        self.count += 1
        return Value(f"c{self.count}", data=np.asarray(data))

    def op(self, op: str, *inputs: Value | None, **attrs: Any) -> Value:
        return self.multi(op, *inputs, **attrs)[0]

    def multi(self, op: str, *inputs: Value | None, **attrs: Any) -> list[Value]:
        types = infer_types(op, list(inputs), attrs)
        outs = []
        for shape, dtype in types:
            self.count += 1
            outs.append(Value(f"v{self.count}", shape, dtype))
        self.graph.nodes.append(Node(op, list(inputs), outs, attrs, name=f"{op}{self.count}"))
        return outs

    def done(self, *outputs: Value) -> Graph:
        self.graph.outputs = list(outputs)
        self.graph.validate()
        return self.graph


def mlp_graph(batch: Any = 4) -> tuple[Graph, list[np.ndarray]]:
    """x @ w1 + b1 -> relu -> * 0.5 -> @ w2: a graph with a fusible chain."""
    rng = np.random.default_rng(0)
    g = GraphMaker()
    x = g.input("x", (batch, 8))
    w1, b1 = rng.standard_normal((8, 16)).astype(np.float32), rng.standard_normal(16)
    w2 = rng.standard_normal((16, 3)).astype(np.float32)
    h = g.op("matmul", x, g.const(w1))
    h = g.op("add", h, g.const(b1.astype(np.float32)))
    h = g.op("relu", h)
    h = g.op("multiply", h, g.const(np.float32(0.5)))
    y = g.op("matmul", h, g.const(w2))
    return g.done(y), [w1, b1, w2]


def mlp_reference(x: np.ndarray, params: list[np.ndarray]) -> np.ndarray:
    w1, b1, w2 = (p.astype(np.float64) for p in params)
    return (np.maximum(x.astype(np.float64) @ w1 + b1, 0) * 0.5) @ w2
