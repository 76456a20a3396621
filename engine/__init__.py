"""LlamaDesk engine: data, models and training. Imports no torch at module level (see ARCHITECTURE.md)."""

__version__ = "0.1.0"
