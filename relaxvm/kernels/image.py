"""Kernels for the image op family (filled in)."""
