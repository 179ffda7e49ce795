"""Questions asked of a built model: which ops, how many parameters, what inputs to feed.

``example_inputs`` works on any ONNX model: it resolves symbolic dimensions from the
``batch`` argument and from ``relaxvm.dim.<name>`` metadata that zoo models carry, and
draws integer inputs from the ``relaxvm.range.<input>`` metadata ([low, high)), so token
ids are valid vocabulary indices and attention masks are all ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper

from relaxvm.errors import ArgumentError
from relaxvm.models.graph_builder import DIM_KEY, RANGE_KEY


def _check_model(func: str, model: object) -> onnx.ModelProto:
    if not isinstance(model, onnx.ModelProto):
        raise ArgumentError(f"{func}: model must be an onnx.ModelProto, "
                            f"got {type(model).__name__}")
    return model


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of the subgraphs inside its attributes (If, Loop, Scan)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                yield from _nodes(sub)


def model_ops(model: onnx.ModelProto) -> list[str]:
    """The sorted, distinct op types a model uses, subgraphs included."""
    return sorted({node.op_type for node in _nodes(_check_model("model_ops", model).graph)})


def count_params(model: onnx.ModelProto) -> int:
    """Number of scalar weights in the initializers (zoo models keep constants in nodes)."""
    graph = _check_model("count_params", model).graph
    return sum(int(np.prod(init.dims, dtype=np.int64)) for init in graph.initializer)


def _shape(name: str, tensor_type: onnx.TypeProto.Tensor, meta: dict[str, str],
           batch: int) -> tuple[int, ...]:
    dims = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        elif dim.dim_param == "batch":
            dims.append(batch)
        elif DIM_KEY + dim.dim_param in meta:
            dims.append(int(meta[DIM_KEY + dim.dim_param]))
        else:
            raise ArgumentError(
                f"example_inputs: input {name!r} dimension {dim.dim_param or '?'!r} must be "
                f"'batch' or have metadata '{DIM_KEY}{dim.dim_param or '<name>'}', got "
                "neither")
    return tuple(dims)


def _fill(rng: np.random.Generator, name: str, dtype: np.dtype, shape: tuple[int, ...],
          meta: dict[str, str]) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return np.ones(shape, dtype=bool)
    if np.issubdtype(dtype, np.integer):
        default = "1,2" if "mask" in name.lower() else "0,1"
        low, high = (int(v) for v in meta.get(RANGE_KEY + name, default).split(","))
        return rng.integers(low, high, size=shape, dtype=dtype)
    raise ArgumentError(f"example_inputs: input {name!r} must have a numeric or bool "
                        f"element type, got {dtype}")


def example_inputs(model: onnx.ModelProto, seed: int = 0,
                   batch: int = 1) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input: floats ~N(0, 1) (images, past key/values),
    integers from the input's metadata range (valid token ids; masks of ones), bools true."""
    _check_model("example_inputs", model)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArgumentError(f"example_inputs: batch must be a positive int, got {batch!r}")
    meta = {prop.key: prop.value for prop in model.metadata_props}
    weights = {init.name for init in model.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        if value.name in weights:   # IR < 4 models list initializers as inputs too
            continue
        tensor_type = value.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        shape = _shape(value.name, tensor_type, meta, batch)
        feeds[value.name] = _fill(rng, value.name, dtype, shape, meta)
    return feeds
