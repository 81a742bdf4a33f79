"""
A small hostile HTTP server on loopback: it answers exactly what a test scripts, however wrong.

The simulator is a well-behaved Fastly; this one redirects to other hosts, trickles bodies a byte at a
time, echoes the token, sends endless pages or malformed JSON. It records every request it receives,
headers included, so a test can check which host saw the token::

    with HostileServer() as api:
        api.script(Answer(302, headers={"Location": other.url + "/x"}))
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


@dataclass
class Answer:
    """
    One scripted answer.

    :param status: the HTTP status.
    :param body: the body, or a function of the request's path and query that returns it.
    :param headers: extra headers (``Content-Type`` defaults to JSON).
    :param trickle: seconds to wait between bytes of the body (a slow-loris answer).
    :param trickle_head: trickle the status line and headers too.
    :param length: the ``Content-Length`` to announce; default the body's. With ``chunks``, ``None``
        announces none: the body ends when the server closes the connection.
    :param chunks: a function returning the body piece by piece, for bodies too large to hold (made as
        they are sent, so 200 MB never sit in memory); replaces ``body``.
    """

    status: int = 200
    body: bytes | Callable[[str, dict[str, str]], bytes] = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0
    trickle_head: bool = False
    length: int | None = None
    chunks: Callable[[], Iterable[bytes]] | None = None


@dataclass(frozen=True)
class Seen:
    """A request as the server received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    port: int
    """The client's port: one port for many requests means one reused connection."""


class HostileServer:
    """
    An HTTP server on ``127.0.0.1`` answering from a script: each request takes the next answer, and
    the last one repeats once the script runs out.
    """

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque([Answer(404, b'{"msg": "nothing scripted"}')])
        self.seen: list[Seen] = []
        self.sent = 0  # body bytes written so far: shows when a client stopped reading
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def connection(self, token: str = "hostile-test-token", **extra: Any) -> dict[str, Any]:
        """The JSON form of a ``fastly`` connection to this server."""
        return {"conn_type": "fastly", "host": self.url, "password": token, "extra": extra}

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers`` in order; the last repeats."""
        with self._lock:
            self.answers = deque(answers)

    def next_answer(self) -> Answer:
        with self._lock:
            return self.answers.popleft() if len(self.answers) > 1 else self.answers[0]

    def tokens_seen(self) -> set[str]:
        """Every ``Fastly-Key`` value this server received."""
        return {v for s in self.seen for k, v in s.headers.items() if k.lower() == "fastly-key"}

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="hostile", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(server: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``server.seen``."""

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            with server._lock:
                server.seen.append(Seen(url.path, query, dict(self.headers.items()), self.client_address[1]))
            answer = server.next_answer()
            body = answer.body(url.path, query) if callable(answer.body) else answer.body
            pieces = answer.chunks() if answer.chunks else [body]
            self.send_response(answer.status)
            headers = {"Content-Type": "application/json", **answer.headers}
            if answer.length is not None or not answer.chunks:
                headers["Content-Length"] = str(len(body) if answer.length is None else answer.length)
            else:
                headers["Connection"] = "close"
                self.close_connection = True
            try:
                self._head(answer, headers)
                for piece in pieces:
                    _write(self.wfile, piece, answer.trickle)
                    with server._lock:
                        server.sent += len(piece)
            except OSError:
                self.close_connection = True  # the client gave up, as it should

        def _head(self, answer: Answer, headers: dict[str, str]) -> None:
            for name, value in headers.items():
                self.send_header(name, value)
            if not answer.trickle_head:
                self.end_headers()
                return
            self._headers_buffer.append(b"\r\n")
            head, self._headers_buffer = b"".join(self._headers_buffer), []
            _write(self.wfile, head, answer.trickle)

    return Handler


def _write(out: Any, body: bytes, trickle: float) -> None:
    if not trickle:
        out.write(body)
        return
    for byte in _bytes(body):
        out.write(byte)
        out.flush()
        time.sleep(trickle)


def _bytes(body: bytes) -> Iterable[bytes]:
    return (body[i : i + 1] for i in range(len(body)))
