"""
The guarded request path to Fastly's API, shared by the sync hook (requests) and triggers (httpx).

It knows HTTP and Fastly's conventions, not Airflow: connection settings, exact JSON, error decoding,
one retry decision (:func:`next_step`) that both request loops follow and log alike, and the guards
every request runs under:

- redirects are never followed: a 3xx is an error naming the target host, so the token in
  ``Fastly-Key`` reaches no host but the configured one;
- each attempt has a total ``deadline`` covering connect, headers and the whole body, retried like a
  timeout; a body trickled a byte at a time cannot hold a task for hours;
- JSON answers are streamed and refused past ``max_body_bytes`` (downloads stream without a cap);
- the token is masked as ``***`` in any text an error carries, even when the API echoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import random
import re
import socket
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

from airflow_provider_fastly_billing.exceptions import FastlyApiError, FastlyAuthError, FastlyNotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    import httpx
    import requests

T = TypeVar("T")


class RetryLog(Protocol):
    """What the request loops log to: a stdlib ``logging.Logger`` or a hook's structlog ``self.log``."""

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


DEFAULT_BASE_URL = "https://api.fastly.com"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_WAIT = 60.0
DEADLINE_PER_TIMEOUT = 4
"""The default ``deadline`` is this many ``timeout``\\ s: room for a large body, not for a trickle."""
DEFAULT_MAX_BODY_BYTES = 64 << 20
"""64 MiB: a year of a large reseller's invoices fits many times over."""
DEFAULT_STREAM_BODY_BYTES = 32 << 20
"""32 MiB: a larger JSON answer is decoded a part of its items at a time (:func:`read_json_parts`)."""
PART_ITEMS = 10_000
"""Items per part of a large answer: about 20 MB of dicts at a time, enough for Arrow to convert in bulk."""
MAX_DEPTH = 64
"""Fastly's answers nest about 6 deep; anything beyond this is refused, never a ``RecursionError``."""
ERROR_BODY_BYTES = 64 << 10
CHUNK_SIZE = 1 << 20
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BASE_DELAY = 1.0
JSON = "application/json"
ACCEPT = {"csv": "text/csv", "pdf": "application/pdf", "json": JSON}


class DeadlineExceeded(Exception):
    """An attempt ran past its total deadline; retried like a timeout."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """What a request needs from the connection; ``repr`` leaves the token out."""

    base_url: str
    token: str
    timeout: float
    max_retries: int
    max_wait: float
    deadline: float
    max_body_bytes: int
    stream_body_bytes: int = DEFAULT_STREAM_BODY_BYTES

    def __repr__(self) -> str:
        return (
            f"Settings(base_url={self.base_url!r}, timeout={self.timeout}, deadline={self.deadline}, "
            f"max_retries={self.max_retries}, max_body_bytes={self.max_body_bytes}, "
            f"stream_body_bytes={self.stream_body_bytes})"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Fastly-Key": self.token, "User-Agent": "airflow-provider-fastly-billing"}

    @property
    def host(self) -> str:
        """The API's host, as a user recognises it."""
        return urlsplit(self.base_url).netloc

    def mask(self, text: str) -> str:
        """``text`` with the token replaced by ``***``."""
        return text.replace(self.token, "***")


def settings_from(conn: Any, overrides: Mapping[str, Any], name: str | None = None) -> Settings:
    """
    Read and check the settings of a ``fastly`` connection; errors are ``ValueError``\\ s naming it.

    :param conn: an Airflow connection (anything with ``password``, ``host``, ``extra_dejson``, ``conn_id``).
    :param overrides: values given to the hook, which win over the connection's extras.
    :param name: how errors name the connection; default ``connection '<conn_id>'``.
    """
    label = name or f"connection {conn.conn_id!r}"
    extra = conn.extra_dejson
    token = conn.password or extra.get("token")
    if not token:
        raise ValueError(f"{label} has no API token (password or extra 'token')")
    base_url = (conn.host or DEFAULT_BASE_URL).rstrip("/")
    if "://" not in base_url:
        base_url = f"https://{base_url}"
    url = urlsplit(base_url)
    if url.scheme not in ("https", "http"):
        raise ValueError(f"{label}: API base URL must be https://, got {url.scheme}://")
    allow_http = str(extra.get("allow_insecure_http", "")).lower() in ("true", "1", "yes")
    if url.scheme == "http" and not (_is_loopback(url.hostname or "") or allow_http):
        raise ValueError(
            f"{label}: refusing to send the API token over plain http to {url.hostname}; "
            "use https, or set extra allow_insecure_http=true"
        )

    def pick(key: str, default: float, least: float) -> float:
        given: Any = next((v for v in (overrides.get(key), extra.get(key)) if v not in (None, "")), default)
        try:
            value = float(given)
        except (TypeError, ValueError):
            raise ValueError(f"{label}: {key} must be a number, got {given!r}") from None
        if not least <= value < float("inf"):
            raise ValueError(f"{label}: {key} must be at least {least:g}, got {given!r}")
        return value

    timeout = pick("timeout", DEFAULT_TIMEOUT, 0.001)
    return Settings(
        base_url=base_url,
        token=token,
        timeout=timeout,
        max_retries=int(pick("max_retries", DEFAULT_MAX_RETRIES, 0)),
        max_wait=pick("max_wait", DEFAULT_MAX_WAIT, 0),
        deadline=pick("deadline", DEADLINE_PER_TIMEOUT * timeout, 0.001),
        max_body_bytes=int(pick("max_body_bytes", DEFAULT_MAX_BODY_BYTES, 1)),
        stream_body_bytes=int(pick("stream_body_bytes", DEFAULT_STREAM_BODY_BYTES, 1)),
    )


def path_with_query(path: str, params: Mapping[str, str] | None) -> str:
    """The path and query a user reads in errors and logs."""
    return f"{path}?{urlencode(params)}" if params else path


# JSON


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the answer holds {name}, which is not a number (NaN and Infinity are refused)")


_NOT_SYNTAX = bytes(range(256)).translate(None, b'[]{}"\\')
_INNERMOST = re.compile(rb"\{\}|\[\]")


def _walk_within(data: Any, limit: int) -> bool:
    level = [data]
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return True
    return False


def _nesting_within(body: bytes, data: Any, limit: int) -> bool:
    """
    Whether ``data``, parsed from ``body``, nests at most ``limit`` deep.

    Read from the text's brackets when no string holds a bracket, a quote or an escape (Fastly's
    answers, at C speed: the hot path); else by walking ``data``.
    """
    skeleton = body.translate(None, _NOT_SYNTAX).replace(b'""', b"")
    if b'"' in skeleton or b"\\" in skeleton:
        return _walk_within(data, limit)
    for peeled in range(limit):
        if len(skeleton) <= 2 * (limit - peeled):  # n balanced brackets nest at most n / 2 deep
            return True
        skeleton = _INNERMOST.sub(b"", skeleton)  # one level off: the innermost pairs
    return not skeleton


def parse_json(body: bytes | str) -> Any:
    """
    Parse a Fastly JSON body: every number with a fraction an exact ``Decimal``.

    Raises ``ValueError`` with a clear message for invalid JSON, ``NaN``/``Infinity`` (never money)
    and nesting deeper than :data:`MAX_DEPTH`.
    """
    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"the answer nests deeper than {MAX_DEPTH} levels") from None
    if isinstance(data, (dict, list)):
        text = body.encode() if isinstance(body, str) else body
        if not _nesting_within(text, data, MAX_DEPTH):
            raise ValueError(f"the answer nests deeper than {MAX_DEPTH} levels")
    return data


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()  # type: ignore[union-attr]  # matches the empty string anywhere


def _expect_char(text: str, at: int, chars: str, what: str) -> int:
    """The offset of the character at ``at`` (after whitespace) if it is one of ``chars``; else a syntax error."""
    at = _skip(text, at)
    if text[at : at + 1] not in tuple(chars):
        raise json.JSONDecodeError(f"Expecting {what}", text, at)
    return at


def _value(text: str, at: int) -> tuple[Any, int]:
    """The JSON value at ``at`` and the offset after it, by the C scanner: exact, NaN and Infinity refused."""
    try:
        return _DECODER.raw_decode(text, at)
    except RecursionError:
        raise ValueError(f"the answer nests deeper than {MAX_DEPTH} levels") from None


def _item_spans(text: str, at: int, size: int) -> tuple[list[tuple[int, int]], int]:
    """
    The array at ``at`` checked item by item, as spans of the text of ``size`` items each; and the offset after it.

    Each run of items is decoded, checked for nesting (the array sits two levels deep) and dropped.
    """
    spans: list[tuple[int, int]] = []
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        return spans, at + 1
    start, items = at, []
    while True:
        item, at = _value(text, at)
        items.append(item)
        at = _expect_char(text, at, ",]", "',' delimiter")
        if len(items) == size or text[at] == "]":
            piece = f"[{text[start:at]}]".encode("utf-8", "surrogatepass")
            if not _nesting_within(piece, items, MAX_DEPTH - 1):
                raise ValueError(f"the answer nests deeper than {MAX_DEPTH} levels")
            spans.append((start, at))
            start, items = _skip(text, at + 1), []
        if text[at] == "]":
            return spans, at + 1
        at = _skip(text, at + 1)


def _split(text: str, key: str, size: int) -> tuple[Any, list[tuple[int, int]] | None]:
    """
    A JSON object checked whole, its ``key`` array left as spans of ``size`` items: ``(object, spans)``.

    The object holds ``[]`` at ``key``. Anything but an object with an array at ``key`` is parsed whole
    (``spans`` is ``None``). The checks and errors are those of :func:`parse_json`.
    """
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return parse_json(text), None
    header: dict[str, Any] = {}
    spans = None
    at = _skip(text, at + 1)
    closed = text.startswith("}", at)
    while not closed:
        at = _expect_char(text, at, '"', "property name enclosed in double quotes")
        name, at = json.decoder.scanstring(text, at + 1)  # type: ignore[attr-defined]
        at = _skip(text, _expect_char(text, at, ":", "':' delimiter") + 1)
        if name == key and text.startswith("[", at):
            header[name] = []
            spans, at = _item_spans(text, at, size)
        else:
            header[name], at = _value(text, at)
            spans = None if name == key else spans
        at = _expect_char(text, at, ",}", "',' delimiter")
        closed = text[at] == "}"
        at = at if closed else _skip(text, at + 1)
    if _skip(text, at + 1) != len(text):
        raise json.JSONDecodeError("Extra data", text, _skip(text, at + 1))
    if not _walk_within(header, MAX_DEPTH):
        raise ValueError(f"the answer nests deeper than {MAX_DEPTH} levels")
    return header, spans


def _parts(text: str, header: dict[str, Any], key: str, spans: list[tuple[int, int]]) -> Iterator[dict[str, Any]]:
    """The object once per span, holding that span's items at ``key``; the text is already checked."""
    for start, end in spans or [(0, 0)]:
        yield {**header, key: _DECODER.decode(f"[{text[start:end]}]")}


# Errors


def _error_text(body: bytes) -> tuple[str | None, str | None]:
    """Fastly's message and detail from any of its error shapes, or nothing if the body has none."""
    try:
        data = parse_json(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        data = data["errors"][0]
    if not isinstance(data, dict):
        return None, None
    msg = data.get("msg") or data.get("title")
    detail = data.get("detail")
    return (str(msg) if msg else None), (str(detail) if detail else None)


def api_error(
    status: int, path: str, body: bytes, content_type: str, reason: str = "", secret: str | None = None
) -> FastlyApiError:
    """Turn an error answer into the typed exception a user can read, ``secret`` masked."""
    msg, detail = _error_text(body)
    if msg is None:
        kind = content_type.split(";")[0] or "empty"
        msg = f"{reason or 'error'} (a {kind} body without a Fastly error message)"
    cls = {401: FastlyAuthError, 403: FastlyAuthError, 404: FastlyNotFoundError}.get(status, FastlyApiError)
    return cls(status, path, msg, detail, secret=secret)


def redirect_error(status: int, where: str, location: str, settings: Settings) -> FastlyApiError:
    """A 3xx, refused: it names the target host, and the token went nowhere."""
    target = urlsplit(urljoin(settings.base_url + "/", location)).netloc if location else ""
    return FastlyApiError(
        status,
        where,
        f"the API redirected to {target or 'an unnamed location'}; redirects are not followed, so the token "
        f"goes to {settings.host} only",
        secret=settings.token,
    )


def answer_error(
    status: int, where: str, headers: Mapping[str, str], body: bytes, reason: str, settings: Settings
) -> FastlyApiError:
    """The error for a final non-2xx answer: a refused redirect or Fastly's error."""
    if 300 <= status < 400:
        return redirect_error(status, where, _header(headers, "Location") or "", settings)
    return api_error(status, where, body, _header(headers, "Content-Type") or "", reason, settings.token)


def _decoding_error(exc: ValueError, status: int, path: str, content_type: str, secret: str | None) -> FastlyApiError:
    """Why a 2xx body is not a Fastly JSON answer, as a ``FastlyApiError``."""
    if isinstance(exc, UnicodeDecodeError):
        return FastlyApiError(status, path, "the answer is not UTF-8 JSON", secret=secret)
    if isinstance(exc, json.JSONDecodeError):
        kind = content_type.split(";")[0] or "untyped"
        return FastlyApiError(status, path, f"the answer is not valid JSON (a {kind} body)", secret=secret)
    return FastlyApiError(status, path, str(exc), secret=secret)


def _object(data: Any, status: int, path: str, secret: str | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise FastlyApiError(status, path, f"expected a JSON object, got {type(data).__name__}", secret=secret)
    return data


def decode(status: int, path: str, body: bytes | str, content_type: str, secret: str | None = None) -> dict[str, Any]:
    """A 2xx JSON body as a ``dict``, or a ``FastlyApiError`` saying why not."""
    try:
        data = parse_json(body)
    except ValueError as exc:
        raise _decoding_error(exc, status, path, content_type, secret) from None
    return _object(data, status, path, secret)


def json_answer(
    status: int, where: str, headers: Mapping[str, str], body: bytes, settings: Settings, pending_ok: bool
) -> dict[str, Any] | None:
    """A 2xx JSON answer as a ``dict``; a 202 is ``None`` where ``pending_ok``, else an error."""
    if status == 202:
        if pending_ok:
            return None
        raise FastlyApiError(
            202, where, "Fastly answered 202 Accepted where a result was expected", secret=settings.token
        )
    return decode(status, where, body, _header(headers, "Content-Type") or "", settings.token)


def _too_large(status: int, where: str, size: str, settings: Settings) -> FastlyApiError:
    return FastlyApiError(
        status,
        where,
        f"the answer {size}, more than max_body_bytes={settings.max_body_bytes} (a connection extra)",
        secret=settings.token,
    )


def _check_length(status: int, where: str, headers: Mapping[str, str], settings: Settings) -> None:
    announced = _header(headers, "Content-Length") or ""
    if announced.isdigit() and int(announced) > settings.max_body_bytes:
        raise _too_large(status, where, f"announces {announced} bytes", settings)


# Retries


@dataclass(frozen=True)
class Wait:
    """Wait ``seconds``, then ask again; ``why`` is what went wrong, for the log."""

    seconds: float
    why: str


def backoff(attempt: int, max_wait: float) -> float:
    """Full-jitter exponential backoff for the ``attempt``-th retry (0-based)."""
    return random.uniform(0, min(max_wait, BASE_DELAY * 2**attempt))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _retry_after(value: str, now: float) -> float | None:
    if value.strip().isdigit():
        return float(value)
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError):
        return None


def retry_delay(attempt: int, headers: Mapping[str, str], max_wait: float, now: float | None = None) -> float:
    """
    Seconds to wait before retry number ``attempt`` (0-based) of a request answered with ``headers``.

    Fastly does not document ``Retry-After``; it is honoured when present, else the rate-limit window's
    ``Fastly-RateLimit-Reset``, else exponential backoff with jitter. Every wait is capped.

    :param attempt: how many retries were made before this one.
    :param headers: the failed answer's headers (any case), or ``{}`` after a connection error.
    :param max_wait: the cap on any single wait, in seconds.
    :param now: the current Unix time, for tests.
    """
    now = time.time() if now is None else now
    wait: float | None = None
    if (value := _header(headers, "Retry-After")) is not None:
        wait = _retry_after(value, now)
    if wait is None and (reset := _header(headers, "Fastly-RateLimit-Reset")) is not None:
        try:
            wait = float(reset) - now
        except ValueError:
            wait = None
    if wait is None:
        return backoff(attempt, max_wait)
    return min(max(wait, 0.0), max_wait)


def next_step(
    attempt: int, settings: Settings, status: int | None, headers: Mapping[str, str], failure: str = ""
) -> Wait | None:
    """
    Wait and ask again, or ``None``: the answer stands.

    :param attempt: retries made so far (0 for the first request); the budget is ``settings.max_retries``.
    :param status: the answer's status, or ``None`` when none arrived.
    :param headers: the answer's headers, for ``Retry-After`` and ``Fastly-RateLimit-Reset``.
    :param failure: what broke when no answer arrived (a connection error, the deadline).
    """
    if attempt >= settings.max_retries:
        return None
    if failure:
        return Wait(backoff(attempt, settings.max_wait), failure)
    if status in RETRY_STATUSES:
        return Wait(retry_delay(attempt, headers, settings.max_wait), f"answered {status}")
    return None


def _log_retry(log: RetryLog, wait: Wait, where: str, attempt: int, settings: Settings) -> None:
    log.warning(
        "Fastly %s on %s; retry %d/%d in %.1f s",
        wait.why,
        settings.mask(where),
        attempt + 1,
        settings.max_retries,
        wait.seconds,
    )


def _gave_up(where: str, failure: str, attempt: int, settings: Settings) -> FastlyApiError:
    return FastlyApiError(None, where, f"{failure} after {attempt + 1} tries", secret=settings.token)


def _deadline_failure(settings: Settings) -> str:
    return f"deadline of {settings.deadline:g} s exceeded (connect, headers and body; extra 'deadline')"


# Sync: requests


class _Attempt:
    """One sync attempt under watch: its deadline, and the connection it sends on."""

    __slots__ = ("conn", "expires")

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.conn: Any = None

    def cut(self) -> None:
        """Shut the connection's socket down: a read blocked in any phase returns at once."""
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """
    One daemon thread that cuts any sync attempt still running at its deadline.

    requests' timeout bounds each socket read, not the request: a server sending a byte a second holds
    it for ever. The watchdog bounds connect, headers and body alike. It starts with the first request
    and again in a forked child, where threads do not survive.

    It sleeps until the earliest deadline it knows and is woken only for an earlier one, never when an
    attempt ends: back-to-back requests wake it about once per deadline, not several times each.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._live: dict[int, _Attempt] = {}
        self._thread: threading.Thread | None = None
        self._wakes = float("inf")
        self._local = threading.local()

    def watch(self, attempt: _Attempt) -> None:
        with self._cond:
            self._live[id(attempt)] = attempt
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fastly-deadline", daemon=True)
                self._thread.start()
            elif attempt.expires < self._wakes:
                self._cond.notify()
        self._local.attempt = attempt

    def forget(self, attempt: _Attempt) -> None:
        self._local.attempt = None
        with self._cond:
            self._live.pop(id(attempt), None)

    def sending_on(self, conn: Any) -> None:
        """Called by the connection a request goes out on, in the requesting thread."""
        attempt = getattr(self._local, "attempt", None)
        if attempt is not None:
            attempt.conn = conn

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for late in [a for a in self._live.values() if a.expires <= now]:
                    del self._live[id(late)]
                    late.cut()
                self._wakes = min((a.expires for a in self._live.values()), default=float("inf"))
                self._cond.wait(self._wakes - now if self._live else None)


_watchdog = _Watchdog()


def _reset_watchdog() -> None:
    global _watchdog
    _watchdog = _Watchdog()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_watchdog)


def session(settings: Settings) -> requests.Session:
    """
    A ``requests.Session`` for the API whose connections the deadline watchdog can cut.

    Its adapters build urllib3 pools whose connections report themselves to the watchdog when a request
    goes out on them, so an attempt past its deadline has its socket shut down, in any phase.
    """
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Watched:
        def request(self, *args: Any, **kwargs: Any) -> Any:
            _watchdog.sending_on(self)
            return super().request(*args, **kwargs)  # type: ignore[misc]

    class WatchedHTTP(Watched, HTTPConnection):
        pass

    class WatchedHTTPS(Watched, HTTPSConnection):
        pass

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTP

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPS

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    guarded = requests.Session()
    guarded.mount("https://", Adapter())
    guarded.mount("http://", Adapter())
    guarded.headers.update(settings.headers)
    return guarded


def chunks(response: requests.Response, expires: float) -> Iterator[bytes]:
    """The body as it arrives, decoded; raises :class:`DeadlineExceeded` once the clock passes ``expires``."""
    raw = response.raw
    while chunk := raw.read1(CHUNK_SIZE, decode_content=True):
        yield chunk
        if time.monotonic() > expires:
            raise DeadlineExceeded


def _collect(response: requests.Response, body: Iterator[bytes], where: str, settings: Settings) -> bytearray:
    """A JSON body, refused past ``max_body_bytes`` (before reading, when ``Content-Length`` says so)."""
    status = response.status_code
    _check_length(status, where, response.headers, settings)
    data = bytearray()
    for chunk in body:
        data += chunk
        if len(data) > settings.max_body_bytes:
            raise _too_large(status, where, "is longer", settings)
    return data


def read_json_body(response: requests.Response, body: Iterator[bytes], where: str, settings: Settings) -> bytes:
    """A JSON body, refused past ``max_body_bytes`` (before reading, when ``Content-Length`` says so)."""
    return bytes(_collect(response, body, where, settings))


def read_json_parts(
    response: requests.Response,
    body: Iterator[bytes],
    where: str,
    settings: Settings,
    key: str,
    size: int = PART_ITEMS,
) -> Iterator[dict[str, Any]]:
    """
    A 2xx JSON object answer in parts: whole up to ``stream_body_bytes``, else ``size`` items of ``key`` a part.

    A large answer is kept as text, checked whole at once (the guards, checks and errors of
    :func:`read_json_body` and :func:`decode`), then decoded part by part: each part is the object with a
    run of the items at ``key`` (an array), so one run's dicts are alive at a time, not all of them (several
    times the body).
    """
    status = response.status_code
    data = _collect(response, body, where, settings)
    if status == 202 or len(data) <= settings.stream_body_bytes:
        answer = json_answer(status, where, response.headers, bytes(data), settings, pending_ok=False)
        return iter([_object(answer, status, where, settings.token)])
    content_type = _header(response.headers, "Content-Type") or ""
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")  # as json.loads decodes bytes
        del data
        header, spans = _split(text, key, size)
    except ValueError as exc:
        raise _decoding_error(exc, status, where, content_type, settings.token) from None
    header = _object(header, status, where, settings.token)
    return iter([header]) if spans is None else _parts(text, header, key, spans)


def _error_body(body: Iterator[bytes]) -> bytes:
    """The start of an error answer, for its message; whatever arrived if the rest breaks off."""
    import requests
    import urllib3

    parts, size = [], 0
    try:
        for chunk in body:
            parts.append(chunk)
            size += len(chunk)
            if size >= ERROR_BODY_BYTES:
                break
    except (requests.RequestException, urllib3.exceptions.HTTPError, DeadlineExceeded):
        pass
    return b"".join(parts)[:ERROR_BODY_BYTES]


def get(
    session: requests.Session,
    settings: Settings,
    path: str,
    params: Mapping[str, str] | None,
    accept: str,
    read: Callable[[requests.Response, Iterator[bytes]], T],
    log: RetryLog,
) -> T:
    """
    GET under the guards, retrying per :func:`next_step`; ``read`` consumes a 2xx answer's body.

    The body reaches ``read`` as an iterator of chunks under the attempt's deadline; when it breaks off
    or runs out of time, the whole attempt is retried from the budget. Redirects are errors. With a
    :func:`session`, the deadline covers connect and headers too; with any other session, the body.
    """
    import requests
    import urllib3

    broken = (requests.RequestException, urllib3.exceptions.HTTPError, DeadlineExceeded)
    where = path_with_query(path, params)
    url = settings.base_url + path
    timeout = (settings.timeout, min(settings.timeout, settings.deadline))
    attempt = 0
    while True:
        watched = _Attempt(time.monotonic() + settings.deadline)
        _watchdog.watch(watched)
        try:
            with session.get(
                url, params=params, headers={"Accept": accept}, timeout=timeout, stream=True, allow_redirects=False
            ) as response:
                status = response.status_code
                if status < 300:
                    return read(response, chunks(response, watched.expires))
                wait = next_step(attempt, settings, status, response.headers)
                if wait is None:
                    body = _error_body(chunks(response, watched.expires))
                    raise answer_error(status, where, response.headers, body, response.reason or "", settings)
        except broken as exc:
            late = isinstance(exc, DeadlineExceeded) or time.monotonic() >= watched.expires
            failure = _deadline_failure(settings) if late else type(exc).__name__
            wait = next_step(attempt, settings, None, {}, failure)
            if wait is None:
                raise _gave_up(where, failure, attempt, settings) from None
        finally:
            _watchdog.forget(watched)
        _log_retry(log, wait, where, attempt, settings)
        time.sleep(wait.seconds)
        attempt += 1


# Async: httpx


def async_client(settings: Settings) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the API that never follows redirects; reuse it across requests."""
    import httpx

    return httpx.AsyncClient(
        base_url=settings.base_url,
        headers=settings.headers,
        timeout=httpx.Timeout(settings.timeout),
        follow_redirects=False,
    )


async def _afetch(
    client: httpx.AsyncClient, settings: Settings, path: str, params: Mapping[str, str] | None, where: str
) -> tuple[int, httpx.Headers, bytes, str]:
    async with client.stream("GET", path, params=params, headers={"Accept": JSON}) as response:
        status = response.status_code
        if status < 300:
            _check_length(status, where, response.headers, settings)
        parts, size = [], 0
        async for chunk in response.aiter_bytes():
            parts.append(chunk)
            size += len(chunk)
            if status >= 300 and size >= ERROR_BODY_BYTES:
                break
            if size > settings.max_body_bytes:
                raise _too_large(status, where, "is longer", settings)
        return status, response.headers, b"".join(parts), response.reason_phrase


async def aget_json(
    client: httpx.AsyncClient,
    settings: Settings,
    path: str,
    params: Mapping[str, str] | None,
    log: RetryLog,
) -> tuple[int, httpx.Headers, bytes]:
    """The async twin of :func:`get` for JSON: the same guards, retries and log lines; a 2xx answer."""
    import httpx

    where = path_with_query(path, params)
    attempt = 0
    while True:
        try:
            status, headers, body, reason = await asyncio.wait_for(
                _afetch(client, settings, path, params, where), settings.deadline
            )
        except (httpx.TransportError, httpx.StreamError, asyncio.TimeoutError) as exc:
            timed_out = isinstance(exc, asyncio.TimeoutError)
            failure = _deadline_failure(settings) if timed_out else type(exc).__name__
            wait = next_step(attempt, settings, None, {}, failure)
            if wait is None:
                raise _gave_up(where, failure, attempt, settings) from None
        else:
            if status < 300:
                return status, headers, body
            wait = next_step(attempt, settings, status, headers)
            if wait is None:
                raise answer_error(status, where, headers, body, reason, settings)
        _log_retry(log, wait, where, attempt, settings)
        await asyncio.sleep(wait.seconds)
        attempt += 1
