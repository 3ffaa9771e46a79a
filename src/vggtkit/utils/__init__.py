"""Neutral helpers shared across the package: atomic file writes, dtype names, memory measurement."""
