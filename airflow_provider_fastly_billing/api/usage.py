"""
Fastly's Billing Usage Metrics API (v3): requests, paging and answers, with no HTTP and no Airflow.

``GET /billing/v3/usage-metrics`` gives the account's usage per month, product, usage type and region
(at most three months per call); ``GET /billing/v3/service-usage-metrics`` gives one usage type's
usage per service, cursor-paged. Usage types are named as on the invoice (``North America Bandwidth``).
Every input is checked before a request is built; every quantity comes back as an exact ``Decimal``,
and a quantity that is not a number is a :class:`~airflow_provider_fastly_billing.exceptions.FastlyApiError`
naming the month, usage type, service and field.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_fastly_billing import validation
from airflow_provider_fastly_billing.exceptions import FastlyApiError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

USAGE_METRICS_PATH = "/billing/v3/usage-metrics"
SERVICE_USAGE_PATH = "/billing/v3/service-usage-metrics"
MONTHS_PER_CALL = 3
MAX_SERVICE_PAGE = 10_000

_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_SERVICE_ID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)


class ServiceUsageQuery(TypedDict):
    """The arguments of ``BillingHook.list_service_usage`` for one month, product and usage type."""

    product_id: str
    usage_type_name: str
    start_month: str
    end_month: str


def month(value: object, what: str, *, today: date | None = None) -> str:
    """
    Normalise a month to ``YYYY-MM``.

    :param value: ``"2026-03"``, or a ``date``/``datetime`` in that month.
    :param what: the argument's name, for the error.
    :param today: the date that decides which months are in the future; default today in UTC.
    """
    if isinstance(value, (date, datetime)):
        value = f"{value.year:04d}-{value.month:02d}"
    found = _MONTH.fullmatch(value) if isinstance(value, str) else None
    if not found:
        raise ValueError(f"{what} must be a month as YYYY-MM (or a date), got {value!r}")
    try:
        validation.period(found[1], found[2], today=today)
    except ValueError as exc:
        raise ValueError(f"{what} {value!r}: {exc}") from None
    return found[0]


def month_range(start_month: object, end_month: object) -> tuple[str, str]:
    """Both months normalised, start not after end."""
    start, end = month(start_month, "start_month"), month(end_month, "end_month")
    if start > end:
        raise ValueError(f"start_month {start} is after end_month {end}")
    return start, end


def months_between(start: str, end: str) -> list[str]:
    """Every ``YYYY-MM`` from ``start`` to ``end``, both included."""
    first = int(start[:4]) * 12 + int(start[5:]) - 1
    last = int(end[:4]) * 12 + int(end[5:]) - 1
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, last + 1)]


def usage_metrics_requests(start_month: object, end_month: object) -> list[dict[str, str]]:
    """The queries of ``GET /billing/v3/usage-metrics`` covering the months, at most three per call."""
    months = months_between(*month_range(start_month, end_month))
    chunks = [months[n : n + MONTHS_PER_CALL] for n in range(0, len(months), MONTHS_PER_CALL)]
    return [{"start_month": chunk[0], "end_month": chunk[-1]} for chunk in chunks]


def _name(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or not value.isprintable():
        raise ValueError(f"{what} must be a non-empty printable string of at most 200 characters, got {value!r}")
    return value


def service_usage_params(
    *,
    product_id: str | None,
    usage_type_name: str | None,
    service: str | None,
    start_month: object,
    end_month: object,
    page_size: int,
) -> dict[str, str]:
    """
    The query of ``GET /billing/v3/service-usage-metrics``, validated.

    Fastly wants ``product_id`` and ``usage_type_name`` together; ``service`` (a service id) narrows the
    answer to one service (Fastly's clients send it from version 15).
    """
    start, end = month_range(start_month, end_month)
    product, usage_type = _name(product_id, "product_id"), _name(usage_type_name, "usage_type_name")
    if (product is None) != (usage_type is None):
        raise ValueError("give product_id and usage_type_name together (e.g. 'cdn_usage', 'North America Requests')")
    if service is not None and (not isinstance(service, str) or not _SERVICE_ID.fullmatch(service)):
        raise ValueError(f"service must be a Fastly service id (1 to 64 letters and digits), got {service!r}")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_SERVICE_PAGE:
        raise ValueError(f"page_size must be an integer from 1 to {MAX_SERVICE_PAGE:,}, got {page_size!r}")
    query = {"product_id": product, "usage_type_name": usage_type, "service": service}
    query |= {"start_month": start, "end_month": end, "limit": str(page_size)}
    return {name: value for name, value in query.items() if value is not None}


def service_usage_queries(usage_items: Iterable[Mapping[str, Any]]) -> list[ServiceUsageQuery]:
    """
    The service-usage queries that cover usage metrics items: one per month, product and usage type.

    One month each, because Fastly sums service usage over the months asked for.
    """
    keys = dict.fromkeys((i.get("month"), i.get("product_id"), i.get("usage_type")) for i in usage_items)
    return [
        {"product_id": product, "usage_type_name": kind, "start_month": month, "end_month": month}
        for month, product, kind in keys
        if month and product and kind
    ]


def exact(value: Any, field: str, at: str, path: str) -> Decimal:
    """A quantity as an exact ``Decimal``; anything that is not a finite number is an error naming it."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str) and validation.PLAIN_DECIMAL.fullmatch(value):
        number = Decimal(value)
    else:
        number = Decimal("NaN")
    if not number.is_finite():
        raise FastlyApiError(200, path, f"{at}: {field} {value!r} is not a number")
    return number


def _objects(value: Any, what: str, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise FastlyApiError(200, path, f"{what} must be a list of objects, got {type(value).__name__}")


def usage_metrics_items(answer: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    """
    The ``Usagemetric`` items of a usage-metrics answer, ``quantity`` and ``raw_quantity`` exact.

    ``data`` is a list; Fastly's clients type it as one object, so one object is read as a list of one.
    Unknown keys are kept.
    """
    items = []
    for n, item in enumerate(_objects(answer.get("data"), "data", path), start=1):
        at = f"usage item {n} (month {item.get('month')}, usage type {item.get('usage_type')!r})"
        parsed = {**item, "quantity": exact(item.get("quantity"), "quantity", at, path)}
        if item.get("raw_quantity") is not None:
            parsed["raw_quantity"] = exact(item["raw_quantity"], "raw_quantity", at, path)
        items.append(parsed)
    return items


def service_usage_rows(answer: Mapping[str, Any], params: Mapping[str, str], path: str) -> list[dict[str, Any]]:
    """
    The service rows of one service-usage page.

    Each ``Serviceusagemetric`` (``data.details``) comes back with the page's ``customer_id``,
    ``usage_type``, ``unit``, ``start_time`` and ``end_time``, the query's ``product_id``, ``start_month``
    and ``end_month``, and ``usage_units`` exact. Unknown keys are kept.
    """
    data = answer.get("data") or {}
    if not isinstance(data, dict):
        raise FastlyApiError(200, path, f"data must be an object, got {type(data).__name__}")
    context = {name: data.get(name) for name in ("customer_id", "usage_type", "unit", "start_time", "end_time")}
    context |= {name: params.get(name) for name in ("product_id", "start_month", "end_month")}
    span = f"{params.get('start_month')}..{params.get('end_month')}"
    rows = []
    for n, detail in enumerate(_objects(data.get("details"), "data.details", path), start=1):
        at = f"service usage {span}, usage type {data.get('usage_type')!r}, service {detail.get('service_id')!r} (#{n})"
        units = exact(detail.get("usage_units"), "usage_units", at, path)
        rows.append({**context, **{k: v for k, v in detail.items() if v is not None}, "usage_units": units})
    return rows


def service_usage_meta(answer: Mapping[str, Any]) -> Any:
    """The paging ``meta`` of a service-usage page: inside ``data`` (as Fastly sends it), else top-level."""
    data = answer.get("data")
    inner = data.get("meta") if isinstance(data, dict) else None
    return inner if isinstance(inner, dict) else answer.get("meta")
