"""
Deterministic, realistic Fastly invoices for the simulator.

One list of charges per customer and month is the single source; the v2 invoice, the v2 estimate,
the v3 invoice, CSV and PDF are renderings of it, so every generation describes the same money.
Amounts are ``Decimal`` rounded to the cent, line items add up to the total, and
``bandwidth_cost + requests_cost == incurred_cost``, as in real invoices.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

CENT = Decimal("0.01")
INVOICE_ID_BASE = 5_000_000
CUSTOMER_STRIDE = 100_000
PLAN: dict[str, Any] = {"plan_name": "CDN", "plan_code": "cdn", "plan_no": 286, "plan_minimum": Decimal("50.00")}
# (key, name, bandwidth price per GB, request price per 10k, service number)
REGIONS = (
    ("usa", "North America", Decimal("0.12"), Decimal("0.0075"), 11000331),
    ("europe", "Europe", Decimal("0.12"), Decimal("0.009"), 11000335),
    ("asia", "Asia", Decimal("0.19"), Decimal("0.009"), 11000337),
    ("latam", "Latin America", Decimal("0.28"), Decimal("0.016"), 11000339),
    ("australia", "Australia", Decimal("0.19"), Decimal("0.009"), 11000341),
)
TIER_LIMIT_GB = Decimal("10000")
TIER_2_FACTOR = Decimal("0.8")
EXTRAS = (
    ("Shared TLS Certificate", Decimal("100.00"), "TLS", 11000364),
    ("Gold Support", Decimal("250.00"), "Support", 11000370),
)
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(seed: str, length: int = 22) -> str:
    """A deterministic Fastly-style alphanumeric id."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(length):
        digest, rest = divmod(digest, 62)
        chars.append(BASE62[rest])
    return "".join(chars)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def invoice_id_for(customer_index: int, year: int, month: int) -> int:
    """The invoice id of a customer's month; :func:`decode_invoice_id` inverts it."""
    return INVOICE_ID_BASE + customer_index * CUSTOMER_STRIDE + month_index(year, month) - month_index(2000, 1)


def decode_invoice_id(invoice_id: int) -> tuple[int, int, int] | None:
    """Customer index, year and month of an invoice id, or ``None`` if it cannot be one of ours."""
    rest = invoice_id - INVOICE_ID_BASE
    if rest < 0:
        return None
    customer_index, offset = divmod(rest, CUSTOMER_STRIDE)
    year, month0 = divmod(month_index(2000, 1) + offset, 12)
    return customer_index, year, month0 + 1


@dataclass(frozen=True)
class Charge:
    """One billed quantity: a usage tier of a region, or a flat extra."""

    description: str
    product: str
    usage: str
    units: Decimal
    rate: Decimal
    amount: Decimal
    service_no: int
    region_key: str = ""
    region: str = ""
    tier: int = 1


def _usage_charges(
    rng: random.Random,
    key: str,
    name: str,
    gb_price: Decimal,
    req_price: Decimal,
    service_no: int,
    volume: float,
) -> list[Charge]:
    """Bandwidth tiers and requests of one region, around ``volume`` gigabytes."""
    gigabytes = Decimal(str(round(volume * rng.uniform(0.9, 1.1), 9)))
    requests = Decimal(str(round(float(gigabytes) * rng.uniform(1.5, 4.0), 4)))
    charges = []
    tiers = [(1, min(gigabytes, TIER_LIMIT_GB), gb_price)]
    if gigabytes > TIER_LIMIT_GB:
        tiers.append((2, gigabytes - TIER_LIMIT_GB, gb_price * TIER_2_FACTOR))
    for tier, units, price in tiers:
        charges.append(
            Charge(
                f"{name} Bandwidth ({units:,} gigabytes @ ${price.normalize()})",
                "CDN",
                "Bandwidth",
                units,
                price,
                cents(units * price),
                service_no,
                key,
                name,
                tier,
            )
        )
    charges.append(
        Charge(
            f"{name} Requests ({requests:,} units @ ${req_price.normalize()})",
            "CDN",
            "Requests",
            requests,
            req_price,
            cents(requests * req_price),
            service_no + 1,
            key,
            name,
        )
    )
    return charges


@dataclass(frozen=True)
class InvoiceCharges:
    """Everything billed to one customer for one month."""

    customer_id: str
    customer_index: int
    year: int
    month: int
    usage: tuple[Charge, ...]
    extras: tuple[Charge, ...]
    discount_rate: Decimal

    @property
    def invoice_id(self) -> int:
        return invoice_id_for(self.customer_index, self.year, self.month)

    @property
    def incurred(self) -> Decimal:
        return sum((c.amount for c in self.usage), Decimal(0))

    @property
    def extras_cost(self) -> Decimal:
        return sum((c.amount for c in self.extras), Decimal(0))

    @property
    def before_discount(self) -> Decimal:
        return self.incurred + self.extras_cost

    @property
    def discount_amount(self) -> Decimal:
        return cents(self.before_discount * self.discount_rate)

    @property
    def cost(self) -> Decimal:
        return self.before_discount - self.discount_amount

    def usage_total(self, usage: str) -> Decimal:
        return sum((c.amount for c in self.usage if c.usage == usage), Decimal(0))

    def units_total(self, usage: str) -> Decimal:
        return sum((c.units for c in self.usage if c.usage == usage), Decimal(0))


def charges_for(customer_id: str, customer_index: int, year: int, month: int, *, scale: float = 1.0) -> InvoiceCharges:
    """The deterministic charges of a customer's month; ``scale`` shrinks usage (month-to-date)."""
    account = random.Random(customer_id)
    volumes = {r[0]: account.uniform(800, 14000) for r in REGIONS}
    regions = [r for r in REGIONS if r[0] in ("usa", "europe") or account.random() < 0.6]
    rng = random.Random(f"{customer_id}:{year}:{month}")
    growth = (1 + 0.02 * (month_index(year, month) - month_index(2020, 1))) * (1.2 if month in (11, 12) else 1.0)
    usage = [c for r in regions for c in _usage_charges(rng, *r, volume=volumes[r[0]] * growth * scale)]
    extras = [
        Charge(name, product, "Unit", Decimal(1), price, price, service_no)
        for name, price, product, service_no in EXTRAS
        if name.startswith("Shared") or rng.random() < 0.5
    ]
    discount = Decimal("0.05") if customer_index % 3 == 1 else Decimal(0)
    return InvoiceCharges(customer_id, customer_index, year, month, tuple(usage), tuple(extras), discount)


def _period(ch: InvoiceCharges) -> tuple[str, str]:
    next_year, next_month = divmod(month_index(ch.year, ch.month) + 1, 12)
    return f"{ch.year:04d}-{ch.month:02d}-01T00:00:00Z", f"{next_year:04d}-{next_month + 1:02d}-01T00:00:00Z"


def _regions(ch: InvoiceCharges) -> dict[str, Any]:
    regions: dict[str, Any] = {}
    for c in ch.usage:
        region = regions.setdefault(c.region_key, {"cost": 0.0})
        metric = region.setdefault(c.usage.lower(), {"total": Decimal(0), "tiers": []})
        metric["total"] += c.amount
        metric["tiers"].append(
            {
                "name": c.description,
                "units": c.units,
                "price": c.rate,
                "discounted_price": c.rate,
                "total": c.amount,
            }
        )
        # Real answers sum region costs in binary floats, noise included (5.140000000000001).
        region["cost"] += float(c.amount)
    return regions


def _total(ch: InvoiceCharges) -> dict[str, Any]:
    total: dict[str, Any] = {
        "plan_name": PLAN["plan_name"],
        "plan_code": PLAN["plan_code"],
        "plan_minimum": PLAN["plan_minimum"],
        "terms": "Net15",
        "bandwidth": ch.units_total("Bandwidth"),
        "bandwidth_units": "GB",
        "bandwidth_cost": ch.usage_total("Bandwidth"),
        "requests": ch.units_total("Requests"),
        "requests_cost": ch.usage_total("Requests"),
        "incurred_cost": ch.incurred,
        "overage": max(ch.incurred - PLAN["plan_minimum"], Decimal(0)),
        "extras": [{"name": e.description, "recurring": e.amount} for e in ch.extras],
        "extras_cost": ch.extras_cost,
        "cost_before_discount": ch.before_discount,
        "discount": ch.discount_rate,
        "cost": ch.cost,
    }
    # Keys real invoices carry beyond the published model.
    total.update(percentile=0, percentile_cost=0, commit_shortfall=0, discount_amount=ch.discount_amount)
    return total


def _discount_charge(ch: InvoiceCharges) -> list[Charge]:
    if not ch.discount_amount:
        return []
    return [Charge("Discount", "Discount", "Credit", Decimal(1), -ch.discount_amount, -ch.discount_amount, 11000399)]


def billable(ch: InvoiceCharges) -> list[Charge]:
    """Every charge that becomes a line item, in invoice order; their amounts add up to the cost."""
    return [*ch.usage, *ch.extras, *_discount_charge(ch)]


def _service_name(c: Charge) -> str:
    return f"{c.region} {c.usage}" if c.region else c.description


def v2_invoice(ch: InvoiceCharges, status: str = "Paid") -> dict[str, Any]:
    """A ``BillingResponse`` as ``GET /billing/v2/year/{y}/month/{m}`` answers it."""
    start, end = _period(ch)
    aria_id = base62(f"aria:{ch.invoice_id}")
    line_items = [
        {
            "id": base62(f"line:{ch.invoice_id}:{n}"),
            "aria_invoice_id": aria_id,
            "line_number": n,
            "description": c.description,
            "service_no": c.service_no,
            "service_name": _service_name(c),
            "units": c.units,
            "rate_per_unit": c.rate,
            "amount": c.amount,
            "rate_schedule_no": 490 if c.region else 533,
            "rate_schedule_tier_no": c.tier,
            "usage_type_no": 10019400 + c.service_no % 100 if c.region else None,
            "usage_type_cd": _service_name(c).replace(" ", "_") if c.region else None,
            "plan_no": PLAN["plan_no"],
            "plan_name": PLAN["plan_name"] if c.region else c.product,
            "client_service_id": _service_name(c).replace(" ", "_"),
            "credit_coupon_code": None,
            "created_at": end,
            "updated_at": end,
            "deleted_at": None,
        }
        for n, c in enumerate(billable(ch), start=1)
    ]
    return {
        "customer_id": ch.customer_id,
        "invoice_id": ch.invoice_id,
        "start_time": start,
        "end_time": end,
        "vendor_state": "up",
        "status": {"status": status, "sent_at": end if status != "Pending" else None},
        "total": _total(ch),
        "regions": _regions(ch),
        "line_items": line_items,
    }


def v2_estimate(ch: InvoiceCharges) -> dict[str, Any]:
    """A ``BillingEstimateResponse`` as the v2 month-to-date endpoint answers it."""
    start, end = _period(ch)
    line_items = [
        {
            "plan_no": PLAN["plan_no"],
            "description": _service_name(c),
            "units": c.units,
            "per_unit_cost": c.rate,
            "service_no": c.service_no,
            "service_type": "usage" if c.region else "recurring",
            "amount": c.amount,
            "client_service_id": _service_name(c).replace(" ", "_"),
            "client_plan_id": PLAN["plan_code"],
        }
        for c in billable(ch)
    ]
    return {
        "customer_id": ch.customer_id,
        "invoice_id": str(ch.invoice_id),
        "start_time": start,
        "end_time": end,
        "vendor_state": "up",
        "status": {"status": "MTD", "sent_at": None},
        "total": _total(ch),
        "regions": _regions(ch),
        "line_items": line_items,
    }


CSV_COLUMNS = ("invoice_id", "line_number", "description", "service_name", "units", "rate_per_unit", "amount")


def invoice_csv(invoice: dict[str, Any]) -> bytes:
    """The invoice's line items as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in invoice["line_items"]:
        writer.writerow([invoice["invoice_id"], *(item[c] for c in CSV_COLUMNS[1:])])
    return out.getvalue().encode()


def _pdf_text(invoice: dict[str, Any]) -> str:
    lines = [f"Fastly invoice {invoice['invoice_id']}", f"Customer {invoice['customer_id']}"]
    lines += [f"{item['description'][:60]}  {item['amount']}" for item in invoice["line_items"][:40]]
    lines.append(f"Total USD {invoice['total']['cost']}")
    text = " T* ".join("(" + line.replace("\\", "").replace("(", "[").replace(")", "]") + ") Tj" for line in lines)
    return f"BT /F1 10 Tf 14 TL 50 780 Td {text} ET"


def invoice_pdf(invoice: dict[str, Any], padding: int = 0) -> tuple[int, Iterator[bytes]]:
    """
    A one-page PDF of the invoice, as (length, chunks).

    ``padding`` bytes of PDF comment lines make it as large as a test needs without holding it in memory.
    """
    stream = _pdf_text(invoice).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    header = b"%PDF-1.4\n"
    line = b"%" + b"0" * 78 + b"\n"
    full, rest = divmod(padding, len(line))
    pad_len = full * len(line) + (rest and max(rest, 2))
    body, offsets = b"", []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(header) + pad_len + len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (n, obj)
    xref_at = len(header) + pad_len + len(body)
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    xref += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    tail = body + xref + trailer

    def chunks() -> Iterator[bytes]:
        yield header
        block = line * 8192
        left = full * len(line)
        while left:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece
        if rest:
            yield b"%" + b"0" * (max(rest, 2) - 2) + b"\n"
        yield tail

    return len(header) + pad_len + len(tail), chunks()


V3_PRODUCT = {"CDN": ("Full-Site Delivery", "Network Services")}


def _v3_line_items(ch: InvoiceCharges, *, with_coupon: bool) -> list[dict[str, Any]]:
    items = []
    for c in billable(ch):
        group, line = V3_PRODUCT.get(c.product, ("Platform", "Professional Services"))
        item = {
            "description": _service_name(c),
            "amount": c.amount,
            "credit_coupon_code": "",
            "rate": c.rate,
            "units": c.units,
            "product_name": c.product,
            "product_group": group,
            "product_line": line,
            "region": c.region,
            "usage_type": c.usage,
        }
        if not with_coupon:
            del item["credit_coupon_code"]
        items.append(item)
    return items


def _v3_period(ch: InvoiceCharges) -> tuple[str, str]:
    last_day = calendar.monthrange(ch.year, ch.month)[1]
    return _period(ch)[0], f"{ch.year:04d}-{ch.month:02d}-{last_day:02d}T23:59:59Z"


def v3_invoice(ch: InvoiceCharges) -> dict[str, Any]:
    """An ``Invoice`` (``EomInvoiceResponse``) of Billing v3, the same charges as :func:`v2_invoice`."""
    start, end = _v3_period(ch)
    _, posted = _period(ch)
    return {
        "customer_id": ch.customer_id,
        "invoice_id": str(ch.invoice_id),
        "invoice_posted_on": posted.replace("T00:00:00Z", "T07:00:00Z").replace("-01T", "-03T"),
        "billing_start_date": start,
        "billing_end_date": end,
        "statement_number": f"FSTL{ch.invoice_id}",
        "currency_code": "USD",
        "monthly_transaction_amount": ch.cost,
        "transaction_line_items": _v3_line_items(ch, with_coupon=True),
    }


def v3_month_to_date(ch: InvoiceCharges) -> dict[str, Any]:
    """An ``MtdInvoiceResponse``: its total is a string, its line items have no coupon code."""
    start, end = _v3_period(ch)
    return {
        "customer_id": ch.customer_id,
        "invoice_id": f"MTD{ch.customer_id}{ch.year:04d}{ch.month:02d}",
        "billing_start_date": start,
        "billing_end_date": end,
        "monthly_transaction_amount": str(ch.cost),
        "transaction_line_items": _v3_line_items(ch, with_coupon=False),
    }
