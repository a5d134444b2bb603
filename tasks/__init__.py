"""Reusable operations (they decide) and pure command builders (they only build text)."""
