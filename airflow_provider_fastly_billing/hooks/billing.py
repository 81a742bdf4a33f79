"""Hook for Fastly's billing API: invoices by month or id, month-to-date estimates, CSV and PDF files."""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, ObjectStoragePath

from airflow_provider_fastly_billing.api import customer_path, mtd_request, transport, v2, v3
from airflow_provider_fastly_billing.api.transport import (
    ACCEPT,
    DEFAULT_BASE_URL,
    JSON,
    Settings,
    parse_json,
    settings_from,
)
from airflow_provider_fastly_billing.exceptions import FastlyApiError, FastlyAuthError, FastlyNotFoundError
from airflow_provider_fastly_billing.files import storage_path, write_atomically

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
    from datetime import date
    from pathlib import Path

    import httpx
    import requests

__all__ = ["DEFAULT_BASE_URL", "BillingHook", "mtd_request", "parse_json"]


class BillingHook(BaseHook):
    """
    Call Fastly's billing API with the token of an Airflow connection of type ``fastly``.

    Every input is validated before a request is sent. 429, 5xx, dropped connections and attempts past
    their deadline are retried with backoff that honours ``Retry-After`` and ``Fastly-RateLimit-Reset``;
    other errors raise :class:`~airflow_provider_fastly_billing.exceptions.FastlyApiError` or a subclass.
    Redirects are never followed and the token is sent only as ``Fastly-Key``, to the connection's host.
    Numbers with a fraction are returned as ``Decimal``, so money is exact. The guards and their
    settings are described in :mod:`airflow_provider_fastly_billing.api.transport`.

    :param fastly_conn_id: the Airflow connection holding the API token (password, or extra ``token``)
        and optionally the API base URL (host).
    :param timeout: connect timeout, and the longest wait for any one read, in seconds; default: extra
        ``timeout``, else 30.
    :param max_retries: retries after a 429, 5xx, connection error or deadline; default: extra, else 5.
    :param max_wait: the longest single wait between retries, in seconds; default: extra, else 60.
    :param deadline: the most one attempt may take, connect, headers and whole body, in seconds;
        default: extra ``deadline``, else 4 times ``timeout``.
    :param max_body_bytes: the largest JSON answer accepted; default: extra, else 64 MiB. Downloads of
        CSV and PDF files have no cap.

    A JSON invoice larger than the connection extra ``stream_body_bytes`` (default 32 MiB) can be read in
    parts by :meth:`get_invoice_parts`, so memory holds its text and one part's dicts, not all of them.
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
        deadline: float | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        super().__init__()
        self.fastly_conn_id = fastly_conn_id
        self._overrides = {
            "timeout": timeout,
            "max_retries": max_retries,
            "max_wait": max_wait,
            "deadline": deadline,
            "max_body_bytes": max_body_bytes,
        }

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
        """Extra fields for timeout, retry and guard settings (Airflow UIs built on Flask AppBuilder)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, FloatField, IntegerField
        from wtforms.validators import NumberRange, Optional

        widget = BS3TextFieldWidget()
        return {
            "timeout": FloatField(lazy_gettext("Timeout (s)"), [Optional(), NumberRange(min=1)], widget=widget),
            "max_retries": IntegerField(lazy_gettext("Max retries"), [Optional(), NumberRange(0)], widget=widget),
            "max_wait": FloatField(lazy_gettext("Max wait between retries (s)"), [Optional()], widget=widget),
            "deadline": FloatField(lazy_gettext("Deadline per attempt (s)"), [Optional()], widget=widget),
            "max_body_bytes": IntegerField(
                lazy_gettext("Max JSON answer (bytes)"), [Optional(), NumberRange(1)], widget=widget
            ),
            "stream_body_bytes": IntegerField(
                lazy_gettext("JSON answer decoded in parts above (bytes)"), [Optional(), NumberRange(1)], widget=widget
            ),
            "allow_insecure_http": BooleanField(lazy_gettext("Allow plain http to a non-loopback host")),
        }

    @cached_property
    def settings(self) -> Settings:
        """Base URL, token, retry and guard settings, read once from the connection."""
        return settings_from(self.get_connection(self.fastly_conn_id), self._overrides)

    @cached_property
    def session(self) -> requests.Session:
        """One HTTP session per hook, so connections are reused across calls; the deadline guards it."""
        return transport.session(self.settings)

    def get_conn(self) -> requests.Session:
        """Return the hook's HTTP session, as Airflow hooks do."""
        return self.session

    def _get_json(
        self, path: str, params: Mapping[str, str] | None = None, *, pending_ok: bool = False
    ) -> dict[str, Any] | None:
        """GET a JSON object under the guards; a 202 is ``None`` where ``pending_ok``, else an error."""
        settings = self.settings
        where = transport.path_with_query(path, params)

        def read(response: requests.Response, body: Iterator[bytes]) -> dict[str, Any] | None:
            data = transport.read_json_body(response, body, where, settings)
            return transport.json_answer(response.status_code, where, response.headers, data, settings, pending_ok)

        return transport.get(self.session, settings, path, params, JSON, read, self.log)

    def get_invoice(self, year: int | str, month: int | str) -> dict[str, Any]:
        """
        Return the account's invoice for a month (``GET /billing/v2/year/{year}/month/{month}``).

        :param year: the year, 4 digits (``2026`` or ``"2026"``).
        :param month: the month, 1 to 12 (``3``, ``"3"`` or ``"03"``); not after the current month.
        """
        return self._get_json(v2.invoice_path(year, month))  # type: ignore[return-value]

    def get_invoice_parts(
        self, year: int | str, month: int | str, *, part_items: int = transport.PART_ITEMS
    ) -> Iterator[dict[str, Any]]:
        """
        The invoice of :meth:`get_invoice` in parts, each the invoice with a run of its line items, in order.

        An answer up to the connection extra ``stream_body_bytes`` (default 32 MiB) is one part, the whole
        invoice. A larger one is fetched and checked whole (size cap, deadline, exact numbers, NaN and
        nesting refused) and then decoded a part at a time, so its line items are never all alive as dicts
        (several times the body). Build its frames with
        :func:`~airflow_provider_fastly_billing.frames.invoice_parts_to_frames`.

        :param year: as for :meth:`get_invoice`.
        :param month: as for :meth:`get_invoice`.
        :param part_items: line items per part of a large answer.
        """
        if part_items < 1:
            raise ValueError(f"part_items must be at least 1, got {part_items}")
        settings = self.settings
        path = v2.invoice_path(year, month)

        def read(response: requests.Response, body: Iterator[bytes]) -> Iterator[dict[str, Any]]:
            return transport.read_json_parts(response, body, path, settings, "line_items", part_items)

        return transport.get(self.session, settings, path, None, JSON, read, self.log)

    def get_invoice_by_id(self, customer_id: str, invoice_id: int | str) -> dict[str, Any]:
        """
        Return one invoice of an account customer by its id.

        :param customer_id: the alphanumeric Fastly customer id.
        :param invoice_id: the numeric invoice id.
        """
        return self._get_json(v2.invoice_by_id_path(customer_id, invoice_id))  # type: ignore[return-value]

    def get_invoice_mtd(
        self, customer_id: str, year: int | str | None = None, month: int | str | None = None
    ) -> dict[str, Any] | None:
        """
        Return a customer's month-to-date estimate, or ``None`` while Fastly is still generating it (202).

        :param customer_id: the alphanumeric Fastly customer id.
        :param year: with ``month``, the month to estimate; both omitted means the current month.
        :param month: with ``year``, the month to estimate.
        """
        return self._get_json(*v2.mtd_request(customer_id, year, month), pending_ok=True)

    def list_invoices(
        self, start: date | str | None = None, end: date | str | None = None, *, page_size: int = v3.MAX_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """
        Iterate over every v3 invoice whose billing period starts in ``[start, end]``, newest first.

        Follows ``meta.next_cursor`` page by page until the last, within bounds (see
        :func:`~airflow_provider_fastly_billing.api.v3.walk`): an empty page that names a next cursor, a
        cursor sent twice, or more pages than the answer's own total allows is a ``FastlyApiError``, so a
        looping API cannot make this run forever. Inputs are checked at once, before any request.

        :param start: first billing start date (``date`` or ``YYYY-MM-DD``); ``None`` for no lower bound.
        :param end: last billing start date; ``None`` for no upper bound.
        :param page_size: invoices per request, 1 to 200.
        """
        params = v3.list_params(start, end, page_size)
        return self._walk(v3.INVOICES_PATH, params)

    def _walk(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        pages = v3.walk(lambda query: self._get_json(path, query) or {}, path, params, secret=self.settings.token)
        return (v3.exact_v3_amount(invoice) for invoice in pages)  # type: ignore[misc]

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """
        Return a customer's record (``GET /customer/{customer_id}``, Fastly's ``CustomerResponse``).

        Its ``name`` is the account name that invoices lack (FOCUS ``BillingAccountName``).

        :param customer_id: the alphanumeric Fastly customer id.
        """
        return self._get_json(customer_path(customer_id))  # type: ignore[return-value]

    def get_account_names(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """
        Return customer id -> account name, one :meth:`get_customer` per distinct id.

        A customer the token may not read (403) or that Fastly does not know (404) is left out, with a
        warning: FOCUS then names it by its id. Any other failure is raised.

        :param customer_ids: the customers, e.g. those of the invoices of a load.
        """
        names = {}
        for customer_id in dict.fromkeys(customer_ids):
            try:
                name = self.get_customer(customer_id).get("name")
            except (FastlyAuthError, FastlyNotFoundError) as exc:
                self.log.warning("No account name for customer %s: %s", customer_id, exc)
                continue
            if isinstance(name, str) and name:
                names[customer_id] = name
        return names

    def get_invoice_v3(self, invoice_id: int | str) -> dict[str, Any]:
        """
        Return one v3 invoice (``GET /billing/v3/invoices/{invoice_id}``).

        :param invoice_id: the numeric invoice id.
        """
        return v3.exact_v3_amount(self._get_json(v3.invoice_path(invoice_id)))  # type: ignore[return-value]

    def get_invoice_mtd_v3(self) -> dict[str, Any] | None:
        """Return the account's v3 month-to-date invoice, or ``None`` while Fastly generates it (202)."""
        return v3.exact_v3_amount(self._get_json(v3.MTD_PATH, pending_ok=True))

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
        so a broken download leaves no file behind; it is fetched again whole, from the same retry budget
        as any request. The deadline covers the download; the size cap of JSON answers does not.

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
        path = v2.invoice_path(year, month) if by_period else v2.invoice_by_id_path(customer_id, invoice_id)  # type: ignore[arg-type]
        target = storage_path(destination)

        def write(response: requests.Response, body: Iterator[bytes]) -> None:
            try:
                write_atomically(target, body)
            except OSError as exc:
                import requests

                if isinstance(exc, requests.RequestException):
                    raise
                raise FastlyApiError(response.status_code, path, f"could not write {destination}: {exc}") from exc

        try:
            transport.get(self.session, self.settings, path, None, ACCEPT[fmt], write, self.log)
        except FastlyApiError as exc:
            if exc.status is None:
                raise FastlyApiError(None, path, f"download broken off ({exc.msg})") from None
            raise
        return destination

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the connection as the UI's Test button does: the token, then a real billing call.

        Airflow tests a form under a random temporary connection id, so the messages name what a user
        recognises, the API host and the token's name, never the connection id.
        """
        try:
            settings = settings_from(self.get_connection(self.fastly_conn_id), self._overrides, "the connection")
        except ValueError as exc:
            return False, str(exc)
        self.__dict__["settings"] = settings
        name = "the token"
        try:
            token = self._get_json("/tokens/self") or {}
            name = f"token {token.get('name') or token.get('id') or '(unnamed)'!r}"
            self._get_json(v3.INVOICES_PATH, {"limit": "1"})
        except FastlyApiError as exc:
            if exc.status == 403:
                return False, f"{name} is valid on {settings.host} but lacks the Billing role: {exc}"
            return False, f"{name} on {settings.host}: {exc}"
        return True, f"{name} reads billing data on {settings.host}"

    async def _async_settings(self) -> Settings:
        if "settings" not in self.__dict__:
            conn = await self.aget_connection(self.fastly_conn_id)
            self.__dict__["settings"] = settings_from(conn, self._overrides)
        return self.settings

    @contextlib.asynccontextmanager
    async def async_client(self) -> AsyncIterator[httpx.AsyncClient]:
        """
        One ``httpx.AsyncClient`` for many async calls (a trigger's polls), closed on exit.

        Building a client costs tens of milliseconds of the triggerer's event loop: build it once per
        trigger run and pass it as ``client`` to :meth:`async_get_json` and its callers.
        """
        async with transport.async_client(await self._async_settings()) as client:
            yield client

    async def async_get_json(
        self, path: str, params: Mapping[str, str] | None = None, *, client: httpx.AsyncClient | None = None
    ) -> dict[str, Any] | None:
        """
        Async GET of a JSON object, with the guards, retries, log lines and errors of the sync calls.

        :param client: from :meth:`async_client`; without one, a client is built for this call alone.
        :return: the object, or ``None`` while Fastly answers 202.
        """
        if client is None:
            async with self.async_client() as own:
                return await self.async_get_json(path, params, client=own)
        settings = await self._async_settings()
        where = transport.path_with_query(path, params)
        status, headers, body = await transport.aget_json(client, settings, path, params, self.log)
        return transport.json_answer(status, where, headers, body, settings, pending_ok=True)

    async def async_get_invoice_mtd(
        self,
        customer_id: str | None,
        year: int | str | None = None,
        month: int | str | None = None,
        api_version: str = "v2",
        *,
        client: httpx.AsyncClient | None = None,
    ) -> dict[str, Any] | None:
        """Async :meth:`get_invoice_mtd` (or :meth:`get_invoice_mtd_v3` with ``api_version="v3"``), for triggers."""
        estimate = await self.async_get_json(*mtd_request(customer_id, year, month, api_version), client=client)
        return v3.exact_v3_amount(estimate) if api_version == "v3" else estimate

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
                self._get_json(usage.USAGE_METRICS_PATH, params) or {},
                transport.path_with_query(usage.USAGE_METRICS_PATH, params),
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
        where = transport.path_with_query(path, params)
        return v3.walk(
            lambda query: self._get_json(path, query) or {},
            path,
            params,
            items=lambda answer: usage.service_usage_rows(answer, params, where),
            secret=self.settings.token,
            meta=usage.service_usage_meta,
        )
