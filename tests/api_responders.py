"""Small loopback HTTP responders for what a local model server does not do on demand: a rate-limit reply, a server
that never answers, and a streamed reply that can be slow, cut mid-reply, and records each request's Authorization
header and body (test helpers, not tests)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Responder:
    """Serves on 127.0.0.1 until closed; ``handler`` is a BaseHTTPRequestHandler subclass."""

    def __init__(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RateLimited(BaseHTTPRequestHandler):
    """429 with Retry-After and OpenAI's error body, as api.openai.com sends it."""

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                     "code": "rate_limit_exceeded"}}).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Silent(BaseHTTPRequestHandler):
    """Reads the request and says nothing for a long time."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(30)

    def log_message(self, *args):
        pass


class Streamed(BaseHTTPRequestHandler):
    """Streams an OpenAI chat reply as server-sent events, chunked as real servers send them: ``pieces`` with
    ``delay_s`` before each, then the finish and usage chunks and [DONE]. ``drop_at`` maps a request's number (from
    1) to the pieces it gets before the connection is cut. ``authorization`` collects each request's header and
    ``requests`` its JSON body (the messages, max_tokens, …). Make a class per test with ``streamed(...)``."""

    protocol_version = "HTTP/1.1"
    pieces: tuple[str, ...] = ("Paris", ".")
    delay_s = 0.0
    drop_at: dict[int, int] = {}
    authorization: list[str | None] = []
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802
        self.requests.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        self.authorization.append(self.headers.get("Authorization"))
        cut_after = self.drop_at.get(len(self.authorization))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index, piece in enumerate(self.pieces):
                if index == cut_after:
                    self.connection.shutdown(socket.SHUT_RDWR)  # mid-reply, mid-body: no end chunk
                    self.close_connection = True
                    return
                time.sleep(self.delay_s)
                self._event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self._event({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(self.pieces),
                                                  "total_tokens": 9 + len(self.pieces)}})
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except OSError:  # the client went away (it cancelled): nothing to finish
            self.close_connection = True

    def _event(self, fields: dict) -> None:
        event = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "test", **fields}
        self._chunk(f"data: {json.dumps(event)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args):
        pass


def streamed(**settings) -> type[Streamed]:
    """A Streamed handler class of its own (its own ``authorization`` and ``requests`` lists), with ``settings`` as
    class attributes."""
    return type("Streamed", (Streamed,), {"authorization": [], "requests": [], **settings})
