"""Scatter and gather-by-index kernels with ONNX semantics (filled in by the scatter work)."""
