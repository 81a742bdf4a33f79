"""
Invoices and estimates as DataFrames, one per warehouse table, with fixed columns and types.

Tables (every one carries ``load_key``, the unit a load replaces, plus ``api_version``, ``invoice_id``
and ``customer_id``):

- ``invoices``: one row per invoice or estimate snapshot: period, status, every ``BillingTotal`` field,
  v3's statement fields, ``is_estimate``, ``fetched_at`` and ``raw``: the whole JSON answer but its
  line items, which are stored row by row in ``line_items``.
- ``line_items``: one row per line item, every documented v2 and v3 field, ``extra`` for unknown keys.
- ``regions``: one row per region x metric (``bandwidth``, ``requests``, ``percentile``) x tier.
- ``extras``: one row per ``BillingTotal`` extra.

Money and quantities are ``Decimal`` (object columns): exact from the API to the warehouse. Missing
fields are nulls; unknown fields land in ``extra`` or ``raw``, so a new Fastly field never breaks a load.
This module imports pandas; DAG files should import it only inside tasks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

KEY = {"load_key": "string", "api_version": "string", "invoice_id": "string", "customer_id": "string"}
TOTAL_NUMERIC = (
    "bandwidth",
    "bandwidth_cost",
    "cost",
    "cost_before_discount",
    "discount",
    "extras_cost",
    "incurred_cost",
    "overage",
    "plan_minimum",
    "requests",
    "requests_cost",
)
TOTAL_STRING = ("bandwidth_units", "plan_code", "plan_name", "terms")
V2_LINE_ITEM = {
    "id": "string",
    "line_number": "int",
    "description": "string",
    "amount": "numeric",
    "units": "numeric",
    "rate_per_unit": "numeric",
    "per_unit_cost": "numeric",
    "plan_name": "string",
    "plan_no": "numeric",
    "service_name": "string",
    "service_no": "numeric",
    "service_type": "string",
    "client_service_id": "string",
    "client_plan_id": "string",
    "usage_type_cd": "string",
    "usage_type_no": "numeric",
    "rate_schedule_no": "numeric",
    "rate_schedule_tier_no": "numeric",
    "credit_coupon_code": "string",
    "aria_invoice_id": "string",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "deleted_at": "timestamp",
}
V2_INVOICE_ITEM = tuple(k for k in V2_LINE_ITEM if k not in ("per_unit_cost", "service_type", "client_plan_id"))
V2_ESTIMATE_ITEM = ("plan_no", "description", "units", "per_unit_cost", "service_no", "service_type", "amount")
V2_ESTIMATE_ITEM += ("client_service_id", "client_plan_id")
V3_LINE_ITEM = {
    "rate": "numeric",
    "product_name": "string",
    "product_group": "string",
    "product_line": "string",
    "region": "string",
    "usage_type": "string",
}

SCHEMA: dict[str, dict[str, str]] = {
    "invoices": {
        **KEY,
        "is_estimate": "bool",
        "period_start": "timestamp",
        "period_end": "timestamp",
        "status": "string",
        "sent_at": "timestamp",
        "vendor_state": "string",
        **dict.fromkeys(TOTAL_NUMERIC, "numeric"),
        **dict.fromkeys(TOTAL_STRING, "string"),
        "statement_number": "string",
        "currency_code": "string",
        "invoice_posted_on": "timestamp",
        "fetched_at": "timestamp",
        "raw": "json",
    },
    "line_items": {**KEY, "is_estimate": "bool", **V2_LINE_ITEM, **V3_LINE_ITEM, "extra": "json"},
    "regions": {
        **KEY,
        "region": "string",
        "region_cost": "numeric",
        "metric": "string",
        "metric_total": "numeric",
        "tier": "int",
        "tier_name": "string",
        "units": "numeric",
        "price": "numeric",
        "discounted_price": "numeric",
        "tier_total": "numeric",
    },
    "extras": {**KEY, "name": "string", "recurring": "numeric", "setup": "numeric", "extra": "json"},
}
"""Every table's columns and their kinds: string, numeric (Decimal), int, bool, timestamp, json."""

_PANDAS_DTYPE = {"string": object, "json": object, "int": "Int64", "bool": "boolean", "numeric": object}
METRICS = ("bandwidth", "requests", "percentile")


@dataclass(frozen=True)
class InvoiceFrames:
    """The four tables of one or more invoices, ready for :func:`~.warehouse.load_frames`."""

    invoices: pd.DataFrame
    line_items: pd.DataFrame
    regions: pd.DataFrame
    extras: pd.DataFrame

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in SCHEMA}

    @property
    def load_keys(self) -> list[str]:
        """The loads these frames replace in a warehouse."""
        return list(dict.fromkeys(self.invoices["load_key"]))

    @classmethod
    def concat(cls, parts: Sequence[InvoiceFrames]) -> InvoiceFrames:
        """All ``parts`` as one set of frames, loaded in one transaction."""
        if not parts:
            return _frames_of([])
        return cls(**{name: pd.concat([p.tables[name] for p in parts], ignore_index=True) for name in SCHEMA})


def _decimal(value: Any) -> Decimal | None:
    kind = type(value)
    if kind is Decimal or value is None:
        return value
    if kind is int:
        return Decimal(value)
    if kind is float:
        return Decimal(repr(value))
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None


def _string(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    if type(value) is int or value is None:
        return value
    number = _decimal(value)
    return int(number) if number is not None and number == number.to_integral_value() else None


def _column(values: list[Any], kind: str) -> Any:
    if kind == "numeric":
        exact, dec = _decimal, Decimal
        return pd.Series(
            [v if v is None or type(v) is dec else dec(v) if type(v) is int else exact(v) for v in values],
            dtype=object,
        )
    if kind == "timestamp":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    if kind == "int":
        values = [v if v is None or type(v) is int else _int(v) for v in values]
    elif kind in ("string", "json"):
        values = [v if v is None or type(v) is str else str(v) for v in values]
    return pd.Series(values, dtype=_PANDAS_DTYPE[kind])


def _table(table: str, columns: Mapping[str, list[Any]], length: int) -> pd.DataFrame:
    """A DataFrame with exactly the table's columns and kinds; absent columns are all null."""
    empty = [None] * length
    return pd.DataFrame(
        {
            name: pd.Series(columns.get(name, empty), dtype=object)
            if name in KEY
            else _column(columns.get(name, empty), kind)
            for name, kind in SCHEMA[table].items()
        },
        index=pd.RangeIndex(length),
    )


Columns = dict[str, dict[str, list[Any]]]
"""One document's rows, column by column, per table; every non-empty table has a ``load_key`` column."""


def _frames_of(parts: Sequence[Columns]) -> InvoiceFrames:
    """One DataFrame per table for all ``parts``: building DataFrames once is what makes many invoices cheap."""
    tables = {}
    for name, columns in SCHEMA.items():
        lengths = [len(part[name].get("load_key", ())) for part in parts]
        merged: dict[str, list[Any]] = {column: [] for column in columns}
        for part, length in zip(parts, lengths, strict=True):
            for column, values in merged.items():
                values.extend(part[name].get(column) or [None] * length)
        tables[name] = _table(name, merged, sum(lengths))
    return InvoiceFrames(**tables)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _unknown(items: Iterable[Mapping[str, Any]], known: frozenset[str]) -> list[str | None]:
    return [
        None if known.issuperset(item) else _json({k: v for k, v in item.items() if k not in known}) for item in items
    ]


def _with_key(key: Mapping[str, Any], n: int, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {**{name: [value] * n for name, value in key.items()}, **columns}


def _columns_of(items: list[Mapping[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Columns of ``names`` from a list of dicts; a missing key is a null."""
    if not items:
        return {name: [] for name in names}
    getter = itemgetter(*names)
    try:
        rows = [getter(item) for item in items]
    except KeyError:
        rows = [tuple(item.get(name) for name in names) for item in items]
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=False), strict=False)}


def _line_items(key: Mapping[str, Any], items: list[Mapping[str, Any]], fields: Sequence[str]) -> dict[str, list]:
    columns = _columns_of(items, fields)
    if "line_number" not in columns:
        columns["line_number"] = list(range(1, len(items) + 1))
    columns["extra"] = _unknown(items, frozenset(fields))
    return _with_key(key, len(items), columns)


def _regions(key: Mapping[str, Any], regions: Mapping[str, Any]) -> dict[str, list]:
    rows: list[tuple] = []
    for region, data in (regions or {}).items():
        data = data or {}
        metrics = [(m, data[m]) for m in METRICS if isinstance(data.get(m), dict)]
        if not metrics:
            rows.append((region, data.get("cost"), None, None, None, None, None, None, None, None))
        for metric, body in metrics:
            tiers = body.get("tiers") or [{}]
            for n, tier in enumerate(tiers, start=1):
                rows.append(
                    (
                        region,
                        data.get("cost"),
                        metric,
                        body.get("total"),
                        n if tier else None,
                        tier.get("name"),
                        tier.get("units"),
                        tier.get("price"),
                        tier.get("discounted_price"),
                        tier.get("total"),
                    )
                )
    names = ("region", "region_cost", "metric", "metric_total", "tier", "tier_name", "units", "price")
    names += ("discounted_price", "tier_total")
    return _with_key(key, len(rows), {name: [row[i] for row in rows] for i, name in enumerate(names)})


def _extras(key: Mapping[str, Any], extras: list[Mapping[str, Any]]) -> dict[str, list]:
    known = frozenset(("name", "recurring", "setup"))
    columns = {name: [extra.get(name) for extra in extras] for name in known}
    columns["extra"] = _unknown(extras, known)
    return _with_key(key, len(extras), columns)


def _timestamp(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).isoformat()


def _key(doc: Mapping[str, Any], version: str, load_key: str) -> dict[str, Any]:
    """The columns every table of a document starts with."""
    return {
        "load_key": load_key,
        "api_version": version,
        "invoice_id": _string(doc.get("invoice_id")),
        "customer_id": doc.get("customer_id"),
    }


def _v2(doc: Mapping[str, Any], is_estimate: bool, fetched_at: str, load_key: str) -> Columns:
    total = doc.get("total") or {}
    status = doc.get("status") or {}
    key = _key(doc, "v2", load_key)
    invoice = {
        **key,
        "is_estimate": is_estimate,
        "period_start": doc.get("start_time"),
        "period_end": doc.get("end_time"),
        "status": status.get("status") if isinstance(status, dict) else status,
        "sent_at": status.get("sent_at") if isinstance(status, dict) else None,
        "vendor_state": doc.get("vendor_state"),
        **{name: total.get(name) for name in (*TOTAL_NUMERIC, *TOTAL_STRING)},
        "fetched_at": fetched_at,
        "raw": _json({k: v for k, v in doc.items() if k != "line_items"}),
    }
    items = list(doc.get("line_items") or [])
    return {
        "invoices": {name: [value] for name, value in invoice.items()},
        "line_items": _line_items(
            {**key, "is_estimate": is_estimate}, items, V2_ESTIMATE_ITEM if is_estimate else V2_INVOICE_ITEM
        ),
        "regions": _regions(key, doc.get("regions") or {}),
        "extras": _extras(key, list(total.get("extras") or [])),
    }


def _v3(doc: Mapping[str, Any], is_estimate: bool, fetched_at: str, load_key: str) -> Columns:
    key = _key(doc, "v3", load_key)
    invoice = {
        **key,
        "is_estimate": is_estimate,
        "period_start": doc.get("billing_start_date"),
        "period_end": doc.get("billing_end_date"),
        "status": "MTD" if is_estimate else None,
        "cost": doc.get("monthly_transaction_amount"),
        "statement_number": doc.get("statement_number"),
        "currency_code": doc.get("currency_code"),
        "invoice_posted_on": doc.get("invoice_posted_on"),
        "fetched_at": fetched_at,
        "raw": _json({k: v for k, v in doc.items() if k != "transaction_line_items"}),
    }
    items = list(doc.get("transaction_line_items") or [])
    fields = ("description", "amount", "units", "credit_coupon_code", *V3_LINE_ITEM)
    return {
        "invoices": {name: [value] for name, value in invoice.items()},
        "line_items": _line_items({**key, "is_estimate": is_estimate}, items, fields),
        "regions": {},
        "extras": {},
    }


def is_v3(doc: Mapping[str, Any]) -> bool:
    """Whether a document is a Billing v3 invoice or month-to-date invoice."""
    return "transaction_line_items" in doc or "billing_start_date" in doc or "monthly_transaction_amount" in doc


def _period_of(doc: Mapping[str, Any]) -> str:
    start = _column([doc.get("billing_start_date") or doc.get("start_time")], "timestamp")[0]
    return "unknown" if pd.isna(start) else start.strftime("%Y-%m")


def _invoice_columns(invoice: Mapping[str, Any], stamp: str) -> Columns:
    version = "v3" if is_v3(invoice) else "v2"
    load_key = f"{version}/invoice/{invoice.get('customer_id')}/{invoice.get('invoice_id')}"
    return (_v3 if version == "v3" else _v2)(invoice, False, stamp, load_key)


def _estimate_columns(estimate: Mapping[str, Any], stamp: str, day: str) -> Columns:
    version = "v3" if is_v3(estimate) else "v2"
    load_key = f"{version}/estimate/{estimate.get('customer_id')}/{_period_of(estimate)}/{day}"
    return (_v3 if version == "v3" else _v2)(estimate, True, stamp, load_key)


def invoices_to_frames(invoices: Iterable[Mapping[str, Any]], fetched_at: datetime | None = None) -> InvoiceFrames:
    """
    The tables of any number of invoices, v2 (``BillingResponse``) or v3 (``Invoice``), mixed or not.

    :param invoices: the invoices as the hook returned them.
    :param fetched_at: when they were fetched; default now. Re-loading an invoice replaces it.
    """
    stamp = _timestamp(fetched_at or datetime.now(timezone.utc))
    return _frames_of([_invoice_columns(invoice, stamp) for invoice in invoices])


def invoice_to_frames(invoice: Mapping[str, Any], fetched_at: datetime | None = None) -> InvoiceFrames:
    """The tables of one invoice; see :func:`invoices_to_frames`."""
    return invoices_to_frames([invoice], fetched_at)


def estimates_to_frames(
    estimates: Iterable[Mapping[str, Any]], fetched_at: datetime, snapshot_date: date | None = None
) -> InvoiceFrames:
    """
    The tables of month-to-date estimates, v2 or v3, each as one snapshot.

    :param estimates: the estimates as the hook returned them.
    :param fetched_at: when they were fetched.
    :param snapshot_date: the day the snapshots stand for (default ``fetched_at``'s); loading a snapshot
        of the same day again replaces it, other days' snapshots stay.
    """
    day = (snapshot_date or fetched_at).strftime("%Y-%m-%d")
    stamp = _timestamp(fetched_at)
    return _frames_of([_estimate_columns(estimate, stamp, day) for estimate in estimates])


def estimate_to_frames(
    estimate: Mapping[str, Any], fetched_at: datetime, snapshot_date: date | None = None
) -> InvoiceFrames:
    """The tables of one month-to-date estimate; see :func:`estimates_to_frames`."""
    return estimates_to_frames([estimate], fetched_at, snapshot_date)
