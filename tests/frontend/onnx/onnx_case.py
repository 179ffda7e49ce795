"""One helper for converter tests: a single-node ONNX model, run three ways.

``check_node`` builds the model, runs it with onnxruntime (the oracle), with the
compiler's graph evaluator on ``from_onnx``'s graph, and with ``build`` + the
VirtualMachine, and compares all three (exactly for integers and bools).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine

NP_TO_ONNX = {np.dtype(k): v for k, v in {
    "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
    "int64": TensorProto.INT64, "int32": TensorProto.INT32, "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8, "bool": TensorProto.BOOL}.items()}


def make_model(op_type: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None,
               initializers: dict[str, np.ndarray] | None = None, n_outputs: int = 1,
               opset: int = 17, input_names: Sequence[str] | None = None,
               dynamic: dict[str, Sequence[Any]] | None = None) -> onnx.ModelProto:
    """A model with one node; ``input_names`` orders the node's inputs ('' = omitted),
    ``dynamic`` gives symbolic input shapes by input name."""
    initializers = initializers or {}
    names = list(input_names) if input_names is not None else [*inputs, *initializers]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, name=f"{op_type.lower()}_node", **(attrs or {}))
    dynamic = dynamic or {}
    graph_inputs = [helper.make_tensor_value_info(k, NP_TO_ONNX[v.dtype],
                                                  list(dynamic.get(k, v.shape)))
                    for k, v in inputs.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in initializers.items()]
    model = helper.make_model(
        helper.make_graph([node], "case", graph_inputs,
                          [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                           for o in outs], inits),
        opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return _typed_outputs(model, inputs)


def _typed_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> onnx.ModelProto:
    results = ReferenceEvaluator(model).run(None, feeds)
    del model.graph.output[:]
    for i, r in enumerate(results):
        r = np.asarray(r)
        model.graph.output.append(helper.make_tensor_value_info(
            f"y{i}", NP_TO_ONNX[r.dtype], None))
    return model


def run_all(model: onnx.ModelProto, feeds: dict[str, np.ndarray]
            ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(onnxruntime, graph evaluator, VM) outputs."""
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feeds)
    graph = from_onnx(model)
    evaluated = evaluate(graph, feeds)
    vm = VirtualMachine(build(model), relaxvm.cpu())
    got = vm["main"](**feeds)
    got = got if isinstance(got, tuple) else (got,)
    return expected, evaluated, [g.numpy() for g in got]


def assert_close(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray],
                 rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        want, got = np.asarray(want), np.asarray(got)
        assert got.shape == want.shape, (got.shape, want.shape)
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                       rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(got, want)


def check_node(op_type: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None,
               initializers: dict[str, np.ndarray] | None = None, rtol: float = 1e-5,
               atol: float = 1e-6, **kwargs: Any) -> None:
    """Build a one-node model and compare onnxruntime, the evaluator and the VM."""
    model = make_model(op_type, inputs, attrs, initializers, **kwargs)
    expected, evaluated, got = run_all(model, inputs)
    assert_close(expected, evaluated, rtol, atol)
    assert_close(expected, got, rtol, atol)
