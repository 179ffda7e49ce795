"""Inference rules for scatter / gather-by-index / selection ops (filled in)."""
