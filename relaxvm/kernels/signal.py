"""Kernels for the signal op family (filled in)."""
