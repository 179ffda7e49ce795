"""Run one ONNX model two independent ways (onnxruntime and onnx.reference) and compare.

Two implementations agreeing is the oracle for the zoo graphs; NumPy float64 is the oracle
for the building blocks (see test_layers.py).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator

RTOL = 1e-4
ATOL = 1e-5


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by name from onnxruntime's CPU provider."""
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def run_reference(model: onnx.ModelProto,
                  feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by name from onnx's pure-Python reference evaluator."""
    names = [o.name for o in model.graph.output]
    return dict(zip(names, ReferenceEvaluator(model).run(names, feeds), strict=True))


def assert_agree(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal to 1e-4 relative (1e-5 absolute for values near zero)."""
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer as a NumPy array, by name."""
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
