"""Converters for ONNX quantization ops (filled in)."""
