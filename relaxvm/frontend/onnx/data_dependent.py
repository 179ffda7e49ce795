"""Converters for the data_dependent op family (filled in)."""
