"""Inference rules for the recurrent op family (filled in)."""
