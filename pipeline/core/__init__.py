"""The base layer: value types and box geometry, one-line errors, config I/O, shared-folder and device lookup.

Every other part of the project may import these modules; they import nothing else of the project
(tests/test_architecture.py enforces it, docs/architecture.md states the rule). No import-time side effects.
"""
