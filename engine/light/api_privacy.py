"""The one privacy question before text leaves this computer for an API model: its wording, and the memory of who
agreed to what in this session. The Chat page's API column, the Runs page's batch comparison and the command line
all ask through it; only how the question is put (a dialog, a terminal prompt, ``--yes``) differs."""

from __future__ import annotations

from typing import Callable

from engine.light.api_chat import Endpoint

Ask = Callable[[Endpoint, str], bool]  # (endpoint, the question's text) -> the user's yes


def notice(endpoint: Endpoint, what: str = "this conversation") -> str:
    """The question: what goes where, and that nothing is sent without a yes."""
    return (f"{what[:1].upper() + what[1:]} will be sent to {endpoint.host} ({endpoint.base_url}), off this computer. "
            f"The provider receives the text and handles it under its own terms. Nothing is sent to an API model "
            f"unless you say so here; a server on this computer (127.0.0.1, localhost) is never asked about.\n\n"
            f"Send to {endpoint.host}?")


class Consent:
    """Asks once per endpoint and session; a loopback endpoint is never asked about. ``ask`` puts the question."""

    def __init__(self, ask: Ask | None):
        self._ask = ask
        self._allowed: set[str] = set()  # base URLs the user agreed to send to in this session

    def allows(self, endpoint: Endpoint, what: str = "this conversation") -> bool:
        if endpoint.is_local() or endpoint.base_url in self._allowed:
            return True
        if self._ask is not None and self._ask(endpoint, notice(endpoint, what)):
            self._allowed.add(endpoint.base_url)
            return True
        return False
