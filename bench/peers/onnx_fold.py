"""Freeze a model's input shapes and fold the shape arithmetic that hangs off them.

TVM's relax ONNX importer loses static shapes through ``Shape -> Gather -> Range`` chains
(BERT's and GPT-2's position ids), then refuses the ``Reshape`` that follows. Exporters
usually hand TVM a graph with those chains already folded; this module does the same,
and only that: input dims become the example's concrete sizes, ``Shape`` of a tensor
whose shape ONNX shape inference knows becomes a constant, and every node whose inputs
are all constants is evaluated once (with ``onnx.reference``) and replaced by its value.
Nothing else is rewritten, so the peer still runs every real layer op.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

# Ops whose output is cheap to precompute and whose folding never duplicates weights.
FOLDABLE = frozenset({"Constant", "Shape", "Gather", "Add", "Sub", "Mul", "Div", "Range",
                      "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Equal", "Where",
                      "ConstantOfShape", "Expand", "Reshape"})
# Constants larger than this stay in the graph as computations, not as folded data.
MAX_FOLDED_ELEMENTS = 1 << 16


def freeze_inputs(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]]
                  ) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs named in ``shapes`` have those concrete dims."""
    frozen = onnx.ModelProto()
    frozen.CopyFrom(model)
    for value in frozen.graph.input:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, shapes[value.name], strict=True):
            dim.Clear()
            dim.dim_value = int(size)
    return frozen


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.type.HasField("tensor_type") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _shape_value(node: onnx.NodeProto, dims: tuple[int, ...]) -> np.ndarray:
    """What ``Shape`` (with its optional start / end attributes) returns for ``dims``."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return np.array(dims[attrs.get("start", 0):attrs.get("end", None)], dtype=np.int64)


def _evaluate(node: onnx.NodeProto, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    inputs = [helper.make_tensor_value_info(n, 0, None) for n in node.input if n]
    outputs = [helper.make_tensor_value_info(n, 0, None) for n in node.output]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    opset = [helper.make_opsetid("", 17)]
    session = ReferenceEvaluator(helper.make_model(graph, opset_imports=opset))
    return list(session.run(None, {n: values[n] for n in node.input if n}))


def fold_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` (inputs already frozen) with its shape arithmetic precomputed."""
    shapes = _static_shapes(model)
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer
              if int(np.prod(init.dims)) <= MAX_FOLDED_ELEMENTS}
    kept, folded = [], {}
    for node in model.graph.node:
        result = None
        if node.op_type == "Shape" and node.input[0] in shapes:
            result = [_shape_value(node, shapes[node.input[0]])]
        elif node.op_type in FOLDABLE and all(n in values for n in node.input if n):
            result = _evaluate(node, values)
        if result is None or any(r.size > MAX_FOLDED_ELEMENTS for r in result):
            kept.append(node)
            continue
        for name, array in zip(node.output, result, strict=True):
            values[name] = folded[name] = np.asarray(array)
    return _assemble(model, kept, folded)


def _assemble(model: onnx.ModelProto, nodes: list[onnx.NodeProto],
              folded: dict[str, np.ndarray]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    used = {n for node in nodes for n in node.input} | {o.name for o in out.graph.output}
    constants = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(a))
                 for name, a in folded.items() if name in used]
    out.graph.node.extend(constants + nodes)
    return out
