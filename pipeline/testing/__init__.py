"""Helpers that drive real local services for tests and tools (nothing here is imported by the pipeline)."""
