"""Runs the engine (same arguments as ``python -m engine``) with an audit hook that records every attempt to reach
another machine: a name lookup, an outgoing connection or datagram from Python code (the hub client, httpx,
requests, urllib and the rest all go through these). Each attempt is appended to $LLAMADESK_TEST_NETWORK_LOG as a
JSON line; nothing is blocked, so a library that would have gone out is caught in the act, not made to fail."""

from __future__ import annotations

import json
import os
import socket
import sys

LOG = os.environ["LLAMADESK_TEST_NETWORK_LOG"]
EVENTS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
          "socket.connect", "socket.sendto", "socket.sendmsg"}


def _local(event: str, args: tuple) -> bool:
    """A Unix socket or a loopback address talks to this machine only."""
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg") and args:
        sock = args[0]
        if getattr(sock, "family", None) == getattr(socket, "AF_UNIX", None):
            return True
        address = args[-1] if event != "socket.connect" else args[1]
        host = address[0] if isinstance(address, tuple) and address else address
        return isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost"))
    if event.startswith("socket.gethostby") or event == "socket.getaddrinfo":
        host = args[0] if args else None
        return host in (None, "localhost", "127.0.0.1", "::1") or (isinstance(host, bytes) and host == b"localhost")
    return False


def _hook(event: str, args: tuple) -> None:
    if event in EVENTS and not _local(event, args):
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"event": event, "args": [repr(a) for a in args[1:] or args]}) + "\n")


sys.addaudithook(_hook)

from engine.cli import main  # noqa: E402 - after the hook, so nothing the engine imports escapes it

sys.exit(main(sys.argv[1:]))
