"""Kernels for the recurrent op family (filled in)."""
