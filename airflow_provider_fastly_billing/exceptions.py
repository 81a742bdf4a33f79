"""Errors raised for Fastly API answers, so callers can tell what went wrong without reading HTTP."""

from __future__ import annotations


class FastlyApiError(Exception):
    """
    Fastly answered with an error, an unreadable body, or not at all.

    :param status: HTTP status code, or ``None`` when no answer arrived (connection error, timeout).
    :param path: the request path and query; it never holds the token, which travels in a header.
    :param msg: Fastly's ``msg`` (or ``title``) for the error, when the body had one.
    :param detail: Fastly's ``detail``, when the body had one.
    :param secret: a value to mask as ``***`` in every text above (the token, should the API echo it).
    """

    def __init__(
        self, status: int | None, path: str, msg: str, detail: str | None = None, *, secret: str | None = None
    ) -> None:
        if secret:
            path, msg = path.replace(secret, "***"), msg.replace(secret, "***")
            detail = detail.replace(secret, "***") if detail else detail
        self.status = status
        self.path = path
        self.msg = msg
        self.detail = detail
        where = f"GET {path}"
        if status is None:
            head = f"Fastly API unreachable on {where}"
        elif status < 400:
            head = f"Unusable Fastly API answer ({status}) on {where}"
        else:
            head = f"Fastly API error {status} on {where}"
        super().__init__(f"{head}: {msg}" + (f" ({detail})" if detail else ""))


class FastlyAuthError(FastlyApiError):
    """401 or 403: the token is missing, invalid, or lacks the Billing role."""


class FastlyNotFoundError(FastlyApiError):
    """404: no such invoice, customer or month."""


class FastlyDataError(FastlyApiError):
    """
    An answer that cannot be stored as it is: a value of the wrong type or format, not finite, with more
    digits than the warehouse keeps, a wrong shape, or the same invoice twice with different content.

    :param msg: what is wrong, naming the invoice, the line, the field and the value.
    """

    def __init__(self, msg: str) -> None:
        Exception.__init__(self, msg)
        self.status, self.path, self.msg, self.detail = None, "", msg, None
