"""Converters for the image op family (filled in)."""
