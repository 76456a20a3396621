"""LlamaDesk desktop app (PySide6). Never imports torch or other ML libraries: the engine process owns those."""
