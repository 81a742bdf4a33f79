"""
The simulator's usage model: usage per month and usage type, and its split across a customer's services.

It derives from the same charges as the invoices (:mod:`.invoices`), so the two agree: per month and
usage type (``North America Bandwidth``), the usage metrics' ``quantity`` equals the units of the
invoice lines of that region and usage, every tier together, and the services' ``usage_units`` add up
to that quantity minus the unattributed share. Each customer has a handful of services whose sizes
follow a Zipf-like law with per-region noise, deterministic from the customer id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_fastly_billing.testing.invoices import base62

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing.invoices import InvoiceCharges

PRODUCT_ID = "cdn_usage"
UNITS = {"Bandwidth": "GB", "Requests": "unit"}
"""Units as Fastly names them; requests have no unit (``unit``) and count in 10,000s, as on the invoice."""
SERVICE_NAMES = ("www", "api", "images", "static", "video", "checkout", "docs", "status", "auth", "search")
ZIPF_EXPONENT = 1.1


@dataclass(frozen=True)
class Service:
    """One Fastly service of a customer."""

    service_id: str
    service_name: str
    weight: float


@dataclass(frozen=True)
class UsageType:
    """One month's total of one usage type, as the invoice bills it."""

    usage_type: str
    region: str
    usage: str
    quantity: Decimal


def services_of(customer_id: str) -> list[Service]:
    """The customer's services, largest first, 4 to 10 of them, Zipf-like sizes."""
    rng = random.Random(f"services:{customer_id}")
    count = rng.randint(4, len(SERVICE_NAMES))
    names = rng.sample(SERVICE_NAMES, count)
    return [
        Service(base62(f"service:{customer_id}:{n}"), f"{name}-prod", 1 / (n + 1) ** ZIPF_EXPONENT)
        for n, name in enumerate(names)
    ]


def usage_types(charges: InvoiceCharges) -> list[UsageType]:
    """The month's usage types with their quantities: the invoice's units of each region and usage, tiers summed."""
    totals: dict[str, UsageType] = {}
    for c in charges.usage:
        name = f"{c.region} {c.usage}"
        known = totals.get(name)
        quantity = c.units + (known.quantity if known else 0)
        totals[name] = UsageType(name, c.region, c.usage, quantity)
    return list(totals.values())


def _quantum(value: Decimal) -> Decimal:
    return Decimal(1).scaleb(min(cast("int", value.as_tuple().exponent), 0))


def split(total: Decimal, weights: list[float]) -> list[Decimal]:
    """``total`` split in proportion to ``weights`` at ``total``'s precision, adding up to it exactly."""
    quantum = _quantum(total)
    whole = sum(weights)
    exact = [total * Decimal(repr(w)) / Decimal(repr(whole)) for w in weights]
    parts = [e.quantize(quantum, rounding=ROUND_DOWN) for e in exact]
    left = int((total - sum(parts)) / quantum)
    for n in sorted(range(len(parts)), key=lambda k: exact[k] - parts[k], reverse=True)[:left]:
        parts[n] += quantum
    return parts


def service_units(
    charges: InvoiceCharges, kind: UsageType, unattributed_share: Decimal
) -> list[tuple[Service, Decimal]]:
    """
    The services' usage of one usage type in one month: only those with non-zero units, largest first.

    Which services serve a region, and their size there, stay the same every month; a month moves each
    by up to 15 %.
    """
    reach = random.Random(f"{charges.customer_id}:{kind.usage_type}")
    month = random.Random(f"{charges.customer_id}:{charges.year}:{charges.month}:{kind.usage_type}")
    services = services_of(charges.customer_id)
    present = [s for n, s in enumerate(services) if n == 0 or reach.random() > 0.2]
    weights = [s.weight * reach.uniform(0.6, 1.4) * month.uniform(0.85, 1.15) for s in present]
    attributed = (kind.quantity * (1 - unattributed_share)).quantize(_quantum(kind.quantity), rounding=ROUND_DOWN)
    units = split(attributed, weights)
    rows = [(s, u) for s, u in zip(present, units, strict=True) if u > 0]
    return sorted(rows, key=lambda row: (-row[1], row[0].service_id))


def usage_metrics(charges: InvoiceCharges, updated_at: str) -> list[dict[str, Any]]:
    """The month's ``Usagemetric`` items."""
    month = f"{charges.year:04d}-{charges.month:02d}"
    return [
        {
            "month": month,
            "usage_type": kind.usage_type,
            "name": kind.usage_type,
            "region": kind.region,
            "unit": UNITS[kind.usage],
            "quantity": kind.quantity,
            "raw_quantity": kind.quantity,
            "product_id": PRODUCT_ID,
            "last_updated_at": updated_at,
        }
        for kind in usage_types(charges)
    ]
