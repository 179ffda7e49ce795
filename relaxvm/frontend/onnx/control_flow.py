"""Converters for ONNX control flow: If, Loop, Scan (filled in)."""
