"""Converters for ONNX scatter / gather-by-index / selection ops (filled in)."""
