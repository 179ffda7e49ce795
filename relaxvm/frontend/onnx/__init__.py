"""The ONNX frontend: ``from_onnx(model_or_path, shape_dict=None) -> Graph``.

Converters live in one module per op family (elementwise, nn, linalg, reduce, shape,
index, scatter, quantize, recurrent, signal, image, data_dependent, ml for the
ai.onnx.ml and preview-training domains, control_flow for If / Loop / Scan, and
sequence for sequences and optionals resolved at compile time);
:func:`supported_ops` lists every ONNX op type they cover.
"""

from relaxvm.frontend.onnx.importer import from_onnx, load_model
from relaxvm.frontend.onnx.registry import supported_ops

__all__ = ["from_onnx", "load_model", "supported_ops"]
