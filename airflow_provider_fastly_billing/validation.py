"""
Checks on every value that goes into a Fastly URL, run before any request.

Each check returns the value in the exact form the API wants, or raises ``ValueError``: no input can
change the request path, and a typo fails at once instead of as an HTTP error.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

_YEAR = re.compile(r"\d{4}", re.ASCII)
_MONTH = re.compile(r"\d{1,2}", re.ASCII)
_CUSTOMER_ID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
_INVOICE_ID = re.compile(r"\d{1,20}", re.ASCII)
_FIRST_YEAR = 2000
PLAIN_DECIMAL = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
"""A number as Fastly writes it in a string: digits, an optional sign, fraction and exponent; nothing else."""


def _as_int(value: object, pattern: re.Pattern[str], what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} must be an integer or a string of digits, got {type(value).__name__}")
    if isinstance(value, str) and not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid {what}")
    return int(value)


def period(year: int | str, month: int | str, *, today: date | None = None) -> tuple[str, str]:
    """
    Normalise a billing period to Fastly's 4-digit year and 2-digit month.

    :param year: ``2026`` or ``"2026"``.
    :param month: ``3``, ``"3"`` or ``"03"``.
    :param today: the date that decides which months are in the future; defaults to today in UTC.
    """
    y = _as_int(year, _YEAR, "year")
    m = _as_int(month, _MONTH, "month")
    if not 1 <= m <= 12:
        raise ValueError(f"month {month!r} is not between 1 and 12")
    today = today or datetime.now(timezone.utc).date()
    if y < _FIRST_YEAR or (y, m) > (today.year, today.month):
        raise ValueError(f"{y:04d}-{m:02d} is not a billing period Fastly can have (future or before {_FIRST_YEAR})")
    return f"{y:04d}", f"{m:02d}"


def optional_period(year: int | str | None, month: int | str | None) -> tuple[str, str] | None:
    """Normalise an optional period: both given, or neither (meaning the current month)."""
    if year is None and month is None:
        return None
    if year is None or month is None:
        raise ValueError("give both year and month, or neither for the current month")
    return period(year, month)


def customer_id(value: object) -> str:
    """Return ``value`` if it is an alphanumeric Fastly customer id."""
    if not isinstance(value, str) or not _CUSTOMER_ID.fullmatch(value):
        raise ValueError(f"customer_id must be 1 to 64 letters and digits, got {value!r}")
    if value.lower() in ("none", "null"):
        raise ValueError(f"customer_id {value!r} is what an empty template renders to, not a customer id")
    return value


def invoice_id(value: object) -> str:
    """Return a numeric invoice id (int or digit string) as a string."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not _INVOICE_ID.fullmatch(value):
        raise ValueError(f"invoice_id must be a non-negative number of at most 20 digits, got {value!r}")
    return value


def iso_date(value: date | str | None, what: str) -> str | None:
    """Normalise an optional date (``date``, ``datetime`` or ``YYYY-MM-DD``) to ``YYYY-MM-DD``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ValueError(f"{what} must be a date or a YYYY-MM-DD string, got {value!r}")


def api_version(value: object) -> str:
    """Return ``"v2"`` or ``"v3"``, the billing API generations this provider speaks."""
    if value not in ("v2", "v3"):
        raise ValueError(f"api_version must be 'v2' or 'v3', got {value!r}")
    return value
