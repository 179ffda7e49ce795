"""Quantization kernels with ONNX semantics (filled in by the quantization work)."""
