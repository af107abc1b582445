"""Semantik: self-hosted semantic search over a team's own documents."""

__version__ = "0.1.0"
