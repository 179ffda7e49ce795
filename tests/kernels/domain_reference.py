"""onnx.reference for one node of a non-default ONNX domain (ai.onnx.ml, training)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import helper
from onnx.reference import ReferenceEvaluator


def domain_reference(op: str, domain: str, version: int, inputs: Sequence[tuple[str, Any]],
                     n_outputs: int = 1, **attrs: Any) -> list[np.ndarray]:
    """Run ``domain.op`` (imported at ``version``) on (name, value) inputs with
    onnx.reference; returns every output."""
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, [n for n, _ in inputs], outs, domain=domain, **attrs)
    infos = [helper.make_tensor_value_info(
        name, helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype), np.shape(value))
        for name, value in inputs]
    graph = helper.make_graph([node], "g", infos,
                              [helper.make_empty_tensor_value_info(o) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version),
                                                    helper.make_opsetid("", 19)])
    feeds = {name: np.asarray(value) for name, value in inputs}
    return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]
