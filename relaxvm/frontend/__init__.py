"""Model importers: ONNX today (:func:`from_onnx`)."""

from relaxvm.frontend.onnx import from_onnx, supported_ops

__all__ = ["from_onnx", "supported_ops"]
