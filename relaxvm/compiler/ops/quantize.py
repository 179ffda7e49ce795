"""Inference rules for quantization ops (filled in)."""
