"""
When to retry a Fastly request and how long to wait, shared by the hook and the trigger.

Fastly does not document ``Retry-After``; it is honoured when present, else the rate-limit window's
``Fastly-RateLimit-Reset``, else exponential backoff with jitter. Every wait is capped.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BASE_DELAY = 1.0


def backoff(attempt: int, max_wait: float) -> float:
    """Full-jitter exponential backoff for the ``attempt``-th retry (0-based)."""
    return random.uniform(0, min(max_wait, BASE_DELAY * 2**attempt))


def _header(headers: Mapping[str, str], name: str) -> str | None:
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
