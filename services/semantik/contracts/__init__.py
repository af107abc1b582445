"""Contracts between Semantik's processes: what crosses a wire or a queue, and the model table.

Modules here import nothing of the database or the HTTP frameworks (pydantic and the standard library
only), so the gateway, worker, embedder and operator can share them without importing one another.
"""
