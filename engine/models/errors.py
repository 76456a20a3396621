"""The one error type model sources raise: what went wrong, where, and what the user can do about it."""

from __future__ import annotations


class ModelSourceError(Exception):
    def __init__(self, message: str, *, where: str = "", hint: str = "", kind: str = "model"):
        super().__init__(message)
        self.message, self.where, self.hint, self.kind = message, where, hint, kind

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  → {self.hint}" if self.hint else text

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "where": self.where, "hint": self.hint}
