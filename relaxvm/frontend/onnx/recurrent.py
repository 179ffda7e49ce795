"""Converters for the recurrent op family (filled in)."""
