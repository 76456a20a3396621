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
    """The dataset as a whole cannot be used. ``where`` names the file (and position)."""

    kind = "dataset"
