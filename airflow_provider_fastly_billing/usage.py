"""
Usage metrics as DataFrames, one per warehouse table, with fixed columns and types.

Tables (declared in :data:`SCHEMA` like :data:`~.frames.SCHEMA`, so a warehouse can create them):

- ``usage`` (``fastly_usage``): one row per month x product x usage type x region, from
  :meth:`~.hooks.billing.BillingHook.get_usage_metrics`.
- ``service_usage`` (``fastly_service_usage``): one row per month x usage type x service, from
  :meth:`~.hooks.billing.BillingHook.list_service_usage` asked for one month.

Both carry ``load_key`` = ``usage/{customer_id}/{month}``: loading a customer's month again replaces
that month's rows in both tables, and nothing else. Quantities are ``Decimal`` (object columns), exact
from the API to the warehouse; a quantity that is not a number is an error naming month, usage type,
service and field, never a null. Unknown keys land in ``extra``. This module imports pandas; DAG files
should import it only inside tasks.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

USAGE = {
    "load_key": "string",
    "customer_id": "string",
    "month": "string",
    "product_id": "string",
    "usage_type": "string",
    "name": "string",
    "region": "string",
    "unit": "string",
    "quantity": "numeric",
    "raw_quantity": "numeric",
    "last_updated_at": "timestamp",
    "fetched_at": "timestamp",
    "extra": "json",
}
SERVICE_USAGE = {
    "load_key": "string",
    "customer_id": "string",
    "month": "string",
    "product_id": "string",
    "usage_type": "string",
    "unit": "string",
    "service_id": "string",
    "service_name": "string",
    "usage_units": "numeric",
    "fetched_at": "timestamp",
    "extra": "json",
}
SCHEMA: dict[str, dict[str, str]] = {"usage": USAGE, "service_usage": SERVICE_USAGE}
"""Every usage table's columns and their kinds: string, numeric (Decimal), int, bool, timestamp, json."""

_DTYPE = {"string": object, "json": object, "numeric": object, "int": "Int64", "bool": "boolean"}
_SERVICE_KNOWN = frozenset((*SERVICE_USAGE, "start_month", "end_month", "start_time", "end_time"))


def load_key(customer_id: str, month: str) -> str:
    """The unit a usage load replaces: one customer's month."""
    return f"usage/{customer_id}/{month}"


def _timestamp(value: Any, field: str, at: str) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{at}: {field} {value!r} is not a date-time") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def typed_frame(columns: Mapping[str, str], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns`` in their kinds; a key a row lacks is a null."""
    data = {}
    for name, kind in columns.items():
        values = [row.get(name) for row in rows]
        if kind == "timestamp":
            data[name] = pd.Series(
                pd.to_datetime(pd.Series(values, dtype=object), utc=True), dtype="datetime64[ns, UTC]"
            )
        else:
            data[name] = pd.Series(values, dtype=_DTYPE[kind])
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def _quantity(value: Any, field: str, at: str, *, required: bool = True) -> Decimal | None:
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{at}: {field} {value!r} is not an exact number (expected Decimal, as the hook returns)")
    return value


def _extra(item: Mapping[str, Any], known: frozenset[str]) -> str | None:
    rest = {k: v for k, v in item.items() if k not in known}
    return json.dumps(rest, default=str, separators=(",", ":")) if rest else None


def _stamp(fetched_at: datetime | None) -> datetime:
    return fetched_at or datetime.now(timezone.utc)


def usage_to_frames(
    items: Iterable[Mapping[str, Any]], customer_id: str, fetched_at: datetime | None = None
) -> pd.DataFrame:
    """
    The ``usage`` table of usage metrics items (``Usagemetric``), one row each.

    :param items: the items as :meth:`~.hooks.billing.BillingHook.get_usage_metrics` returned them.
    :param customer_id: the customer they belong to (the token's; the answer does not say).
    :param fetched_at: when they were fetched; default now.
    """
    known = frozenset(USAGE)
    stamp, rows = _stamp(fetched_at), []
    for n, item in enumerate(items, start=1):
        month, usage_type = item.get("month"), item.get("usage_type")
        at = f"usage item {n} (month {month}, usage type {usage_type!r})"
        if not isinstance(month, str) or not isinstance(usage_type, str):
            raise ValueError(f"{at}: month and usage_type are required")
        rows.append(
            {
                **{name: item.get(name) for name in ("product_id", "name", "region", "unit")},
                "load_key": load_key(customer_id, month),
                "customer_id": customer_id,
                "month": month,
                "usage_type": usage_type,
                "quantity": _quantity(item.get("quantity"), "quantity", at),
                "raw_quantity": _quantity(item.get("raw_quantity"), "raw_quantity", at, required=False),
                "last_updated_at": _timestamp(item.get("last_updated_at"), "last_updated_at", at),
                "fetched_at": stamp,
                "extra": _extra(item, known),
            }
        )
    return typed_frame(USAGE, rows)


def service_usage_to_frames(items: Iterable[Mapping[str, Any]], fetched_at: datetime | None = None) -> pd.DataFrame:
    """
    The ``service_usage`` table of service usage items, one row each.

    Each item must cover one month (``start_month == end_month``): Fastly sums usage over the months
    asked for, and a sum over several months cannot be told apart by month.

    :param items: the items as :meth:`~.hooks.billing.BillingHook.list_service_usage` yielded them.
    :param fetched_at: when they were fetched; default now.
    """
    stamp, rows = _stamp(fetched_at), []
    for n, item in enumerate(items, start=1):
        month, usage_type, service = item.get("start_month"), item.get("usage_type"), item.get("service_id")
        at = f"service usage item {n} (month {month}, usage type {usage_type!r}, service {service!r})"
        if month != item.get("end_month") or not isinstance(month, str):
            raise ValueError(f"{at}: covers {month}..{item.get('end_month')}; ask for one month at a time")
        if not all(isinstance(item.get(k), str) for k in ("customer_id", "usage_type", "service_id")):
            raise ValueError(f"{at}: customer_id, usage_type and service_id are required")
        rows.append(
            {
                **{name: item.get(name) for name in ("customer_id", "product_id", "usage_type", "unit")},
                "service_id": service,
                "service_name": item.get("service_name"),
                "load_key": load_key(item["customer_id"], month),
                "month": month,
                "usage_units": _quantity(item.get("usage_units"), "usage_units", at),
                "fetched_at": stamp,
                "extra": _extra(item, _SERVICE_KNOWN),
            }
        )
    return typed_frame(SERVICE_USAGE, rows)
