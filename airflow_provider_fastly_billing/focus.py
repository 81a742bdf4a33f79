"""
The Fastly bill in FOCUS, the FinOps Open Cost and Usage Specification (1.2, and 1.4's three datasets).

:func:`to_focus` turns the invoice frames of either generation (v2 line items, v3 transaction line items)
into Cost and Usage rows, one per billed line. Line items are the billed truth: in v2 the ``total.extras``
(TLS certificates, support...) also appear as line items, so extras never become rows of their own; they
only tell a recurring fee from a setup fee. The line amounts of every invoice must add up to its total,
exactly, or the conversion fails naming the invoice: a FOCUS file that does not reconcile is worse than none.

:data:`PRODUCTS` maps Fastly's products to FOCUS service categories and :data:`CHARGES` maps lines to
charge categories and frequencies; both are plain tables, shown in the README. Fastly's own values stay
in ``x_Fastly*`` columns. Money and quantities are ``Decimal``; :func:`write_focus` writes them as
``decimal128`` Parquet (or CSV) atomically. This module imports pandas: import it inside tasks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from airflow_provider_fastly_billing.frames import to_python

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_fastly_billing.frames import InvoiceFrames

PROVIDER = "Fastly"
VERSIONS = ("1.2", "1.4")


class FocusError(ValueError):
    """The invoices cannot become a correct FOCUS dataset; the message names the invoice and line."""


@dataclass(frozen=True)
class ProductRule:
    """Lines whose product matches ``pattern`` (case-insensitive) belong to this FOCUS service."""

    pattern: str
    service_name: str
    category: str
    subcategory: str
    why: str


PRODUCTS: tuple[ProductRule, ...] = (
    ProductRule(
        r"support",
        "Support",
        "Management and Governance",
        "Support",
        "Fastly's support plans (Gold, Enterprise...) are support contracts: FOCUS's Support subcategory.",
    ),
    ProductRule(
        r"\btls\b|\bssl\b|certificat|certainly",
        "TLS Certificates",
        "Security",
        "Secret Management",
        "TLS certificates (shared, dedicated, Certainly) are certificate management, which FOCUS files under "
        "Secret Management (secrets, keys and certificates).",
    ),
    ProductRule(
        r"\bwaf\b|next-gen|signal sciences|ddos",
        "Next-Gen WAF and DDoS Protection",
        "Networking",
        "Network Security",
        "Firewalls and DDoS protection in front of the network are FOCUS's Network Security.",
    ),
    ProductRule(
        r"\bbot\b|bot management",
        "Bot Management",
        "Security",
        "Threat Detection and Response",
        "Bot detection decides on threats per request.",
    ),
    ProductRule(
        r"secret store",
        "Secret Store",
        "Security",
        "Secret Management",
        "Fastly's Secret Store keeps credentials for Compute programs.",
    ),
    ProductRule(
        r"kv store|config store",
        "Edge Data Stores",
        "Databases",
        "NoSQL Databases",
        "Fastly's KV and config stores are key-value stores at the edge.",
    ),
    ProductRule(
        r"object storage",
        "Object Storage",
        "Storage",
        "Object Storage",
        "Fastly Object Storage is S3-compatible object storage.",
    ),
    ProductRule(
        r"\blog|observability|inspector|real-time|analytics",
        "Observability",
        "Management and Governance",
        "Observability",
        "Log streaming, Origin and Domain Inspector and real-time stats observe traffic.",
    ),
    ProductRule(
        r"compute",
        "Compute",
        "Compute",
        "Serverless Compute",
        "Fastly Compute (Compute@Edge) runs customers' WebAssembly per request, without servers to manage.",
    ),
    ProductRule(
        r"image optimi[sz]er",
        "Image Optimizer",
        "Media",
        "Other (Media)",
        "Image transformation at the edge is media processing, none of FOCUS's named Media subcategories.",
    ),
    ProductRule(
        r"media shield|stream|video|live event|packag",
        "Media Delivery",
        "Media",
        "Media Streaming",
        "Media Shield, live and on-demand video packaging serve streams.",
    ),
    ProductRule(
        r"\bai\b",
        "AI Accelerator",
        "AI and Machine Learning",
        "Other (AI and Machine Learning)",
        "AI Accelerator caches responses of language-model APIs.",
    ),
    ProductRule(
        r"\bcdn\b|deliver|bandwidth|request|percentile|network services|\bplan\b",
        "CDN",
        "Networking",
        "Content Delivery",
        "Bandwidth (per GB or 95th percentile) and requests of the CDN (Full-Site Delivery, Network Services) "
        "and the CDN plan itself.",
    ),
)
"""Fastly products to FOCUS services. The most specific field is tried first (v3 ``product_name``, then
``product_group``, ``product_line``, the description; v2 ``service_name``, ``plan_name``, the description),
each against every rule in order. No match: ``Other`` / ``Other (Other)`` with the product's own name."""

OTHER = ProductRule("", "", "Other", "Other (Other)", "Unknown products: the originals stay in x_ columns.")


@dataclass(frozen=True)
class _Line:
    """What the charge rules look at in one line item."""

    text: str
    negative: bool
    coupon: str | None
    extra: tuple[Decimal | None, Decimal | None] | None
    metered: bool


@dataclass(frozen=True)
class ChargeRule:
    """Lines for which ``applies`` holds get this ``ChargeCategory`` and ``ChargeFrequency``."""

    when: str
    applies: Callable[[_Line], bool]
    category: str
    frequency: str
    why: str


def _says(pattern: str) -> Callable[[_Line], bool]:
    regex = re.compile(pattern, re.IGNORECASE)
    return lambda line: bool(regex.search(line.text))


_SAYS_SETUP = _says(r"\bset-?up\b|activation|onboarding")


def _is_setup(line: _Line) -> bool:
    if _SAYS_SETUP(line):
        return True
    return line.extra is not None and not line.extra[0] and bool(line.extra[1])


CHARGES: tuple[ChargeRule, ...] = (
    ChargeRule(
        "the line says tax, VAT or GST",
        _says(r"\btax\b|\bvat\b|\bgst\b"),
        "Tax",
        "Recurring",
        "Taxes levied on the month's invoice.",
    ),
    ChargeRule(
        "a credit coupon code",
        lambda line: bool(line.coupon),
        "Credit",
        "One-Time",
        "Coupons credit the invoice once.",
    ),
    ChargeRule(
        "the line says discount",
        _says(r"discount"),
        "Credit",
        "Recurring",
        "Fastly's contract discount is a negative line on every invoice of the contract.",
    ),
    ChargeRule(
        "a negative amount, or the line says credit, coupon or promotion",
        lambda line: line.negative or _says(r"credit|coupon|promo")(line),
        "Credit",
        "One-Time",
        "Any other money given back.",
    ),
    ChargeRule(
        "the line says commit shortfall, minimum or true-up",
        _says(r"shortfall|minimum|true-?up"),
        "Adjustment",
        "Recurring",
        "A top-up to the plan minimum or commitment is billed for usage that did not happen: an adjustment "
        "of the month's usage charges, not usage.",
    ),
    ChargeRule(
        "a setup fee (the line says so, or an extra with only a setup amount)",
        _is_setup,
        "Usage",
        "One-Time",
        "A one-time fee for the service. Not Purchase: FOCUS (and the validator) make a Purchase's EffectiveCost 0 "
        "to amortise it over later usage, and a setup fee covers no later usage, so its cost would vanish.",
    ),
    ChargeRule(
        "metered usage (bandwidth, requests, any usage type)",
        lambda line: line.metered,
        "Usage",
        "Usage-Based",
        "Billed per GB, per 10,000 requests, per unit consumed.",
    ),
    ChargeRule(
        "anything else (plans, TLS certificates, support)",
        lambda line: True,
        "Usage",
        "Recurring",
        "Flat monthly fees for a service used through the month (not Purchase, as for setup fees).",
    ),
)
"""Line items to ``ChargeCategory`` and ``ChargeFrequency``: the first rule that applies wins."""

UNITS = {
    "bandwidth": ("GB", "GB", Decimal(1)),
    "requests": ("10000 Requests", "Requests", Decimal(10000)),
    "percentile": ("Mbps", "Mbps", Decimal(1)),
}
"""Usage type -> (PricingUnit, ConsumedUnit, consumed units per priced unit). Fastly prices requests per 10,000."""
FEE_UNIT = ("Units", "Units", Decimal(1))
REGION_IDS = {
    "North America": "usa",
    "Europe": "europe",
    "Asia": "asia",
    "Latin America": "latam",
    "Australia": "australia",
    "South Africa": "south_africa",
    "India": "india",
    "Asia Pacific": "asia_pacific",
    "Brazil": "brazil",
}
"""Fastly's region names to the keys of v2's ``regions`` object; other names get a key made from the name."""

MONEY = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")
DECIMALS = (*MONEY, "ConsumedQuantity", "ContractedUnitPrice", "ListUnitPrice", "PricingQuantity")
TIMESTAMPS = ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")
COLUMNS_1_2 = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountStatus",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
)
"""The FOCUS columns written; ``CommitmentDiscountStatus`` (always null) is there because the validator's
``ConsumedQuantity-C-006-C`` errors without it."""
_RENAMED_1_4 = {"ProviderName": "ServiceProviderName", "PublisherName": "HostProviderName"}
COLUMNS_1_4 = tuple(sorted([*(_RENAMED_1_4.get(c, c) for c in COLUMNS_1_2), "InvoiceDetailId"]))
X_COLUMNS = {
    "x_FastlyApiVersion": ("api_version",),
    "x_FastlyLoadKey": ("load_key",),
    "x_FastlyInvoiceId": ("invoice_id",),
    "x_FastlyLineNumber": ("line_number",),
    "x_FastlyLineItemId": ("id",),
    "x_FastlyProductLine": ("product_line",),
    "x_FastlyProductGroup": ("product_group",),
    "x_FastlyProductName": ("product_name",),
    "x_FastlyUsageType": ("usage_type", "usage_type_cd", "service_type"),
    "x_FastlyServiceName": ("service_name",),
    "x_FastlyServiceNo": ("service_no",),
    "x_FastlyPlanName": ("plan_name",),
    "x_FastlyPlanNo": ("plan_no",),
    "x_FastlyRegion": ("region",),
    "x_FastlyRate": ("rate", "rate_per_unit", "per_unit_cost"),
    "x_FastlyUnits": ("units",),
    "x_FastlyCreditCouponCode": ("credit_coupon_code",),
    "x_FastlyStatementNumber": ("statement_number",),
    "x_FastlyInvoiceStatus": ("status",),
}
"""Fastly's originals kept beside the FOCUS columns (the first non-null of the fields named), plus
``x_FastlyEstimate``. ``x_FastlyRate`` is v3's ``rate``, v2's ``rate_per_unit`` or the v2 estimate's
``per_unit_cost``."""
INVOICE_FIELDS = ("statement_number", "status")
X_DECIMALS = ("x_FastlyServiceNo", "x_FastlyPlanNo", "x_FastlyRate", "x_FastlyUnits")


def _text(value: Any) -> str | None:
    """A string, or ``None`` for nulls and empty strings (FOCUS nulls are never "")."""
    if type(value) is str:
        return value.strip() or None
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


def _month_start(stamp: pd.Timestamp) -> datetime:
    return datetime(stamp.year, stamp.month, 1, tzinfo=timezone.utc)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def _product_fields(item: Mapping[str, Any]) -> list[str]:
    names = ("product_name", "product_group", "product_line", "description")
    if item["api_version"] == "v2":
        names = ("service_name", "plan_name", "description", "usage_type_cd")
    return [text for text in (_text(item.get(n)) for n in names) if text]


@lru_cache(maxsize=8192)
def _rule_of(field: str) -> ProductRule | None:
    """The first :data:`PRODUCTS` rule matching one field (cached: a bill repeats its product names)."""
    return next((rule for rule in PRODUCTS if re.search(rule.pattern, field, re.IGNORECASE)), None)


def _product_of(fields: tuple[str, ...]) -> ProductRule:
    """The :data:`PRODUCTS` rule of a line's product fields, most specific first, or :data:`OTHER`."""
    return next(filter(None, map(_rule_of, fields)), OTHER)


@lru_cache(maxsize=8192)
def _charge_of(line: _Line) -> ChargeRule:
    """The first :data:`CHARGES` rule that applies (cached: a bill repeats its kinds of lines)."""
    return next(rule for rule in CHARGES if rule.applies(line))


def _usage_type(item: Mapping[str, Any]) -> str | None:
    """``bandwidth``, ``requests``, another usage type, or ``None`` for a flat fee."""
    if item["api_version"] == "v3":
        kind = _text(item.get("usage_type"))
        return None if kind is None or kind.lower() in ("unit", "units") else kind.lower()
    code = _text(item.get("usage_type_cd")) or ""
    text = f"{code} {_text(item.get('service_name')) or ''} {_text(item.get('description')) or ''}".lower()
    for kind in UNITS:
        if kind in text:
            return kind
    return code.lower() or None


def _v2_region(item: Mapping[str, Any], kind: str | None) -> str | None:
    """v2 names the region only inside ``service_name``: "Europe Bandwidth" -> "Europe"."""
    name = _text(item.get("service_name")) or ""
    if kind in UNITS and name.lower().endswith(" " + kind):
        return name[: -len(kind) - 1]
    return None


def _region_id(name: str) -> str:
    return REGION_IDS.get(name) or re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _where(item: Mapping[str, Any]) -> str:
    return f"invoice {item['invoice_id']} of customer {item['customer_id']}, line {item.get('line_number')}"


def _required(item: Mapping[str, Any], field: str, value: Decimal | None) -> Decimal:
    if value is None:
        raise FocusError(f"{_where(item)}: {field} is missing or not a number, so the line cannot be priced")
    return value


def _costs(item: Mapping[str, Any], charge: ChargeRule, kind: str | None) -> dict[str, Any]:
    """The cost, price and quantity columns of one line."""
    amount = _required(item, "amount", _number(item.get("amount")))
    costs = dict.fromkeys(("ListUnitPrice", "ContractedUnitPrice", "PricingQuantity", "PricingUnit"))
    costs.update(ConsumedQuantity=None, ConsumedUnit=None, **dict.fromkeys(MONEY, amount))
    if charge.category != "Usage":
        return costs
    rates = (_number(item.get(name)) for name in X_COLUMNS["x_FastlyRate"])
    rate = _required(item, "rate", next((r for r in rates if r is not None), None))
    units = _required(item, "units", _number(item.get("units")))
    if rate < 0 or units < 0:
        raise FocusError(f"{_where(item)}: a usage line with a negative rate or units ({rate}, {units})")
    pricing_unit, consumed_unit, per_unit = UNITS.get(kind or "", FEE_UNIT)
    product = rate * units
    return {
        "BilledCost": amount,
        "EffectiveCost": amount,
        "ListCost": product,
        "ContractedCost": product,
        "ListUnitPrice": rate,
        "ContractedUnitPrice": rate,
        "PricingQuantity": units,
        "PricingUnit": pricing_unit,
        "ConsumedQuantity": units * per_unit,
        "ConsumedUnit": consumed_unit,
    }


def _row(
    item: Mapping[str, Any],
    invoice: Mapping[str, Any],
    extras: Mapping[tuple[str, str], tuple[Any, Any]],
    account_names: Mapping[str, str],
) -> dict[str, Any]:
    fields = tuple(_product_fields(item))
    product = _product_of(fields)
    kind = _usage_type(item)
    description = _text(item.get("description"))
    line = _Line(
        text=" | ".join(fields),
        negative=_required(item, "amount", _number(item.get("amount"))) < 0,
        coupon=_text(item.get("credit_coupon_code")),
        extra=next((extras[(item["load_key"], f)] for f in fields if (item["load_key"], f) in extras), None),
        metered=kind is not None,
    )
    charge = _charge_of(line)
    start = invoice["start"]
    end = _next_month(start)
    region = _text(item.get("region")) if item["api_version"] == "v3" else _v2_region(item, kind)
    customer = item["customer_id"]
    is_estimate = bool(item.get("is_estimate"))
    row = {
        **_costs(item, charge, kind),
        "BillingAccountId": customer,
        "BillingAccountName": account_names.get(customer) or customer,
        "BillingCurrency": invoice["currency"],
        "BillingPeriodStart": start,
        "BillingPeriodEnd": end,
        "ChargePeriodStart": start,
        "ChargePeriodEnd": end,
        "ChargeCategory": charge.category,
        "ChargeClass": None,
        "ChargeDescription": description,
        "ChargeFrequency": charge.frequency,
        "CommitmentDiscountStatus": None,
        "InvoiceId": None if is_estimate else _text(item["invoice_id"]),
        "InvoiceIssuerName": PROVIDER,
        "ProviderName": PROVIDER,
        "PublisherName": PROVIDER,
        "RegionId": _region_id(region) if region else None,
        "RegionName": region,
        "ServiceCategory": product.category,
        "ServiceName": product.service_name or (fields[0] if fields else "Fastly"),
        "ServiceSubcategory": product.subcategory,
    }
    return row


def _invoices(frames: InvoiceFrames) -> dict[str, dict[str, Any]]:
    """Per load key: the period start, currency, status and statement number of the invoice."""
    out: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], str] = {}
    costs = to_python(frames.invoices["cost"])
    for inv, cost in zip(frames.invoices.to_dict("records"), costs, strict=True):
        if pd.isna(inv["period_start"]):
            raise FocusError(f"invoice {inv['invoice_id']} of customer {inv['customer_id']} has no billing period")
        same = (inv["customer_id"], inv["invoice_id"])
        if not inv["is_estimate"] and seen.setdefault(same, inv["load_key"]) != inv["load_key"]:
            raise FocusError(
                f"invoice {inv['invoice_id']} of customer {inv['customer_id']} is in the frames twice "
                f"({seen[same]} and {inv['load_key']}): its charges would count twice"
            )
        out[inv["load_key"]] = {
            "start": _month_start(inv["period_start"]),
            "currency": _text(inv.get("currency_code")) or "USD",
            "status": inv.get("status"),
            "statement_number": inv.get("statement_number"),
            "cost": cost,
            "invoice_id": inv["invoice_id"],
            "customer_id": inv["customer_id"],
            "is_estimate": bool(inv["is_estimate"]),
        }
    return out


def _check_totals(frames: InvoiceFrames, invoices: Mapping[str, Mapping[str, Any]]) -> None:
    """Every invoice's line amounts add up to its total, exactly: no charge counted twice or lost."""
    sums: dict[str, Decimal] = dict.fromkeys(invoices, Decimal(0))
    for key, amount in zip(frames.line_items["load_key"], frames.line_items["amount"], strict=True):
        if isinstance(amount, Decimal):
            sums[key] += amount
    for key, invoice in invoices.items():
        if invoice["is_estimate"]:
            continue
        cost = invoice["cost"]
        if not isinstance(cost, Decimal) or sums[key] != cost:
            raise FocusError(
                f"invoice {invoice['invoice_id']} of customer {invoice['customer_id']}: its line items add up to "
                f"{sums[key]}, its total is {cost}; a FOCUS file of it would not reconcile"
            )


def _lists(frame: pd.DataFrame) -> list[list[Any]]:
    """A frame's columns as lists: rows built from them cost a fraction of ``to_dict("records")``."""
    return [to_python(frame[name]) for name in frame.columns]


def _originals(items: pd.DataFrame, invoices: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The ``x_`` columns: each the first non-null of its source fields, strings stripped, "" a null."""
    keys = items["load_key"].tolist()
    out: dict[str, list[Any]] = {}
    for column, sources in X_COLUMNS.items():
        if sources[0] in INVOICE_FIELDS:
            lists = [[invoices[key][sources[0]] for key in keys]]
        else:
            lists = [to_python(items[name]) for name in sources if name in items.columns]
        values = (
            lists[0]
            if len(lists) == 1
            else [next((v for v in vs if _text(v)), None) for vs in zip(*lists, strict=True)]
        )
        out[column] = values if column in X_DECIMALS else [_text(v) for v in values]
    out["x_FastlyEstimate"] = items["is_estimate"].astype(bool).tolist()
    return out


def _typed(rows: list[dict[str, Any]], columns: tuple[str, ...], originals: Mapping[str, list[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for name in frame.columns:
        if name in TIMESTAMPS:
            frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
        elif name not in DECIMALS:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    extra = pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in originals.items()})
    extra["x_FastlyEstimate"] = extra["x_FastlyEstimate"].astype("boolean")
    return pd.concat([frame, extra.set_axis(frame.index)], axis=1)


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"FOCUS version must be one of {', '.join(VERSIONS)}, got {version!r}")


def to_focus(
    frames: InvoiceFrames,
    *,
    version: str = "1.2",
    account_names: Mapping[str, str] | None = None,
    include_estimates: bool = False,
    service_costs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """
    FOCUS Cost and Usage rows of invoices, one per billed line, both API generations.

    :param frames: the invoices' frames (:func:`~.frames.invoices_to_frames`).
    :param version: ``"1.2"`` (``ProviderName``/``PublisherName``) or ``"1.4"`` (``ServiceProviderName``,
        ``HostProviderName``, ``InvoiceDetailId`` linking to :func:`to_focus_invoice_detail`).
    :param account_names: customer id -> account name for ``BillingAccountName``. Fastly's invoices carry
        no name: a customer without one is named by its id, so the column is never null.
    :param include_estimates: also convert month-to-date estimates (``InvoiceId`` null,
        ``x_FastlyEstimate`` true); by default only issued invoices are.
    :param service_costs: the invoices' allocation (:func:`~.allocation.allocate`): each line split across
        services becomes one row per service (``ResourceId``/``ResourceName`` the service) and one for its
        unallocated rest (``ResourceId`` null), with costs and quantities that add up to the line exactly.
    :raises FocusError: an invoice's lines do not add up to its total, or a usage line lacks its rate or units.
    """
    _check_version(version)
    invoices = _invoices(frames)
    _check_totals(frames, invoices)
    extras = {
        (key, name): (recurring, setup)
        for key, name, recurring, setup in zip(
            frames.extras["load_key"],
            frames.extras["name"],
            to_python(frames.extras["recurring"]),
            to_python(frames.extras["setup"]),
            strict=True,
        )
        if name
    }
    names = account_names or {}
    items = frames.line_items
    if not include_estimates:
        items = items[~items["is_estimate"].astype(bool)]
    fields = list(items.columns)
    rows = [
        _row(item, invoices[item["load_key"]], extras, names)
        for item in (dict(zip(fields, values, strict=True)) for values in zip(*_lists(items), strict=True))
    ]
    originals = _originals(items, invoices)
    columns: tuple[str, ...] = COLUMNS_1_2
    if version == "1.4":
        for row, line in zip(rows, originals["x_FastlyLineNumber"], strict=True):
            for old, new in _RENAMED_1_4.items():
                row[new] = row.pop(old)
            row["InvoiceDetailId"] = None if row["InvoiceId"] is None else f"{row['InvoiceId']}-{line}"
        columns = COLUMNS_1_4
    df = _typed(rows, columns, originals)
    return df if service_costs is None else split_by_service(df, service_costs)


RESOURCE_COLUMNS = ("ResourceId", "ResourceName")
_SPLIT_MONEY = ("BilledCost", "EffectiveCost")
_SPLIT_PRICED = ("ListCost", "ContractedCost")


def _allocations(service_costs: pd.DataFrame) -> dict[tuple[str, int], list[tuple[Any, Any, Decimal, Decimal]]]:
    """Per (load key, line number): each allocation row's service id and name, amount and basis units."""
    out: dict[tuple[str, int], list[tuple[Any, Any, Decimal, Decimal]]] = {}
    columns = ("load_key", "line_number", "service_id", "service_name", "amount", "basis_units", "allocated")
    for key, line, service, name, amount, units, allocated in zip(*_lists(service_costs[list(columns)]), strict=True):
        resource = (service, name) if allocated else (None, None)
        out.setdefault((key, int(line)), []).append((*resource, amount, units or Decimal(0)))
    return out


def _shares(row: Mapping[str, Any], parts: list[tuple[Any, Any, Decimal, Decimal]]) -> list[dict[str, Any]]:
    """One line's FOCUS row as one row per allocation part, every cost and quantity adding up exactly."""
    from airflow_provider_fastly_billing.allocation import largest_remainder

    if len(parts) == 1:
        return [{**row, "ResourceId": parts[0][0], "ResourceName": parts[0][1]}]
    weights = [units for *_, units in parts]
    out = [
        {**row, "ResourceId": sid, "ResourceName": name, **dict.fromkeys(_SPLIT_MONEY, amount)}
        for sid, name, amount, _ in parts
    ]
    units, rate = row["PricingQuantity"], row["ContractedUnitPrice"]
    if units is not None and rate is not None:
        per_unit = row["ConsumedQuantity"] / units if units else Decimal(1)
        for share, quantity in zip(out, largest_remainder(units, weights), strict=True):
            share.update(PricingQuantity=quantity, ConsumedQuantity=quantity * per_unit)
            share.update(dict.fromkeys(_SPLIT_PRICED, rate * quantity))
    else:
        for share in out:
            share.update(dict.fromkeys(_SPLIT_PRICED, share["BilledCost"]))
    return out


def split_by_service(df: pd.DataFrame, service_costs: pd.DataFrame) -> pd.DataFrame:
    """
    FOCUS rows with each allocated line split into one row per Fastly service and one for its unallocated rest.

    ``ResourceId``/``ResourceName`` are the service's id and name (null on unallocated rows). ``BilledCost``
    and ``EffectiveCost`` are the allocation's cents; ``PricingQuantity`` is the line's units split in the
    same proportions (largest remainder at the units' precision) and ``ListCost``/``ContractedCost`` the
    rate times it, so every column adds up to the line's own value exactly.

    :param df: :func:`to_focus` rows.
    :param service_costs: :func:`~.allocation.allocate` of the same invoices.
    :raises FocusError: an allocation's amounts do not add up to the line's ``BilledCost``.
    """
    allocations = _allocations(service_costs)
    rows = []
    for row in df.to_dict("records"):
        parts = allocations.get(
            (row["x_FastlyLoadKey"], int(row["x_FastlyLineNumber"])), [(None, None, row["BilledCost"], Decimal(0))]
        )
        if sum(amount for _, _, amount, _ in parts) != row["BilledCost"]:
            raise FocusError(
                f"invoice {row['x_FastlyInvoiceId']} line {row['x_FastlyLineNumber']}: its service costs add up to "
                f"{sum(amount for _, _, amount, _ in parts)}, not its BilledCost {row['BilledCost']}"
            )
        rows.extend(_shares(row, parts))
    columns = [*df.columns[: df.columns.get_loc("x_FastlyApiVersion")], *RESOURCE_COLUMNS]
    columns += [c for c in df.columns if c not in columns]
    out = pd.DataFrame(rows, columns=columns)
    for name in out.columns:
        if name in TIMESTAMPS:
            out[name] = out[name].astype("datetime64[us, UTC]")
        elif name == "x_FastlyEstimate":
            out[name] = out[name].astype("boolean")
        else:
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def to_focus_table(
    frames: InvoiceFrames,
    *,
    account_names: Mapping[str, str] | None = None,
    service_costs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """
    The ``fastly_focus`` warehouse table: FOCUS 1.2 rows of the invoices and estimates of a load.

    Keyed like the other tables (``load_key``, ``api_version``, ``invoice_id``, ``customer_id`` first), so a
    load replaces its FOCUS rows with the rest; columns and kinds are :data:`TABLE_SCHEMA`.

    :param frames: the frames being loaded.
    :param account_names: as for :func:`to_focus`.
    :param service_costs: as for :func:`to_focus`; without it ``ResourceId``/``ResourceName`` are null.
    """
    df = to_focus(frames, account_names=account_names, include_estimates=True, service_costs=service_costs)
    if service_costs is None:
        df.insert(len(COLUMNS_1_2), "ResourceId", None)
        df.insert(len(COLUMNS_1_2) + 1, "ResourceName", None)
    keys = {
        "load_key": df["x_FastlyLoadKey"],
        "api_version": df["x_FastlyApiVersion"],
        "invoice_id": df["x_FastlyInvoiceId"],
        "customer_id": df["BillingAccountId"],
    }
    return pd.concat([pd.DataFrame(keys), df], axis=1)


def _kind(column: str) -> str:
    if column in DECIMALS or column in X_DECIMALS:
        return "numeric"
    if column in TIMESTAMPS:
        return "timestamp"
    return "bool" if column == "x_FastlyEstimate" else "string"


TABLE_SCHEMA: dict[str, str] = {
    **dict.fromkeys(("load_key", "api_version", "invoice_id", "customer_id"), "string"),
    **{column: _kind(column) for column in (*COLUMNS_1_2, *RESOURCE_COLUMNS, *X_COLUMNS, "x_FastlyEstimate")},
}
"""Columns of :func:`to_focus_table` and their kinds, as in :data:`~.frames.SCHEMA`."""


def _issue_dates(frames: InvoiceFrames) -> dict[str, Any]:
    """Per load key: when the invoice was issued (v3 ``invoice_posted_on``, v2 ``status.sent_at``)."""
    return {
        key: posted if not pd.isna(posted) else (sent if not pd.isna(sent) else None)
        for key, posted, sent in zip(
            frames.invoices["load_key"], frames.invoices["invoice_posted_on"], frames.invoices["sent_at"], strict=True
        )
    }


def _net_days(terms: str | None) -> int | None:
    match = re.fullmatch(r"net\s*(\d{1,3})", (terms or "").strip(), re.IGNORECASE)
    return int(match[1]) if match else None


INVOICE_DETAIL_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "InvoiceDetailCreated",
    "InvoiceDetailDescription",
    "InvoiceDetailGrain",
    "InvoiceDetailId",
    "InvoiceDetailLastUpdated",
    "InvoiceId",
    "InvoiceIssueDate",
    "InvoiceIssueStatus",
    "InvoiceIssuerName",
    "PaymentDueDate",
    "PaymentTerms",
    "ReferenceInvoiceId",
)


INVOICE_DETAIL_TIMESTAMPS = (
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "InvoiceDetailCreated",
    "InvoiceDetailLastUpdated",
    "InvoiceIssueDate",
    "PaymentDueDate",
)


def to_focus_invoice_detail(frames: InvoiceFrames) -> pd.DataFrame:
    """
    FOCUS 1.4 Invoice Detail: one row per line of every issued invoice, the lines the Cost and Usage rows of
    :func:`to_focus` (``version="1.4"``) point to with ``InvoiceDetailId``.

    ``InvoiceIssueDate`` is v3's ``invoice_posted_on`` or v2's ``status.sent_at``; ``PaymentTerms`` is v2's
    ``total.terms`` (``Net15``), else ``Unknown`` (v3 does not say), and ``PaymentDueDate`` follows from
    ``NetN`` terms and the issue date. An unsent (``Pending``) invoice is ``Open``, any other ``Issued``.

    :param frames: the invoices' frames; estimates are left out (they are no invoice).
    """
    cau = to_focus(frames, version="1.4")
    issued = _issue_dates(frames)
    terms = dict(zip(frames.invoices["load_key"], frames.invoices["terms"], strict=True))
    rows = []
    for row in cau.to_dict("records"):
        key = row["x_FastlyLoadKey"]
        issue = issued.get(key)
        issue = None if issue is None else pd.Timestamp(issue).tz_convert("UTC")
        days = _net_days(_text(terms.get(key)))
        created = issue if issue is not None else row["BillingPeriodEnd"]
        rows.append(
            {
                "BilledCost": row["BilledCost"],
                "BillingAccountId": row["BillingAccountId"],
                "BillingCurrency": row["BillingCurrency"],
                "BillingPeriodEnd": row["BillingPeriodEnd"],
                "BillingPeriodStart": row["BillingPeriodStart"],
                "ChargeCategory": row["ChargeCategory"],
                "InvoiceDetailCreated": created,
                "InvoiceDetailDescription": row["ChargeDescription"],
                "InvoiceDetailGrain": None,
                "InvoiceDetailId": row["InvoiceDetailId"],
                "InvoiceDetailLastUpdated": created,
                "InvoiceId": row["InvoiceId"],
                "InvoiceIssueDate": issue,
                "InvoiceIssueStatus": "Open" if row["x_FastlyInvoiceStatus"] == "Pending" else "Issued",
                "InvoiceIssuerName": PROVIDER,
                "PaymentDueDate": issue + timedelta(days=days) if issue is not None and days is not None else None,
                "PaymentTerms": _text(terms.get(key)) or "Unknown",
                "ReferenceInvoiceId": row["InvoiceId"],
                "x_FastlyLoadKey": key,
            }
        )
    frame = pd.DataFrame(rows, columns=[*INVOICE_DETAIL_COLUMNS, "x_FastlyLoadKey"])
    for name in INVOICE_DETAIL_TIMESTAMPS:
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    return frame.astype({c: object for c in frame.columns if c not in INVOICE_DETAIL_TIMESTAMPS})


BILLING_PERIOD_COLUMNS = (
    "BillingPeriodCreated",
    "BillingPeriodEnd",
    "BillingPeriodLastUpdated",
    "BillingPeriodStart",
    "BillingPeriodStatus",
    "InvoiceIssuerName",
)


def to_focus_billing_period(frames: InvoiceFrames) -> pd.DataFrame:
    """
    FOCUS 1.4 Billing Period: one row per month the frames hold.

    A month with an issued invoice is ``Closed``, a month with only estimates ``Open``. Created is the
    month's first instant; last updated is the latest issue date of its invoices (or when its estimates
    were fetched), never before it was created.

    :param frames: invoices and estimates of any months.
    """
    periods: dict[datetime, dict[str, Any]] = {}
    issued = _issue_dates(frames)
    for inv in frames.invoices.to_dict("records"):
        if pd.isna(inv["period_start"]):
            raise FocusError(f"invoice {inv['invoice_id']} of customer {inv['customer_id']} has no billing period")
        start = _month_start(inv["period_start"])
        period = periods.setdefault(start, {"closed": False, "updated": start})
        period["closed"] |= not inv["is_estimate"]
        stamp = issued.get(inv["load_key"]) if not inv["is_estimate"] else inv["fetched_at"]
        if stamp is not None and not pd.isna(stamp):
            period["updated"] = max(period["updated"], pd.Timestamp(stamp).to_pydatetime())
    rows = [
        {
            "BillingPeriodCreated": start,
            "BillingPeriodEnd": _next_month(start),
            "BillingPeriodLastUpdated": period["updated"],
            "BillingPeriodStart": start,
            "BillingPeriodStatus": "Closed" if period["closed"] else "Open",
            "InvoiceIssuerName": PROVIDER,
        }
        for start, period in sorted(periods.items())
    ]
    frame = pd.DataFrame(rows, columns=list(BILLING_PERIOD_COLUMNS))
    for name in ("BillingPeriodCreated", "BillingPeriodEnd", "BillingPeriodLastUpdated", "BillingPeriodStart"):
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    return frame


DECIMAL_TYPE = (38, 18)
"""Arrow ``decimal128(38, 18)``: 20 integer digits, 18 decimals, enough for Fastly's 9-decimal units times
prices; a value that needs more decimals is an error, never rounded."""


def _arrow_schema(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    fields = []
    for name, dtype in df.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype) or str(dtype).startswith("datetime64"):
            kind = pa.timestamp("us", tz="UTC")
        elif name in DECIMALS or name in X_DECIMALS:
            kind = pa.decimal128(*DECIMAL_TYPE)
        elif str(dtype) == "boolean":
            kind = pa.bool_()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema(df)
    arrays = []
    for field in schema:
        values = df[field.name]
        if pa.types.is_decimal(field.type):
            quantum = Decimal(1).scaleb(-DECIMAL_TYPE[1])
            for value in values:
                if isinstance(value, Decimal) and value.quantize(quantum) != value:
                    raise FocusError(f"{field.name} value {value} has more than {DECIMAL_TYPE[1]} decimals")
        arrays.append(pa.array(values.tolist() if not pa.types.is_timestamp(field.type) else values, field.type))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink)
    return cast("bytes", sink.getvalue().to_pybytes())


def _csv_bytes(df: pd.DataFrame) -> bytes:
    out = df.copy()
    for name, dtype in out.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif name in DECIMALS or name in X_DECIMALS:
            out[name] = [None if v is None else format(v, "f") for v in out[name]]
    return cast("bytes", out.to_csv(index=False).encode())


def write_focus(
    df: pd.DataFrame, destination: str | Path | ObjectStoragePath, *, fmt: str = "parquet"
) -> Path | ObjectStoragePath:
    """
    Write a FOCUS dataset to a local path or any object store (``s3://...``, ``ObjectStoragePath``), atomically.

    Parquet has explicit Arrow types: money and quantities ``decimal128(38, 18)``, times
    ``timestamp[us, UTC]``, everything else strings (so an all-digit ``InvoiceId`` stays a string). CSV writes
    decimals plainly and times as ``YYYY-MM-DDTHH:MM:SSZ``. Returns where it was written.

    :param df: a frame of :func:`to_focus`, :func:`to_focus_invoice_detail` or :func:`to_focus_billing_period`.
    :param destination: the file's path or URL.
    :param fmt: ``"parquet"`` or ``"csv"``.
    """
    from airflow_provider_fastly_billing.files import storage_path, write_atomically

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    body = _parquet_bytes(df) if fmt == "parquet" else _csv_bytes(df)
    target = storage_path(destination)
    write_atomically(target, [body])
    return target
