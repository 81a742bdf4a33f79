"""Operator that fetches Fastly invoices or estimates and loads them into a SQL warehouse in one task."""

from __future__ import annotations

import calendar
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator

from airflow_provider_fastly_billing import validation
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.operators.billing import default_deferrable, wait_for_estimate
from airflow_provider_fastly_billing.operators.macros import run_date

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    import pandas as pd
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Asset, Context

    from airflow_provider_fastly_billing.frames import InvoiceFrames
    from airflow_provider_fastly_billing.warehouse import Rows

    Invoices = list[dict[str, Any]] | Iterator[dict[str, Any]]
    """Whole invoices, or one invoice in parts (:meth:`BillingHook.get_invoice_parts`)."""


PART_SIZE = 100
"""Invoices fetched, converted and written at a time by a fan-out: memory holds about two parts of answers."""


class InvoiceToSqlOperator(BaseOperator):
    """
    Fetch Fastly invoices or month-to-date estimates and load them into a SQL warehouse, idempotently.

    Say what to fetch with exactly one of: ``year`` and ``month`` (the account's invoice),
    ``invoices`` (or ``customer_id`` with ``invoice_id``) for invoices of account customers, or
    ``estimate_for`` for month-to-date estimates. Several are fetched by a small bounded thread pool
    and loaded in one transaction; re-running replaces what an earlier run loaded. XCom holds a small
    summary: load keys, invoice ids, rows per table and the total cost as an exact string.

    :param warehouse_conn_id: a SQL connection (DuckDB, PostgreSQL, SQLite or any common-sql hook).
    :param fastly_conn_id: the ``fastly`` connection.
    :param year: with ``month``, the account's invoice for that month; with ``estimate_for``, the
        estimated month (default: the current one).
    :param month: see ``year``.
    :param customer_id: with ``invoice_id``, one invoice of an account customer.
    :param invoice_id: see ``customer_id``.
    :param invoices: ``[(customer_id, invoice_id), ...]`` of account customers (resellers).
    :param estimate_for: customer ids whose month-to-date estimates to load, as snapshots of the day.
    :param schema: warehouse schema; default the connection's.
    :param table_prefix: prefix of the table names; default ``fastly_``.
    :param max_workers: parallel requests to Fastly when fetching several (keep it small: rate limits).
    :param poll_interval: seconds between polls while an estimate is being generated.
    :param timeout: seconds to wait for an estimate.
    :param deferrable: wait for a single customer's estimate in the triggerer.
    :param api_version: ``"v2"`` (default) or ``"v3"``. With v3, ``year``/``month`` load every invoice listed
        for the month, ``invoices`` are fetched by invoice id, and ``estimate_for`` holds the token's own
        customer id (v3 has one estimate per account; a different customer in the answer fails the task).
        Both generations land in the same tables, told apart by ``api_version``.
    :param focus: also write the ``focus`` table (FOCUS 1.2 rows of the invoices) in the same transaction;
        with ``service_costs``, split per Fastly service (``ResourceId``/``ResourceName``).
    :param account_names: customer id -> account name for the ``focus`` table; default: read once per load
        with :meth:`~.BillingHook.get_account_names` (``GET /customer/{id}``).
    :param service_costs: with ``year`` and ``month``: also fetch the month's usage metrics and usage per
        service, and load ``usage``, ``service_usage`` and ``service_costs`` (every line of the token's
        customer's invoices split across services) in the same transaction as the invoices.
    """

    template_fields: Sequence[str] = (
        "warehouse_conn_id",
        "fastly_conn_id",
        "year",
        "month",
        "customer_id",
        "invoice_id",
        "invoices",
        "estimate_for",
        "schema",
        "table_prefix",
        "api_version",
        "account_names",
    )
    ui_color = "#ff282d"

    def __init__(
        self,
        *,
        warehouse_conn_id: str = "fastly_warehouse",
        fastly_conn_id: str = BillingHook.default_conn_name,
        year: int | str | None = None,
        month: int | str | None = None,
        customer_id: str | None = None,
        invoice_id: int | str | None = None,
        invoices: Sequence[Sequence[Any]] | None = None,
        estimate_for: Sequence[str] | None = None,
        schema: str | None = None,
        table_prefix: str = "fastly_",
        max_workers: int = 8,
        poll_interval: float = 10.0,
        timeout: float = 600.0,
        deferrable: bool = default_deferrable(),
        api_version: str = "v2",
        focus: bool = False,
        account_names: Mapping[str, str] | None = None,
        service_costs: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.focus = focus
        self.account_names = account_names
        self.service_costs = service_costs
        self.api_version = api_version
        self.warehouse_conn_id = warehouse_conn_id
        self.fastly_conn_id = fastly_conn_id
        self.year = year
        self.month = month
        self.customer_id = customer_id
        self.invoice_id = invoice_id
        self.invoices = invoices
        self.estimate_for = estimate_for
        self.schema = schema
        self.table_prefix = table_prefix
        self.max_workers = max_workers
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> BillingHook:
        return BillingHook(self.fastly_conn_id)

    def _invoice_pairs(self) -> list[tuple[str, str]]:
        pairs = [tuple(p) for p in self.invoices or ()]
        if self.customer_id is not None or self.invoice_id is not None:
            pairs.append((self.customer_id, self.invoice_id))
        if any(len(p) != 2 for p in pairs):
            raise ValueError("invoices must be (customer_id, invoice_id) pairs")
        return [(validation.customer_id(c), validation.invoice_id(i)) for c, i in pairs]

    def _check(self) -> tuple[str, Any]:
        """Validate every input before any request; return the mode and what to fetch."""
        from airflow_provider_fastly_billing.warehouse import check_identifier

        validation.api_version(self.api_version)
        check_identifier(self.schema, "schema")
        check_identifier(self.table_prefix, "table_prefix")
        if not 1 <= int(self.max_workers) <= 16:
            raise ValueError(f"max_workers must be 1 to 16, got {self.max_workers}")
        pairs = self._invoice_pairs()
        estimates = [validation.customer_id(c) for c in self.estimate_for or ()]
        period = validation.optional_period(self.year, self.month)
        modes = [m for m, used in (("invoices", pairs), ("estimates", estimates)) if used]
        if period and not estimates:
            modes.append("period")
        if len(modes) != 1:
            raise ValueError("say what to load with exactly one of: year and month, invoices, estimate_for")
        if self.service_costs and modes[0] != "period":
            raise ValueError("service_costs needs year and month: usage metrics are per month of the token's customer")
        if self.account_names is not None and not isinstance(self.account_names, dict):
            raise ValueError("account_names must be a mapping of customer id to account name")
        if self.api_version == "v3" and len(estimates) > 1:
            raise ValueError("Billing v3 has one estimate, the token's account's: give one customer id")
        return modes[0], {"invoices": pairs, "estimates": estimates, "period": period}[modes[0]]

    def _outlet_assets(self) -> list[Asset]:
        """This task's outlet assets, each one of the tables the load writes (checked before any request)."""
        from airflow_provider_fastly_billing import assets

        if not self.outlets:
            return []
        return assets.check_outlets(
            self.outlets, assets.written(self.warehouse_conn_id, self.schema, self.table_prefix)
        )

    def execute(self, context: Context) -> dict[str, Any]:
        mode, what = self._check()
        self._outlet_assets()
        if mode == "period":
            return self._load(self._invoices_of_month(*what), [], context)
        if mode == "invoices":
            return self._load_parts(((part, []) for part in self._fan_out(self._invoice, what)), context)
        if len(what) == 1:
            defer = self.defer if self.deferrable else None
            return self._load([], [self._estimate_of(self.hook, what[0], defer)], context)
        return self._load_parts((([], part) for part in self._fan_out(self._estimate_of, what)), context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after deferral with the estimate, and load it."""
        from airflow_provider_fastly_billing.triggers.billing import estimate_from_event

        return self._load([], [estimate_from_event(event, TimeoutError)], context)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the Fastly endpoints read and the four tables written, with their columns."""
        from airflow_provider_fastly_billing import assets, lineage

        mode, what = self._check()
        tables = lineage.table_datasets(assets.written(self.warehouse_conn_id, self.schema, self.table_prefix))
        return lineage.lineage(self.hook, lineage.transfer_paths(self.api_version, mode, what), tables)

    def _invoices_of_month(self, year: str, month: str) -> Invoices:
        """v2: the account's invoice of the month, in parts when large; v3: every invoice listed for the month."""
        if self.api_version == "v2":
            return self.hook.get_invoice_parts(year, month)
        first = date(int(year), int(month), 1)
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        return list(self.hook.list_invoices(first, last))

    def _invoice(self, hook: BillingHook, pair: tuple[str, str]) -> dict[str, Any]:
        return hook.get_invoice_v3(pair[1]) if self.api_version == "v3" else hook.get_invoice_by_id(*pair)

    def _estimate_of(
        self, hook: BillingHook, customer_id: str, defer: Callable[..., Any] | None = None
    ) -> dict[str, Any]:
        return wait_for_estimate(
            hook,
            customer_id,
            self.year,
            self.month,
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            log=self.log,
            defer=defer,
            api_version=self.api_version,
        )

    def _fan_out(
        self, fetch: Callable[[BillingHook, Any], dict[str, Any]], items: Sequence[Any]
    ) -> Iterator[list[Any]]:
        """
        Fetch ``items`` (each once) with a bounded pool, in order, in parts of :data:`PART_SIZE` answers.

        The pool runs at most one part ahead of the caller, so memory holds about two parts of answers however
        many items there are. A failure raises where its part is reached: the caller's transaction rolls back.
        Each pool thread gets a hook, and so an HTTP session, of its own. The thread-local lives only for
        this call: an operator holds no per-thread state, so Airflow can deep-copy it.
        """
        local = threading.local()

        def fetch_in_thread(item: Any) -> dict[str, Any]:
            if not hasattr(local, "hook"):
                local.hook = BillingHook(self.fastly_conn_id)
            return fetch(local.hook, item)

        pending = iter(dict.fromkeys(items))
        workers = min(int(self.max_workers), len(items))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastly") as pool:
            futures = deque(pool.submit(fetch_in_thread, item) for item in islice(pending, 2 * PART_SIZE))
            try:
                while futures:
                    part = [futures.popleft().result() for _ in range(min(PART_SIZE, len(futures)))]
                    futures.extend(pool.submit(fetch_in_thread, item) for item in islice(pending, PART_SIZE))
                    yield part
            finally:
                for future in futures:
                    future.cancel()

    def _load(self, invoices: Invoices, estimates: list[dict[str, Any]], context: Context) -> dict[str, Any]:
        """Load what was fetched in one transaction."""
        return self._load_parts([(invoices, estimates)], context)

    def _load_parts(self, parts: Iterable[tuple[Invoices, list[dict[str, Any]]]], context: Context) -> dict[str, Any]:
        """
        Build each part's tables and write them, all parts in one transaction; a part's answers go once written.

        ``focus`` rows are built per part from that part's frames. ``service_costs`` needs the whole month's
        invoices: it is allowed with ``year`` and ``month`` only, whose invoices come as one part.
        """
        import pandas as pd

        from airflow_provider_fastly_billing.frames import InvoiceFrames, estimates_to_frames
        from airflow_provider_fastly_billing.warehouse import INVOICE_TABLES, SERVICE_COST_TABLES, Load

        fetched_at = datetime.now(timezone.utc)
        snapshot = run_date(context["dag_run"]).date()
        names = [
            *INVOICE_TABLES,
            *(["focus"] if self.focus else []),
            *(SERVICE_COST_TABLES if self.service_costs else []),
        ]
        known_names: dict[str, str] = {}
        loaded: list[pd.DataFrame] = []
        summary: dict[str, Any] = {"load_keys": [], "invoice_ids": [], "total_cost": Decimal(0)}
        with Load(self.warehouse_conn_id, tables=names, schema=self.schema, table_prefix=self.table_prefix) as load:
            for invoices, estimates in parts:
                for estimate in estimates:
                    if self.estimate_for and estimate.get("customer_id") not in self.estimate_for:
                        raise ValueError(
                            f"the estimate is for customer {estimate.get('customer_id')}, not {self.estimate_for}"
                        )
                frames = InvoiceFrames.concat(
                    [_invoice_frames(invoices, fetched_at), estimates_to_frames(estimates, fetched_at, snapshot)]
                )
                del invoices, estimates
                load.write(self._tables(frames, fetched_at, known_names))
                _add_summary(summary, frames)
                # What the asset events read: the rest (the answers in ``raw``) goes with the part.
                loaded.append(frames.invoices[["period_start", "period_end", "currency_code"]])
        summary = {**summary, "rows": load.rows, "total_cost": str(summary["total_cost"])}
        self.log.info("Loaded %s into %s: %s", summary["invoice_ids"], self.warehouse_conn_id, load.rows)
        self._announce(context, summary, pd.concat(loaded, ignore_index=True))
        return summary

    def _announce(self, context: Context, summary: dict[str, Any], invoices: pd.DataFrame) -> None:
        """Attach what was loaded (and its months as partition keys) to the outlet assets' events."""
        from airflow_provider_fastly_billing import assets

        outlets = self._outlet_assets()
        if outlets:
            assets.announce(context, outlets, assets.event_extra(summary, invoices))

    def _tables(self, frames: InvoiceFrames, fetched_at: datetime, known_names: dict[str, str]) -> dict[str, Rows]:
        """
        A part's invoice tables, ``focus`` and the service cost tables, as the options ask.

        :param known_names: account names read so far in this load; without ``account_names`` given, the
            part's new customers are read (each once per load) and added to it.
        """
        from airflow_provider_fastly_billing.warehouse import invoice_tables

        names = self.account_names
        if self.focus and names is None:
            new = [c for c in dict.fromkeys(frames.invoices["customer_id"]) if c not in known_names]
            known_names.update(self.hook.get_account_names(new))
            names = known_names
        costs = self._service_cost_tables(frames, fetched_at) if self.service_costs else {}
        service_costs = costs["service_costs"].frame if costs else None
        return invoice_tables(frames, focus=self.focus, account_names=names, service_costs=service_costs) | costs

    def _service_cost_tables(self, frames: InvoiceFrames, fetched_at: datetime) -> dict[str, Rows]:
        """Fetch the month's usage metrics and service usage; allocate the month's invoices across services."""
        from airflow_provider_fastly_billing.api.usage import service_usage_queries
        from airflow_provider_fastly_billing.usage import service_usage_to_frames, usage_to_frames
        from airflow_provider_fastly_billing.warehouse import service_cost_tables

        # Both are set: the checks of the modes let service_costs run only with year and month.
        year, month = validation.period(cast("int | str", self.year), cast("int | str", self.month))
        period = f"{year}-{month}"
        items = self.hook.get_usage_metrics(period, period)
        services = [row for query in service_usage_queries(items) for row in self.hook.list_service_usage(**query)]
        customer = _usage_customer(frames, services)
        usage, service_usage = (
            usage_to_frames(items, customer, fetched_at),
            service_usage_to_frames(services, fetched_at),
        )
        self.log.info("Usage of %s in %s: %d usage types, %d service rows", customer, period, len(usage), len(services))
        return service_cost_tables(frames, usage, service_usage, customer, [period])


def _invoice_frames(invoices: Invoices, fetched_at: datetime) -> InvoiceFrames:
    """The frames of whole invoices (a list), or of one invoice in parts (an iterator: ``get_invoice_parts``)."""
    from airflow_provider_fastly_billing.frames import invoice_parts_to_frames, invoices_to_frames

    if isinstance(invoices, list):
        return invoices_to_frames(invoices, fetched_at)
    return invoice_parts_to_frames(invoices, fetched_at)


def _usage_customer(frames: InvoiceFrames, services: list[dict[str, Any]]) -> str:
    """The customer the usage belongs to: as its service usage says, else the only customer invoiced."""
    customers: set[str] = {s["customer_id"] for s in services} or set(frames.invoices["customer_id"])
    if len(customers) != 1:
        raise ValueError(f"cannot tell whose usage this is: customers {sorted(customers)}")
    return customers.pop()


def _add_summary(summary: dict[str, Any], frames: InvoiceFrames) -> None:
    """Add a part's load keys, invoice ids and total cost (exact) to the task's summary."""
    from airflow_provider_fastly_billing.frames import to_python

    summary["load_keys"] += frames.load_keys
    summary["invoice_ids"] += [str(i) for i in frames.invoices["invoice_id"]]
    summary["total_cost"] += sum((c for c in to_python(frames.invoices["cost"]) if c is not None), Decimal(0))
