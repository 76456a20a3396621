"""What a JSON parse error means, in words: Python's messages ("Expecting value", "Extra data") name the parser's
state, not the mistake a person made in the file."""

from __future__ import annotations

import json

# Python's message (its start) → what is wrong at that place, in words.
_WORDS = (
    ("Expecting value", "a value is missing (or a stray comma, or a quote that is not a straight double quote)"),
    ("Expecting ',' delimiter", "a comma is missing between two items"),
    ("Expecting ':' delimiter", "a colon is missing after a key"),
    ("Expecting property name enclosed in double quotes", "a key is not in double quotes (or a comma is left over "
                                                          "before a closing brace)"),
    ("Unterminated string", "a text value is not closed with a double quote"),
    ("Invalid control character", "a text value holds a raw line break or tab (write it as \\n or \\t)"),
    ("Invalid \\escape", "a backslash starts an escape JSON does not know (write a backslash as \\\\)"),
    ("Extra data", "more JSON follows the first value (one object per line is JSON Lines: name the file .jsonl)"),
)


def in_words(exc: json.JSONDecodeError) -> str:
    """e.g. "a value is missing (…)"; Python's own message for anything not listed."""
    return next((words for start, words in _WORDS if exc.msg.startswith(start)), exc.msg)
