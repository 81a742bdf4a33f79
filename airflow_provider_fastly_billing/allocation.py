"""
Cost per Fastly service: every invoice line split across the services that used what it bills.

Fastly bills per product, region and usage type, never per service; the service usage metrics say how
much of each usage type each service used. A usage-based line is split across services in proportion
to their units of the line's usage type in the invoice's month, over the month's total units of that
usage type (from the usage metrics). Shares are exact fractions rounded to the cent with the largest
remainder rule, so a line's rows add up to its amount exactly. What no service accounts for is an
explicit ``unallocated`` row (``allocated`` false, ``service_id`` null): usage Fastly attributes to
no service, and every line that bills no usage (plans, support, TLS, discounts and credits).

How a line is matched to a usage type (the usage metrics' ``usage_type``, e.g. ``North America Bandwidth``):

- v3 invoices: ``"{region} {usage_type}"`` (or ``usage_type`` alone if it already names the region),
  else the ``description``. A line with a ``region`` is usage-based.
- v2 invoices: ``usage_type_cd`` with ``_`` read as spaces (``North_America_Bandwidth``), else
  ``service_name``, else the ``description`` before `` (``. A line with ``usage_type_cd`` or
  ``usage_type_no`` is usage-based.
- v2 estimates: the ``description``; a line of ``service_type`` ``usage`` is usage-based.

The first candidate that is one of the month's usage types wins. A line that matches none is
non-usage (unallocated), unless it is usage-based: then :class:`AllocationError` names the invoice,
line and description, because its cost would silently go unattributed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from airflow_provider_fastly_billing.frames import to_python
from airflow_provider_fastly_billing.usage import typed_frame

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CENT = Decimal("0.01")
SERVICE_COSTS = {
    "load_key": "string",
    "month": "string",
    "customer_id": "string",
    "api_version": "string",
    "invoice_id": "string",
    "is_estimate": "bool",
    "line_number": "int",
    "description": "string",
    "service_id": "string",
    "service_name": "string",
    "usage_type": "string",
    "region": "string",
    "amount": "numeric",
    "allocated": "bool",
    "basis_units": "numeric",
    "basis_total_units": "numeric",
}
SCHEMA: dict[str, dict[str, str]] = {"service_costs": SERVICE_COSTS}
"""The ``fastly_service_costs`` table's columns and kinds; ``load_key`` is the invoice's, so reloading an
invoice replaces its allocation with it."""


class AllocationError(ValueError):
    """A line cannot be allocated: it bills usage that the usage metrics do not know, or has no amount."""


@dataclass(frozen=True)
class UsageTotal:
    """A month's total of one usage type, and each service's part of it."""

    quantity: Decimal
    region: str | None
    services: tuple[tuple[str, str | None, Decimal], ...]


def largest_remainder(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """
    ``amount`` split in proportion to ``weights``, in cents, adding up to ``amount`` exactly.

    Each share is rounded down to the cent, then the cents left over go one each to the shares with the
    largest remainders (ties: the larger weight, then the earlier one). An amount with finer digits than
    cents is split at its own precision. Negative amounts (credits) split the same way, with their sign.

    :param amount: what to split.
    :param weights: non-negative, at least one positive.
    """
    if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ValueError(f"weights must be non-negative with one positive, got {list(weights)}")
    quantum = CENT if amount % CENT == 0 else Decimal(1).scaleb(cast("int", amount.as_tuple().exponent))
    units = int(amount / quantum)
    whole = sum(Fraction(w) for w in weights)
    exact = [abs(units) * Fraction(w) / whole for w in weights]
    parts = [math.floor(e) for e in exact]
    order = sorted(range(len(parts)), key=lambda n: (parts[n] - exact[n], -weights[n], n))
    for n in order[: abs(units) - sum(parts)]:
        parts[n] += 1
    sign = -1 if units < 0 else 1
    return [sign * p * quantum for p in parts]


def _text(value: Any) -> str | None:
    return None if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)


def _candidates(line: dict[str, Any]) -> tuple[list[str], bool]:
    """The usage types a line may bill, in order of trust, and whether it bills usage at all."""
    description = _text(line.get("description")) or ""
    if line.get("api_version") == "v3":
        region, kind = _text(line.get("region")) or "", _text(line.get("usage_type")) or ""
        own = kind if not region or kind.startswith(region) else f"{region} {kind}"
        return [own, description], bool(region)
    if line.get("is_estimate"):
        return [description], _text(line.get("service_type")) == "usage"
    code = _text(line.get("usage_type_cd"))
    names = [code.replace("_", " ") if code else "", _text(line.get("service_name")) or ""]
    return [*names, description.split(" (")[0]], code is not None or _text(line.get("usage_type_no")) is not None


Services = dict[tuple[str, str | None], Decimal]
"""Units per (service id, service name)."""


def _service_units(service_usage: pd.DataFrame) -> dict[tuple[str, str, str], tuple[Services, set[str]]]:
    """Per customer, month and usage type: each service's units, and the units they are counted in."""
    found: dict[tuple[str, str, str], tuple[Services, set[str]]] = {}
    for row in service_usage.to_dict("records"):
        per, units = found.setdefault((row["customer_id"], row["month"], row["usage_type"]), ({}, set()))
        name = (row["service_id"], _text(row["service_name"]))
        per[name] = per.get(name, Decimal(0)) + row["usage_units"]
        units.update(filter(None, [_text(row["unit"])]))
    return found


def _totals(usage: pd.DataFrame, service_usage: pd.DataFrame) -> dict[tuple[str, str], dict[str, UsageTotal]]:
    """Per customer and month: each usage type's quantity, region and services' units."""
    services = _service_units(service_usage)
    sums: dict[tuple[str, str, str], tuple[Decimal, str | None, set[str]]] = {}
    for row in usage.to_dict("records"):
        key = (row["customer_id"], row["month"], row["usage_type"])
        quantity, _, units = sums.get(key, (Decimal(0), None, set()))
        sums[key] = (quantity + row["quantity"], _text(row["region"]), units | set(filter(None, [_text(row["unit"])])))
    totals: dict[tuple[str, str], dict[str, UsageTotal]] = {}
    for (customer, month, kind), (quantity, region, units) in sums.items():
        per, service_units = services.get((customer, month, kind), ({}, set()))
        if len(units | service_units) > 1:
            raise AllocationError(
                f"{month} usage type {kind!r} of {customer} is counted in {sorted(units | service_units)}"
            )
        used = tuple(sorted(((sid, name, n) for (sid, name), n in per.items() if n > 0), key=lambda s: s[0]))
        totals.setdefault((customer, month), {})[kind] = UsageTotal(quantity, region, used)
    return totals


def _split(line: dict[str, Any], amount: Decimal, kind: str, total: UsageTotal) -> Iterator[dict[str, Any]]:
    """The rows of a usage-based line: one per service that used its usage type, then the rest."""
    used = sum((units for *_, units in total.services), Decimal(0))
    base = max(total.quantity, used)
    rest = base - used
    region = total.region or _text(line.get("region"))
    common = {**_line_key(line), "usage_type": kind, "region": region, "basis_total_units": base}
    if base <= 0:
        yield {**common, "amount": amount, "allocated": False, "basis_units": Decimal(0)}
        return
    weights = [units for *_, units in total.services] + ([rest] if rest > 0 else [])
    shares = largest_remainder(amount, weights)
    for (service_id, service_name, units), share in zip(total.services, shares, strict=False):
        yield {
            **common,
            "service_id": service_id,
            "service_name": service_name,
            "amount": share,
            "allocated": True,
            "basis_units": units,
        }
    if rest > 0:
        yield {**common, "amount": shares[-1], "allocated": False, "basis_units": rest}


def _lines(invoices: pd.DataFrame, line_items: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Every line item (money as plain ``Decimal``s) with its invoice's month (``YYYY-MM`` of the period start)."""
    months = {
        key: start.strftime("%Y-%m") if not pd.isna(start) else None
        for key, start in zip(invoices["load_key"], pd.to_datetime(invoices["period_start"], utc=True), strict=True)
    }
    columns = {name: to_python(line_items[name]) for name in line_items.columns}
    for values in zip(*columns.values(), strict=True):
        line = dict(zip(columns, values, strict=True))
        yield {**line, "month": months.get(line["load_key"])}


LINE_KEY = (
    "load_key",
    "month",
    "customer_id",
    "api_version",
    "invoice_id",
    "is_estimate",
    "line_number",
    "description",
)


def _line_key(line: dict[str, Any]) -> dict[str, Any]:
    """The columns every row of a line repeats: which invoice line it is."""
    return {name: line.get(name) for name in LINE_KEY}


def _where(line: dict[str, Any]) -> str:
    return f"invoice {line.get('invoice_id')} line {line.get('line_number')} ({line.get('description')!r})"


def _line_rows(line: dict[str, Any], totals: dict[tuple[str, str], dict[str, UsageTotal]]) -> Iterator[dict[str, Any]]:
    amount = line.get("amount")
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise AllocationError(f"{_where(line)}: amount {amount!r} is not an exact number")
    month = (line["customer_id"], line["month"])
    if month not in totals:
        raise AllocationError(
            f"{_where(line)}: no usage metrics for customer {line['customer_id']} in {line['month']}; load them first"
        )
    candidates, usage_based = _candidates(line)
    kind = next((c for c in candidates if c in totals[month]), None)
    if kind is not None:
        yield from _split(line, amount, kind, totals[month][kind])
        return
    if usage_based:
        raise AllocationError(
            f"{_where(line)} bills usage but matches none of the {len(totals[month])} usage types of "
            f"{line['month']} (tried {[c for c in candidates if c]})"
        )
    yield {**_line_key(line), "region": _text(line.get("region")), "amount": amount, "allocated": False}


def allocate(
    invoices: pd.DataFrame, line_items: pd.DataFrame, usage: pd.DataFrame, service_usage: pd.DataFrame
) -> pd.DataFrame:
    """
    The ``service_costs`` table: every line of the invoices split across services (see the module doc).

    For each line, the rows' ``amount`` add up to the line's ``amount`` exactly. ``basis_units`` is the
    service's units of the usage type (the unattributed units on the unallocated row), ``basis_total_units``
    the month's total: the usage metrics' quantity, or the services' sum if Fastly reports more for them.

    :param invoices: the ``invoices`` frame of :func:`~.frames.invoices_to_frames` (for each invoice's month).
    :param line_items: its ``line_items`` frame.
    :param usage: :func:`~.usage.usage_to_frames` of every invoice's customer and month.
    :param service_usage: :func:`~.usage.service_usage_to_frames` of the same months.
    :raises AllocationError: a usage-based line matches no usage type, a line has no exact amount, or an
        invoice's month has no usage metrics.
    """
    totals = _totals(usage, service_usage)
    rows = [row for line in _lines(invoices, line_items) for row in _line_rows(line, totals)]
    return typed_frame(SERVICE_COSTS, rows)
