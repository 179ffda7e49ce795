"""Inference rules for the image op family (filled in)."""
