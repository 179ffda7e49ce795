"""Inference rules for the signal op family (filled in)."""
