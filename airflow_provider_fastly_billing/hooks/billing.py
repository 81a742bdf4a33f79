"""Hook for Fastly's billing API: invoices by month or id, month-to-date estimates, CSV and PDF files."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from airflow.sdk import BaseHook, ObjectStoragePath

from airflow_provider_fastly_billing import validation
from airflow_provider_fastly_billing.exceptions import (
    FastlyApiError,
    FastlyAuthError,
    FastlyNotFoundError,
)
from airflow_provider_fastly_billing.files import storage_path, write_atomically
from airflow_provider_fastly_billing.retries import RETRY_STATUSES, backoff, retry_delay

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import date
    from pathlib import Path

    import requests
    from airflow.sdk import Connection

DEFAULT_BASE_URL = "https://api.fastly.com"
V3_INVOICES_PATH = "/billing/v3/invoices"
V3_MTD_PATH = "/billing/v3/invoices/month-to-date"
MAX_PAGE_SIZE = 200
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_WAIT = 60.0
CHUNK_SIZE = 1 << 20
JSON = "application/json"
ACCEPT = {"csv": "text/csv", "pdf": "application/pdf", "json": JSON}


def parse_json(body: bytes | str) -> Any:
    """Parse a Fastly JSON body with exact ``Decimal`` for every number that has a fraction."""
    return json.loads(body, parse_float=Decimal)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Settings:
    """What the hook needs from its connection; ``repr`` leaves the token out."""

    base_url: str
    token: str
    timeout: float
    max_retries: int
    max_wait: float

    def __repr__(self) -> str:
        return f"_Settings(base_url={self.base_url!r}, timeout={self.timeout}, max_retries={self.max_retries})"

    @property
    def headers(self) -> dict[str, str]:
        return {"Fastly-Key": self.token, "User-Agent": "airflow-provider-fastly-billing"}


def _settings_from(conn: Connection, overrides: Mapping[str, Any]) -> _Settings:
    extra = conn.extra_dejson
    token = conn.password or extra.get("token")
    if not token:
        raise ValueError(f"connection {conn.conn_id!r} has no API token (password or extra 'token')")
    base_url = (conn.host or DEFAULT_BASE_URL).rstrip("/")
    if "://" not in base_url:
        base_url = f"https://{base_url}"
    url = urlsplit(base_url)
    if url.scheme not in ("https", "http"):
        raise ValueError(f"connection {conn.conn_id!r}: API base URL must be https://, got {url.scheme}://")
    allow_http = str(extra.get("allow_insecure_http", "")).lower() in ("true", "1", "yes")
    if url.scheme == "http" and not (_is_loopback(url.hostname or "") or allow_http):
        raise ValueError(
            f"connection {conn.conn_id!r}: refusing to send the API token over plain http to {url.hostname}; "
            "use https, or set extra allow_insecure_http=true"
        )

    def pick(name: str, default: float) -> float:
        given = (v for v in (overrides.get(name), extra.get(name)) if v not in (None, ""))
        return float(next(given, default))

    return _Settings(
        base_url=base_url,
        token=token,
        timeout=pick("timeout", DEFAULT_TIMEOUT),
        max_retries=int(pick("max_retries", DEFAULT_MAX_RETRIES)),
        max_wait=pick("max_wait", DEFAULT_MAX_WAIT),
    )


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


def api_error(status: int, path: str, body: bytes, content_type: str, reason: str = "") -> FastlyApiError:
    """Turn an error answer into the typed exception a user can read."""
    msg, detail = _error_text(body)
    if msg is None:
        kind = content_type.split(";")[0] or "empty"
        msg = f"{reason or 'error'} (a {kind} body without a Fastly error message)"
    cls = {401: FastlyAuthError, 403: FastlyAuthError, 404: FastlyNotFoundError}.get(status, FastlyApiError)
    return cls(status, path, msg, detail)


def _decode(status: int, path: str, body: bytes, content_type: str) -> dict[str, Any]:
    try:
        data = parse_json(body)
    except (ValueError, UnicodeDecodeError):
        kind = content_type.split(";")[0] or "untyped"
        raise FastlyApiError(status, path, f"the answer is not valid JSON (a {kind} body)") from None
    if not isinstance(data, dict):
        raise FastlyApiError(status, path, f"expected a JSON object, got {type(data).__name__}")
    return data


def exact_v3_amount(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """A v3 invoice with ``monthly_transaction_amount`` as ``Decimal``: Fastly sends it as a string at times."""
    amount = (document or {}).get("monthly_transaction_amount")
    if isinstance(amount, str):
        with contextlib.suppress(ArithmeticError):
            document["monthly_transaction_amount"] = Decimal(amount)  # type: ignore[index]
    return document


def _path_with_query(path: str, params: Mapping[str, str] | None) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def invoice_path(year: int | str, month: int | str) -> str:
    """Path of the account's invoice for a month, validated."""
    y, m = validation.period(year, month)
    return f"/billing/v2/year/{y}/month/{m}"


def invoice_by_id_path(customer_id: str, invoice_id: int | str) -> str:
    """Path of one invoice of an account customer, validated."""
    return (
        f"/billing/v2/account_customers/{validation.customer_id(customer_id)}"
        f"/invoices/{validation.invoice_id(invoice_id)}"
    )


def mtd_request(
    customer_id: str | None,
    year: int | str | None = None,
    month: int | str | None = None,
    api_version: str = "v2",
) -> tuple[str, dict[str, str]]:
    """
    Path and query of a month-to-date estimate, validated.

    v2 estimates a customer's month; v3 has one estimate, the token's account's current month.
    """
    if validation.api_version(api_version) == "v3":
        return V3_MTD_PATH, {}
    path = f"/billing/v2/account_customers/{validation.customer_id(customer_id)}/mtd_invoice"
    when = validation.optional_period(year, month)
    return path, ({"year": when[0], "month": when[1]} if when else {})


class BillingHook(BaseHook):
    """
    Call Fastly's billing API with the token of an Airflow connection of type ``fastly``.

    Every input is validated before a request is sent. 429, 5xx and dropped connections are retried
    with backoff that honours ``Retry-After`` and ``Fastly-RateLimit-Reset``; other errors raise
    :class:`~airflow_provider_fastly_billing.exceptions.FastlyApiError` or a subclass. Numbers with a
    fraction are returned as ``Decimal``, so money is exact. The token is sent only as ``Fastly-Key``.

    :param fastly_conn_id: the Airflow connection holding the API token (password, or extra ``token``)
        and optionally the API base URL (host).
    :param timeout: connect and read timeout in seconds; default: extra ``timeout``, else 30.
    :param max_retries: retries after a 429, 5xx or connection error; default: extra, else 5.
    :param max_wait: the longest single wait between retries, in seconds; default: extra, else 60.
    """

    conn_name_attr = "fastly_conn_id"
    default_conn_name = "fastly_default"
    conn_type = "fastly"
    hook_name = "Fastly"

    def __init__(
        self,
        fastly_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_wait: float | None = None,
    ) -> None:
        super().__init__()
        self.fastly_conn_id = fastly_conn_id
        self._overrides = {"timeout": timeout, "max_retries": max_retries, "max_wait": max_wait}

    def __repr__(self) -> str:
        return f"BillingHook(fastly_conn_id={self.fastly_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: token and base URL only."""
        return {
            "hidden_fields": ["login", "schema", "port"],
            "relabeling": {"password": "API token", "host": "API base URL"},
            "placeholders": {"host": DEFAULT_BASE_URL, "extra": '{"timeout": 30, "max_retries": 5}'},
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for timeout and retry settings (Airflow UIs built on Flask AppBuilder)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, FloatField, IntegerField
        from wtforms.validators import NumberRange, Optional

        widget = BS3TextFieldWidget()
        return {
            "timeout": FloatField(lazy_gettext("Timeout (s)"), [Optional(), NumberRange(min=1)], widget=widget),
            "max_retries": IntegerField(lazy_gettext("Max retries"), [Optional(), NumberRange(0)], widget=widget),
            "max_wait": FloatField(lazy_gettext("Max wait between retries (s)"), [Optional()], widget=widget),
            "allow_insecure_http": BooleanField(lazy_gettext("Allow plain http to a non-loopback host")),
        }

    @cached_property
    def settings(self) -> _Settings:
        """Base URL, token and retry settings, read once from the connection."""
        return _settings_from(self.get_connection(self.fastly_conn_id), self._overrides)

    @cached_property
    def session(self) -> requests.Session:
        """One HTTP session per hook, so connections are reused across calls."""
        import requests

        session = requests.Session()
        session.headers.update(self.settings.headers)
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's HTTP session, as Airflow hooks do."""
        return self.session

    def _wait(self, attempt: int, headers: Mapping[str, str], path: str, why: str) -> None:
        delay = retry_delay(attempt, headers, self.settings.max_wait)
        self.log.warning("Fastly %s on %s; retry %d in %.1f s", why, path, attempt + 1, delay)
        time.sleep(delay)

    def _get(self, path: str, params: Mapping[str, str] | None, accept: str, stream: bool) -> requests.Response:
        """GET with retries; returns a 2xx answer, or raises the typed error."""
        import requests

        where = _path_with_query(path, params)
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                response = self.session.get(
                    self.settings.base_url + path,
                    params=params,
                    headers={"Accept": accept},
                    timeout=self.settings.timeout,
                    stream=stream,
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                if last:
                    raise FastlyApiError(None, where, f"{type(exc).__name__} after {attempt + 1} tries") from None
                self._wait(attempt, {}, where, type(exc).__name__)
                continue
            if response.status_code < 400:
                return response
            if response.status_code in RETRY_STATUSES and not last:
                response.close()
                self._wait(attempt, response.headers, where, f"answered {response.status_code}")
                continue
            content_type = response.headers.get("Content-Type", "")
            raise api_error(response.status_code, where, response.content, content_type, response.reason)
        raise AssertionError("unreachable")

    def _get_json(
        self, path: str, params: Mapping[str, str] | None = None, *, pending_ok: bool = False
    ) -> dict[str, Any] | None:
        """GET a JSON object; a 202 is ``None`` where ``pending_ok``, else an error."""
        response = self._get(path, params, JSON, stream=False)
        where = _path_with_query(path, params)
        if response.status_code == 202:
            if pending_ok:
                return None
            raise FastlyApiError(202, where, "Fastly answered 202 Accepted where a result was expected")
        return _decode(response.status_code, where, response.content, response.headers.get("Content-Type", ""))

    def get_invoice(self, year: int | str, month: int | str) -> dict[str, Any]:
        """
        Return the account's invoice for a month (``GET /billing/v2/year/{year}/month/{month}``).

        :param year: the year, 4 digits (``2026`` or ``"2026"``).
        :param month: the month, 1 to 12 (``3``, ``"3"`` or ``"03"``); not after the current month.
        """
        return self._get_json(invoice_path(year, month))  # type: ignore[return-value]

    def get_invoice_by_id(self, customer_id: str, invoice_id: int | str) -> dict[str, Any]:
        """
        Return one invoice of an account customer by its id.

        :param customer_id: the alphanumeric Fastly customer id.
        :param invoice_id: the numeric invoice id.
        """
        return self._get_json(invoice_by_id_path(customer_id, invoice_id))  # type: ignore[return-value]

    def get_invoice_mtd(
        self, customer_id: str, year: int | str | None = None, month: int | str | None = None
    ) -> dict[str, Any] | None:
        """
        Return a customer's month-to-date estimate, or ``None`` while Fastly is still generating it (202).

        :param customer_id: the alphanumeric Fastly customer id.
        :param year: with ``month``, the month to estimate; both omitted means the current month.
        :param month: with ``year``, the month to estimate.
        """
        return self._get_json(*mtd_request(customer_id, year, month), pending_ok=True)

    def list_invoices(
        self, start: date | str | None = None, end: date | str | None = None, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """
        Iterate over every v3 invoice whose billing period starts in ``[start, end]``, newest first.

        Follows ``meta.next_cursor`` page by page until the last; a cursor that comes back a second time
        is refused (``FastlyApiError``), so a looping API cannot make this run forever. Inputs are
        checked at once, before any request.

        :param start: first billing start date (``date`` or ``YYYY-MM-DD``); ``None`` for no lower bound.
        :param end: last billing start date; ``None`` for no upper bound.
        :param page_size: invoices per request, 1 to 200.
        """
        params = {
            name: value
            for name, value in (
                ("billing_start_date", validation.iso_date(start, "start")),
                ("billing_end_date", validation.iso_date(end, "end")),
            )
            if value
        }
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
        return self._pages({**params, "limit": str(page_size)})

    def _pages(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        followed: set[str] = set()
        cursor = ""
        while True:
            page = self._get_json(V3_INVOICES_PATH, {**params, "cursor": cursor} if cursor else params) or {}
            yield from (exact_v3_amount(invoice) for invoice in page.get("data") or [])
            cursor = str((page.get("meta") or {}).get("next_cursor") or "")
            if not cursor:
                return
            if cursor in followed:
                where = _path_with_query(V3_INVOICES_PATH, {**params, "cursor": cursor})
                raise FastlyApiError(200, where, "the API sent a cursor it had sent before (a paging loop)")
            followed.add(cursor)

    def get_invoice_v3(self, invoice_id: int | str) -> dict[str, Any]:
        """
        Return one v3 invoice (``GET /billing/v3/invoices/{invoice_id}``).

        :param invoice_id: the numeric invoice id.
        """
        return exact_v3_amount(self._get_json(f"{V3_INVOICES_PATH}/{validation.invoice_id(invoice_id)}"))  # type: ignore[return-value]

    def get_invoice_mtd_v3(self) -> dict[str, Any] | None:
        """Return the account's v3 month-to-date invoice, or ``None`` while Fastly generates it (202)."""
        return exact_v3_amount(self._get_json(V3_MTD_PATH, pending_ok=True))

    def download_invoice(
        self,
        destination: str | Path | ObjectStoragePath,
        *,
        fmt: str,
        year: int | str | None = None,
        month: int | str | None = None,
        customer_id: str | None = None,
        invoice_id: int | str | None = None,
    ) -> str | Path | ObjectStoragePath:
        """
        Stream an invoice as CSV or PDF into a file, atomically; return ``destination``.

        The body is written in chunks to a temporary sibling and renamed into place only when complete,
        so a broken download leaves no file behind.

        :param destination: a local path, a URL such as ``s3://bucket/key.pdf``, or an ``ObjectStoragePath``.
        :param fmt: ``"csv"`` or ``"pdf"``.
        :param year: with ``month``: the account's invoice for that month.
        :param month: with ``year``.
        :param customer_id: with ``invoice_id``: that invoice of an account customer.
        :param invoice_id: with ``customer_id``.
        """
        if fmt not in ("csv", "pdf"):
            raise ValueError(f"fmt must be 'csv' or 'pdf', got {fmt!r}")
        by_period = year is not None or month is not None
        by_id = customer_id is not None or invoice_id is not None
        if by_period == by_id:
            raise ValueError("give either year and month, or customer_id and invoice_id")
        path = invoice_path(year, month) if by_period else invoice_by_id_path(customer_id, invoice_id)  # type: ignore[arg-type]
        import requests

        target = storage_path(destination)
        for attempt in range(self.settings.max_retries + 1):
            response = self._get(path, None, ACCEPT[fmt], stream=True)
            try:
                write_atomically(target, response.iter_content(CHUNK_SIZE))
                return destination
            except requests.RequestException as exc:
                if attempt == self.settings.max_retries:
                    raise FastlyApiError(
                        response.status_code, path, f"download broken off ({type(exc).__name__})"
                    ) from None
                self._wait(attempt, {}, path, f"download broken off ({type(exc).__name__})")
            except OSError as exc:
                raise FastlyApiError(response.status_code, path, f"could not write {destination}: {exc}") from exc
            finally:
                response.close()
        raise AssertionError("unreachable")

    def test_connection(self) -> tuple[bool, str]:
        """Check the token with ``GET /tokens/self``; say whether it works and what it is."""
        try:
            token = self._get_json("/tokens/self") or {}
        except (FastlyApiError, ValueError) as exc:
            return False, str(exc)
        return True, f"Token {token.get('name') or token.get('id') or ''} works (scope: {token.get('scope')})"

    async def _async_settings(self) -> _Settings:
        if "settings" not in self.__dict__:
            conn = await self.aget_connection(self.fastly_conn_id)
            self.__dict__["settings"] = _settings_from(conn, self._overrides)
        return self.settings

    async def async_get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """Async GET of a JSON object, with the retries and errors of the sync calls; 202 is ``None``."""
        import httpx

        settings = await self._async_settings()
        where = _path_with_query(path, params)
        async with httpx.AsyncClient(
            base_url=settings.base_url, headers=settings.headers, timeout=settings.timeout
        ) as client:
            for attempt in range(settings.max_retries + 1):
                last = attempt == settings.max_retries
                try:
                    response = await client.get(path, params=params, headers={"Accept": JSON})
                except httpx.TransportError as exc:
                    if last:
                        raise FastlyApiError(None, where, f"{type(exc).__name__} after {attempt + 1} tries") from None
                    await asyncio.sleep(backoff(attempt, settings.max_wait))
                    continue
                status, content_type = response.status_code, response.headers.get("Content-Type", "")
                if status == 202:
                    return None
                if status < 400:
                    return _decode(status, where, response.content, content_type)
                if status in RETRY_STATUSES and not last:
                    await asyncio.sleep(retry_delay(attempt, response.headers, settings.max_wait))
                    continue
                raise api_error(status, where, response.content, content_type, response.reason_phrase)
        raise AssertionError("unreachable")

    async def async_get_invoice_mtd(
        self,
        customer_id: str | None,
        year: int | str | None = None,
        month: int | str | None = None,
        api_version: str = "v2",
    ) -> dict[str, Any] | None:
        """Async :meth:`get_invoice_mtd` (or :meth:`get_invoice_mtd_v3` with ``api_version="v3"``), for triggers."""
        return await self.async_get_json(*mtd_request(customer_id, year, month, api_version))

    def get_usage_metrics(self, start_month: str | date, end_month: str | date) -> list[dict[str, Any]]:
        """
        Return the account's usage per month, product, usage type and region (``GET /billing/v3/usage-metrics``).

        Fastly answers at most three months per call: a longer range is split and the answers joined.
        ``quantity`` is an exact ``Decimal``. Both months are checked before any request.

        :param start_month: the first month, ``YYYY-MM`` (or a date in it).
        :param end_month: the last month, included; not before ``start_month``, not in the future.
        """
        from airflow_provider_fastly_billing.api import usage

        return [
            item
            for params in usage.usage_metrics_requests(start_month, end_month)
            for item in usage.usage_metrics_items(
                self._get_json(usage.USAGE_METRICS_PATH, params) or {}, usage.where(usage.USAGE_METRICS_PATH, params)
            )
        ]

    def list_service_usage(
        self,
        *,
        product_id: str | None = None,
        usage_type_name: str | None = None,
        service: str | None = None,
        start_month: str | date,
        end_month: str | date,
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """
        Iterate over one usage type's usage per service (``GET /billing/v3/service-usage-metrics``).

        Each item is a ``Serviceusagemetric`` (``service_id``, ``service_name``, ``usage_units`` as exact
        ``Decimal``) with its page's ``customer_id``, ``usage_type``, ``unit``, ``start_time``, ``end_time``
        and the query's ``product_id``, ``start_month``, ``end_month``. Follows ``meta.next_cursor``; a
        repeated cursor, an empty page with a next cursor, or more pages than ``meta.total`` allows is a
        ``FastlyApiError``. Inputs are checked at once, before any request.

        :param product_id: the product, e.g. ``cdn_usage``; together with ``usage_type_name``.
        :param usage_type_name: the usage type as on the invoice, e.g. ``North America Requests``.
        :param service: a service id, to ask for that service only.
        :param start_month: the first month, ``YYYY-MM``; Fastly sums usage over the range.
        :param end_month: the last month, included.
        :param page_size: services per request, 1 to 10,000.
        """
        from airflow_provider_fastly_billing.api import usage

        params = usage.service_usage_params(
            product_id=product_id,
            usage_type_name=usage_type_name,
            service=service,
            start_month=start_month,
            end_month=end_month,
            page_size=page_size,
        )
        path = usage.SERVICE_USAGE_PATH
        return usage.walk_cursor(
            lambda query: self._get_json(path, query) or {},
            params,
            lambda answer, query: usage.service_usage_page(answer, query, usage.where(path, query)),
            path,
        )
