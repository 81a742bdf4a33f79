"""
A local Fastly billing API, for demos and tests with no network and no real token.

It serves the billing endpoints with deterministic invoices, checks ``Fastly-Key``, answers the
month-to-date estimate with 202 until it is "generated", applies a rate limit, and injects faults on
request (error statuses, delays, dropped connections, truncated or mislabelled bodies)::

    with FastlySimulator() as sim:
        hook_conn = {"conn_type": "fastly", "host": sim.url, "password": sim.token}
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from airflow_provider_fastly_billing.testing import invoices, usage

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

DEFAULT_TOKEN = "sim-billing-token"
NO_BILLING_TOKEN = "sim-token-without-billing"
RATE_LIMIT_MESSAGE = "You have exceeded your hourly rate limit. Please wait before making more requests."
ACCOUNT_NAMES = ("Acme Media Ltd", "Northwind Streaming GmbH", "Globex Retail Inc.")
"""Account names of the first customers (``GET /customer/{id}``); later ones are numbered."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Fault:
    """
    A fault the simulator applies to the next matching requests.

    :param kind: ``status`` (answer ``status`` with an error body, HTML if ``html``), ``delay`` (sleep
        ``seconds`` first, then answer normally), ``drop`` (send half the body, then close the
        connection), ``truncate`` (send half the body as if complete), ``content_type`` (the right body
        labelled ``text/html``), ``reset`` (close the connection without answering).
    :param times: how many requests it applies to.
    :param path: applies only to request paths containing this text.
    """

    kind: str
    times: int = 1
    status: int = 503
    seconds: float = 0.0
    html: bool = False
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class _Reply(Exception):
    """Raised inside routing to answer at once with an error."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def to_json(value: Any) -> bytes:
    """JSON as the simulator sends it."""
    # Decimals become JSON numbers with their exact digits (every amount here has at most 15).
    return json.dumps(value, default=lambda d: float(d) if isinstance(d, Decimal) else str(d)).encode()


class FastlySimulator:
    """
    A Fastly billing API on ``127.0.0.1``, in a background thread.

    :param port: the port to listen on; 0 picks a free one (see :attr:`url`).
    :param token: the valid API token with billing rights. :data:`NO_BILLING_TOKEN` is valid without them.
    :param account_customers: number of customers on the account; the first is the token's own.
    :param first_month: ``(year, month)`` of the account's first invoice.
    :param mtd_pending: how many 202 answers a month-to-date estimate gives before it is ready.
    :param mtd_ready_after: seconds after its first request that an estimate is ready (with ``mtd_pending``,
        both must pass).
    :param no_estimate_customers: customer ids that can never get an estimate (parent-pay accounts).
    :param rate_limit: requests allowed per ``rate_limit_window`` seconds; ``None`` for no limit.
    :param rate_limit_window: the window's length in seconds.
    :param retry_after: send ``Retry-After`` on 429 answers (Fastly documents only the reset header).
    :param latency: seconds added to every answer.
    :param pdf_padding: bytes added to every PDF, to test large downloads.
    :param string_amounts: send line items' units, rates and amounts as JSON strings, as some real
        answers do (Fastly's own client rejects those).
    :param unattributed_share: the share of each usage type's units that no service accounts for in
        the service usage metrics (``Decimal("0.05")`` for 5 %).
    :param fixed_invoices: v2 invoices served as they are for their ``(year, month)``, to every customer
        (a very large answer, say).

    Set :attr:`repeat_cursor` to make v3 paging loop (every page points back to the second one).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        account_customers: int = 3,
        first_month: tuple[int, int] = (2024, 1),
        mtd_pending: int = 0,
        mtd_ready_after: float = 0.0,
        no_estimate_customers: Iterable[str] = (),
        rate_limit: int | None = None,
        rate_limit_window: float = 3600.0,
        retry_after: bool = True,
        latency: float = 0.0,
        pdf_padding: int = 0,
        string_amounts: bool = False,
        unattributed_share: Decimal = Decimal(0),
        fixed_invoices: Mapping[tuple[int, int], dict[str, Any]] | None = None,
    ) -> None:
        self.token = token
        self.customers = [invoices.base62(f"customer:{n}") for n in range(account_customers)]
        self.first_month = first_month
        self.mtd_pending = mtd_pending
        self.mtd_ready_after = mtd_ready_after
        self.no_estimate_customers = set(no_estimate_customers)
        self.rate_limit = rate_limit
        self.rate_limit_window = rate_limit_window
        self.retry_after = retry_after
        self.latency = latency
        self.pdf_padding = pdf_padding
        self.string_amounts = string_amounts
        self.unattributed_share = Decimal(unattributed_share)
        self.fixed_invoices: dict[tuple[int, int], dict[str, Any]] = dict(fixed_invoices or {})
        self.repeat_cursor = False
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self.max_in_flight = 0
        self.rate_limited = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._mtd_seen: dict[tuple[str, str], list[float]] = {}
        self._window = (0.0, 0)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def customer_id(self) -> str:
        """The id of the token's own customer."""
        return self.customers[0]

    @property
    def url(self) -> str:
        """The base URL to put in a ``fastly`` connection's host."""
        host, port = cast("tuple[str, int]", self._server.server_address[:2])  # an IPv4 server's (host, port)
        return f"http://{host}:{port}"

    def connection(self, token: str | None = None) -> dict[str, Any]:
        """The JSON form of an Airflow connection to this simulator (for ``AIRFLOW_CONN_...``)."""
        return {"conn_type": "fastly", "host": self.url, "password": token or self.token}

    def start(self) -> FastlySimulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fastly-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FastlySimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, kind: str, times: int = 1, **options: Any) -> None:
        """Apply a :class:`Fault` to the next ``times`` matching requests."""
        self.faults.append(Fault(kind, times, **options))

    def reset(self) -> None:
        """Forget recorded requests, pending faults, rate-limit use and estimate progress."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self._mtd_seen.clear()
            self._window = (0.0, 0)
            self.max_in_flight = self.rate_limited = 0

    def billing_requests(self) -> list[RecordedRequest]:
        """The recorded requests to billing endpoints."""
        return [r for r in self.requests if r.path.startswith("/billing/")]

    # Data -----------------------------------------------------------------------------------------

    def customer_index(self, customer_id: str) -> int:
        try:
            return self.customers.index(customer_id)
        except ValueError:
            raise _Reply(404, {"msg": "Record not found", "detail": f"No customer {customer_id}"}) from None

    def account_name(self, customer_id: str) -> str:
        """The account name of a customer of the account (404 for any other)."""
        index = self.customer_index(customer_id)
        return ACCOUNT_NAMES[index] if index < len(ACCOUNT_NAMES) else f"Example Customer {index + 1}"

    def customer(self, customer_id: str) -> dict[str, Any]:
        """``GET /customer/{customer_id}``: a ``CustomerResponse``, for the account's customers only."""
        index = self.customer_index(customer_id)
        return {
            "id": customer_id,
            "name": self.account_name(customer_id),
            "billing_network_type": "public",
            "billing_ref": None,
            "can_configure_wordpress": None,
            "can_reset_passwords": True,
            "can_upload_vcl": True,
            "force_2fa": False,
            "force_sso": False,
            "has_account_panel": True,
            "has_improved_events": True,
            "has_improved_ssl_config": False,
            "has_openstack_logging": False,
            "has_pci": False,
            "has_pci_passwords": False,
            "ip_whitelist": "0.0.0.0/0",
            "owner_id": invoices.base62(f"owner:{index}"),
            "phone_number": "+1-415-555-0100",
            "postal_address": None,
            "pricing_plan": "Developer",
            "pricing_plan_id": invoices.base62("plan:developer"),
            "billing_contact_id": None,
            "legal_contact_id": None,
            "security_contact_id": None,
            "technical_contact_id": None,
            "created_at": "2024-01-01T00:00:00Z",
            "deleted_at": None,
            "updated_at": "2025-06-01T00:00:00Z",
        }

    def charges(self, customer_id: str, year: int, month: int, *, estimate: bool = False) -> invoices.InvoiceCharges:
        """The charges of a customer's month, or a 404 outside the account's life."""
        now = time.gmtime()
        if not (self.first_month <= (year, month) <= (now.tm_year, now.tm_mon)) or not 1 <= month <= 12:
            raise _Reply(404, {"msg": "Record not found", "detail": f"No invoice for {year:04d}-{month:02d}"})
        index = self.customer_index(customer_id)
        current = (year, month) == (now.tm_year, now.tm_mon)
        return invoices.charges_for(customer_id, index, year, month, scale=0.5 if estimate or current else 1.0)

    def invoice(self, customer_id: str, year: int, month: int) -> dict[str, Any]:
        """The v2 invoice (``BillingResponse``) of a customer's month."""
        if (year, month) in self.fixed_invoices:
            return self.fixed_invoices[year, month]
        now = time.gmtime()
        status = "Pending" if (year, month) == (now.tm_year, now.tm_mon) else "Paid"
        body = invoices.v2_invoice(self.charges(customer_id, year, month), status)
        if self.string_amounts:
            for item in body["line_items"]:
                for key in ("units", "rate_per_unit", "amount"):
                    item[key] = str(item[key])
        return body

    def invoice_by_id(self, customer_id: str, invoice_id: int) -> dict[str, Any]:
        decoded = invoices.decode_invoice_id(invoice_id)
        if decoded is None or decoded[0] != self.customer_index(customer_id):
            raise _Reply(404, {"msg": "Record not found", "detail": f"No invoice {invoice_id}"})
        return self.invoice(customer_id, decoded[1], decoded[2])

    def invoice_ids(self, customer_id: str) -> list[int]:
        """Ids of every invoice of a customer, oldest first."""
        index = self.customer_index(customer_id)
        now = time.gmtime()
        first, last = invoices.month_index(*self.first_month), invoices.month_index(now.tm_year, now.tm_mon)
        return [invoices.invoice_id_for(index, m // 12, m % 12 + 1) for m in range(first, last + 1)]

    def _estimate_ready(self, key: tuple[str, str]) -> bool:
        with self._lock:
            seen = self._mtd_seen.setdefault(key, [])
            seen.append(time.monotonic())
            return len(seen) > self.mtd_pending and seen[-1] - seen[0] >= self.mtd_ready_after

    def estimate(self, customer_id: str, year: int, month: int) -> dict[str, Any] | None:
        """The v2 estimate, or ``None`` while it is being generated."""
        self.customer_index(customer_id)
        if customer_id in self.no_estimate_customers:
            raise _Reply(422, {"msg": "Month-to-date estimate unavailable", "detail": "parent-pay account"})
        charges = self.charges(customer_id, year, month, estimate=True)
        if not self._estimate_ready((customer_id, f"{year:04d}-{month:02d}")):
            return None
        return invoices.v2_estimate(charges)

    def estimate_v3(self) -> dict[str, Any] | None:
        """The v3 month-to-date invoice of the token's customer, or ``None`` while it is generated."""
        if self.customer_id in self.no_estimate_customers:
            raise _Reply(422, {"title": "Month-to-date invoice unavailable", "detail": "parent-pay account"})
        now = time.gmtime()
        charges = self.charges(self.customer_id, now.tm_year, now.tm_mon, estimate=True)
        if not self._estimate_ready(("v3", f"{now.tm_year:04d}-{now.tm_mon:02d}")):
            return None
        return invoices.v3_month_to_date(charges)

    def invoice_v3(self, invoice_id: int) -> dict[str, Any]:
        decoded = invoices.decode_invoice_id(invoice_id)
        if decoded is None or decoded[0] >= len(self.customers):
            raise _Reply(404, {"title": "Not Found", "detail": f"No invoice {invoice_id}"})
        index, year, month = decoded
        return invoices.v3_invoice(self.charges(self.customers[index], year, month))

    def invoiced_months(self, start: str | None = None, end: str | None = None) -> list[tuple[int, int]]:
        """Months with a closed invoice whose first day is in ``[start, end]``, newest first."""
        now = time.gmtime()
        first, last = invoices.month_index(*self.first_month), invoices.month_index(now.tm_year, now.tm_mon) - 1
        months = [(m // 12, m % 12 + 1) for m in range(last, first - 1, -1)]
        return [(y, m) for y, m in months if (start or "") <= f"{y:04d}-{m:02d}-01" <= (end or "9999")]

    def list_v3(self, query: dict[str, str]) -> dict[str, Any]:
        """One page of ``GET /billing/v3/invoices``: every customer's invoices, newest billing month first."""
        start, end = query.get("billing_start_date") or None, query.get("billing_end_date") or None
        for value in (start, end):
            if value is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise _Reply(400, {"title": "Bad Request", "detail": f"invalid date {value!r}"})
        limit = query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 200:
            raise _Reply(400, {"title": "Bad Request", "detail": "limit must be 1 to 200"})
        limit_n = int(limit)
        months = self.invoiced_months(start, end)
        total = len(months) * len(self.customers)
        offset = self._decode_cursor(query.get("cursor", ""), f"{start}:{end}")
        data = [
            invoices.v3_invoice(
                self.charges(self.customers[k % len(self.customers)], *months[k // len(self.customers)])
            )
            for k in range(offset, min(offset + limit_n, total))
        ]
        following = limit_n if self.repeat_cursor else offset + limit_n
        cursor = self._encode_cursor(following, f"{start}:{end}") if offset + limit_n < total else ""
        return {
            "data": data,
            "meta": {"next_cursor": cursor, "limit": limit_n, "sort": "billing_start_date", "total": total},
        }

    def usage_months(self, query: dict[str, str], *, most: int | None = None) -> list[invoices.InvoiceCharges]:
        """The charges of the token's customer for each month of ``start_month``..``end_month`` in its life."""
        bounds = [query.get(name, "") for name in ("start_month", "end_month")]
        if not all(re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value) for value in bounds) or bounds[0] > bounds[1]:
            raise _Reply(400, {"title": "Bad Request", "detail": f"invalid start_month/end_month {bounds}"})
        first, last = (invoices.month_index(int(b[:4]), int(b[5:])) for b in bounds)
        if most is not None and last - first >= most:
            raise _Reply(400, {"title": "Bad Request", "detail": f"at most {most} months per request"})
        now = time.gmtime()
        life = range(invoices.month_index(*self.first_month), invoices.month_index(now.tm_year, now.tm_mon) + 1)
        months = [(m // 12, m % 12 + 1) for m in range(first, last + 1) if m in life]
        return [self.charges(self.customer_id, year, month) for year, month in months]

    def usage_metrics(self, query: dict[str, str]) -> dict[str, Any]:
        """``GET /billing/v3/usage-metrics``: the token's customer's usage per month and usage type."""
        now = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime())
        return {"data": [item for ch in self.usage_months(query, most=3) for item in usage.usage_metrics(ch, now)]}

    def service_usage(self, query: dict[str, str]) -> dict[str, Any]:
        """One page of ``GET /billing/v3/service-usage-metrics``: one usage type's units per service."""
        product, kind = query.get("product_id"), query.get("usage_type_name")
        if not product or not kind:
            raise _Reply(400, {"title": "Bad Request", "detail": "product_id and usage_type_name are required"})
        limit = query.get("limit", "1000")
        if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
            raise _Reply(400, {"title": "Bad Request", "detail": "limit must be 1 to 10000"})
        months = self.usage_months(query)
        units: dict[usage.Service, Decimal] = {}
        for ch in months if product == usage.PRODUCT_ID else []:
            for total in (t for t in usage.usage_types(ch) if t.usage_type == kind):
                for service, value in usage.service_units(ch, total, self.unattributed_share):
                    units[service] = units.get(service, Decimal(0)) + value
        rows = sorted(units.items(), key=lambda row: (-row[1], row[0].service_id))
        rows = [row for row in rows if query.get("service") in (None, row[0].service_id)]
        scope = ":".join(query.get(name, "") for name in ("product_id", "usage_type_name", "service", "start_month"))
        offset, limit_n = self._decode_cursor(query.get("cursor", ""), f"{scope}:{query['end_month']}"), int(limit)
        following = limit_n if self.repeat_cursor else offset + limit_n
        next_cursor = (
            self._encode_cursor(following, f"{scope}:{query['end_month']}") if offset + limit_n < len(rows) else ""
        )
        start, end = query["start_month"], query["end_month"]
        last_day = calendar.monthrange(int(end[:4]), int(end[5:]))[1]
        return {
            "data": {
                "customer_id": self.customer_id,
                "start_time": f"{start}-01T00:00:00Z",
                "end_time": f"{end}-{last_day:02d}T23:59:59Z",
                "usage_type": kind,
                "unit": usage.UNITS.get(kind.rsplit(" ", 1)[-1], "unit"),
                "details": [
                    {
                        "customer_id": self.customer_id,
                        "service_id": service.service_id,
                        "service_name": service.service_name,
                        "usage_units": value,
                    }
                    for service, value in rows[offset : offset + limit_n]
                ],
                "meta": {"next_cursor": next_cursor, "limit": limit_n, "sort": "usage_units", "total": len(rows)},
            }
        }

    @staticmethod
    def _encode_cursor(offset: int, scope: str) -> str:
        return base64.urlsafe_b64encode(json.dumps({"o": offset, "s": scope}).encode()).decode()

    @staticmethod
    def _decode_cursor(cursor: str, scope: str) -> int:
        if not cursor:
            return 0
        try:
            state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            if state["s"] == scope and isinstance(state["o"], int) and state["o"] >= 0:
                return state["o"]
        except (ValueError, KeyError, TypeError):
            pass
        raise _Reply(400, {"title": "Bad Request", "detail": "invalid cursor"})

    # Request handling -----------------------------------------------------------------------------

    def _check_rate_limit(self) -> dict[str, str]:
        if self.rate_limit is None:
            return {}
        with self._lock:
            now = time.time()
            start, used = self._window
            if now - start >= self.rate_limit_window:
                start, used = now, 0
            reset = start + self.rate_limit_window
            allowed = used < self.rate_limit
            self._window = (start, used + allowed)
            headers = {
                "Fastly-RateLimit-Remaining": str(max(self.rate_limit - used - allowed, 0)),
                "Fastly-RateLimit-Reset": str(int(reset) + 1),
            }
            if not allowed:
                self.rate_limited += 1
                if self.retry_after:
                    headers["Retry-After"] = str(max(int(reset - now + 0.999), 1))
                raise _Reply(429, {"msg": RATE_LIMIT_MESSAGE}, headers)
            return headers

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _route(self, path: str, query: dict[str, str]) -> dict[str, Any] | None:
        if path == "/tokens/self":
            return {
                "id": invoices.base62("token"),
                "name": "simulator token",
                "scope": "global:read",
                "user_id": invoices.base62("user"),
                "services": [],
                "created_at": "2024-01-01T00:00:00Z",
            }
        if m := re.fullmatch(r"/customer/([A-Za-z0-9]+)", path):
            return self.customer(m[1])
        if m := re.fullmatch(r"/billing/v2/year/(\d{4})/month/(\d{2})", path):
            return self.invoice(self.customer_id, int(m[1]), int(m[2]))
        if m := re.fullmatch(r"/billing/v2/account_customers/([A-Za-z0-9]+)/invoices/(\d+)", path):
            return self.invoice_by_id(m[1], int(m[2]))
        if m := re.fullmatch(r"/billing/v2/account_customers/([A-Za-z0-9]+)/mtd_invoice", path):
            now = time.gmtime()
            year, month = int(query.get("year", now.tm_year)), int(query.get("month", now.tm_mon))
            return self.estimate(m[1], year, month)
        if path == "/billing/v3/invoices":
            return self.list_v3(query)
        if path == "/billing/v3/invoices/month-to-date":
            return self.estimate_v3()
        if m := re.fullmatch(r"/billing/v3/invoices/(\d+)", path):
            return self.invoice_v3(int(m[1]))
        if path == "/billing/v3/usage-metrics":
            return self.usage_metrics(query)
        if path == "/billing/v3/service-usage-metrics":
            return self.service_usage(query)
        raise _Reply(404, {"msg": "Record not found", "detail": f"No route {path}"})


def _make_handler(sim: FastlySimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once, as from a real server
        server_version = "FastlySimulator"

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: tests read the recorded requests instead."""

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            headers = {k: v for k, v in self.headers.items()}
            with sim._lock:
                sim.requests.append(RecordedRequest("GET", url.path, query, headers))
                sim._in_flight += 1
                sim.max_in_flight = max(sim.max_in_flight, sim._in_flight)
            try:
                if sim.latency:
                    time.sleep(sim.latency)
                self._answer(url.path, query)
            finally:
                with sim._lock:
                    sim._in_flight -= 1

        def _answer(self, path: str, query: dict[str, str]) -> None:
            extra: dict[str, str] = {}
            try:
                token = self.headers.get("Fastly-Key")
                if token not in (sim.token, NO_BILLING_TOKEN):
                    raise _Reply(401, {"msg": "Provided credentials are missing or invalid"})
                extra = sim._check_rate_limit()
                if token == NO_BILLING_TOKEN and path.startswith("/billing/"):
                    raise _Reply(403, {"msg": "Unauthorized", "detail": "This token lacks the Billing role"})
                fault = sim._take_fault(path)
                if fault and fault.kind == "reset":
                    self.close_connection = True
                    return
                if fault and fault.kind == "delay":
                    time.sleep(fault.seconds)
                if fault and fault.kind == "status":
                    if fault.html:
                        self._send(
                            fault.status,
                            b"<html><body><h1>Service Unavailable</h1></body></html>",
                            "text/html",
                            fault.headers,
                        )
                        return
                    raise _Reply(fault.status, {"msg": "Service unavailable", "detail": "injected"}, fault.headers)
                data = sim._route(path, query)
            except _Reply as reply:
                self._send(reply.status, to_json(reply.body), "application/json", {**extra, **reply.headers})
                return
            if data is None:
                self._send(202, to_json({"title": "Accepted", "status": "202"}), "application/json", extra)
                return
            self._send_data(data, extra, fault)

        def _send_data(self, data: dict[str, Any], extra: dict[str, str], fault: Fault | None) -> None:
            accept = self.headers.get("Accept", "application/json")
            if "application/pdf" in accept and "line_items" in data:
                length, chunks = invoices.invoice_pdf(data, sim.pdf_padding)
                self._stream(200, length, chunks, "application/pdf", extra, fault)
                return
            if "text/csv" in accept and "line_items" in data:
                body, content_type = invoices.invoice_csv(data), "text/csv"
            else:
                body, content_type = to_json(data), "application/json"
            if fault and fault.kind == "content_type":
                content_type = "text/html"
            self._stream(200, len(body), iter([body]), content_type, extra, fault)

        def _stream(
            self,
            status: int,
            length: int,
            chunks: Iterator[bytes],
            content_type: str,
            extra: dict[str, str],
            fault: Fault | None,
        ) -> None:
            cut = fault.kind if fault and fault.kind in ("drop", "truncate") else None
            limit = length // 2 if cut else length
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length if cut == "drop" else limit))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            sent = 0
            for chunk in chunks:
                piece = chunk[: limit - sent]
                self.wfile.write(piece)
                sent += len(piece)
                if sent >= limit:
                    break
            if cut == "drop":
                self.wfile.flush()
                self.close_connection = True

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str]) -> None:
            self._stream(status, len(body), iter([body]), content_type, extra, None)

    return Handler
