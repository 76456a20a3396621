"""Errors a user can act on: what went wrong, where (file, row, field, folder), and what to do about it."""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors shown to the user as one message: ``where: message`` and, on its own line, the hint."""

    kind = "error"

    def __init__(self, message: str, *, where: str = "", hint: str = "", kind: str | None = None):
        super().__init__(message)
        self.message, self.where, self.hint = message, where, hint
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  → {self.hint}" if self.hint else text

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "where": self.where, "hint": self.hint}


class ModelSourceError(UserError):
    """A model cannot be found, fetched or used."""

    kind = "model"


class DatasetError(UserError):
    """The dataset as a whole cannot be used. ``where`` names the file (and position). ``columns``: the file's
    columns, when the problem is which of them to use (the window then offers a picker per field)."""

    kind = "dataset"

    def __init__(self, message: str, *, where: str = "", hint: str = "", columns: list[str] | None = None):
        super().__init__(message, where=where, hint=hint)
        self.columns = columns

    def to_dict(self) -> dict:
        found = super().to_dict()
        if self.columns is not None:
            found["columns"] = list(self.columns)
        return found
