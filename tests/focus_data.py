"""FOCUS test datasets (simulator over HTTP, the real-shaped 2018 invoice, credits), our own checks, the validators."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_fastly_billing.testing import focus_validator as validator

if TYPE_CHECKING:
    import pandas as pd

    from airflow_provider_fastly_billing.frames import InvoiceFrames
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from airflow_provider_fastly_billing.testing.focus_validator import ValidatorResult

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
FOCUS_VENV = ROOT / ".venv-focus"
YEAR = 2025


def meltano_invoice() -> dict[str, Any]:
    return json.loads((DATA / "v2_invoice_meltano_2018_02.json").read_text())


def simulator_invoices(sim: FastlySimulator, api_version: str) -> list[dict[str, Any]]:
    """12 months x every customer of the simulator, fetched over HTTP through the hook."""
    from airflow_provider_fastly_billing.hooks.billing import BillingHook
    from airflow_provider_fastly_billing.testing import invoices

    hook = BillingHook()
    if api_version == "v3":
        return list(hook.list_invoices(date(YEAR, 1, 1), date(YEAR, 12, 31)))
    return [
        hook.get_invoice_by_id(customer, invoices.invoice_id_for(index, YEAR, month))
        for index, customer in enumerate(sim.customers)
        for month in range(1, 13)
    ]


def _add_lines(invoice: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The invoice with more line items, its total raised by their amounts (so it still reconciles)."""
    invoice = copy.deepcopy(invoice)
    extra = sum((Decimal(str(line["amount"])) for line in lines), Decimal(0))
    if "transaction_line_items" in invoice:
        invoice["transaction_line_items"] += lines
        invoice["monthly_transaction_amount"] = Decimal(str(invoice["monthly_transaction_amount"])) + extra
    else:
        first = len(invoice["line_items"]) + 1
        invoice["line_items"] += [{"line_number": first + n, **line} for n, line in enumerate(lines)]
        invoice["total"]["cost"] = Decimal(str(invoice["total"]["cost"])) + extra
    return invoice


def credit_invoices() -> list[dict[str, Any]]:
    """A customer with the contract discount, plus a coupon credit, a setup fee, a commit shortfall and tax."""
    from airflow_provider_fastly_billing.testing import invoices

    customer = invoices.base62("customer:1")
    charges = invoices.charges_for(customer, 1, YEAR, 6)
    v2 = invoices.v2_invoice(charges)
    v2["total"]["extras"].append({"name": "Dedicated TLS Setup", "setup": Decimal("500.00")})
    v2 = _add_lines(
        v2,
        [
            {"description": "Welcome credit", "service_name": "Credit", "plan_name": "Promotions", "units": 1,
             "rate_per_unit": Decimal("-25.00"), "amount": Decimal("-25.00"), "credit_coupon_code": "WELCOME25"},
            {"description": "Dedicated TLS Setup", "service_name": "Dedicated TLS Setup", "plan_name": "TLS",
             "units": 1, "rate_per_unit": Decimal("500.00"), "amount": Decimal("500.00")},
            {"description": "Commit Shortfall", "service_name": "Commit Shortfall", "plan_name": "CDN",
             "units": 1, "rate_per_unit": Decimal("40.00"), "amount": Decimal("40.00")},
            {"description": "Sales Tax", "service_name": "Tax", "plan_name": "Tax", "units": None,
             "rate_per_unit": None, "amount": Decimal("12.34")},
        ],
    )  # fmt: skip
    v3 = _add_lines(
        invoices.v3_invoice(invoices.charges_for(customer, 1, YEAR, 7)),
        [
            {"description": "Service credit", "amount": Decimal("-80.00"), "credit_coupon_code": "SLA-2025-07",
             "rate": Decimal("-80.00"), "units": 1, "product_name": "Credit", "product_group": "Platform",
             "product_line": "Professional Services", "region": "", "usage_type": "Credit"},
            {"description": "Image Optimizer Requests", "amount": Decimal("18.00"), "credit_coupon_code": "",
             "rate": Decimal("0.06"), "units": 300, "product_name": "Image Optimizer",
             "product_group": "Full-Site Delivery", "product_line": "Network Services", "region": "Europe",
             "usage_type": "Requests"},
            {"description": "Quantum Widgets", "amount": Decimal("7.00"), "credit_coupon_code": "",
             "rate": Decimal("7.00"), "units": 1, "product_name": "Quantum Widgets", "product_group": "Labs",
             "product_line": "Labs", "region": "", "usage_type": "Unit"},
        ],
    )  # fmt: skip
    return [v2, v3]


def own_checks(df: pd.DataFrame, frames: InvoiceFrames) -> None:
    """What the validator skips: exact totals per invoice, cost = price x quantity, credit rows' equal costs."""
    issued = frames.invoices[~frames.invoices["is_estimate"].astype(bool)]
    totals = dict(zip(issued["invoice_id"], issued["cost"], strict=True))
    billed: dict[str, Decimal] = {}
    for invoice_id, cost in zip(df["InvoiceId"], df["BilledCost"], strict=True):
        assert isinstance(cost, Decimal)
        billed[invoice_id] = billed.get(invoice_id, Decimal(0)) + cost
    assert billed == totals
    for row in df.to_dict("records"):
        if row["ChargeCategory"] == "Usage" and row["ContractedUnitPrice"] is not None:
            assert row["ContractedCost"] == row["ContractedUnitPrice"] * row["PricingQuantity"], row
            assert row["ListCost"] == row["ListUnitPrice"] * row["PricingQuantity"], row
        if row["ChargeCategory"] == "Credit":
            assert row["ListCost"] == row["ContractedCost"] == row["EffectiveCost"] == row["BilledCost"], row


def focus_venv() -> Path:
    """The validators' Python 3.12 venv that `make focus-validator` builds; skip (fail under CI) without it."""
    if (FOCUS_VENV / "bin" / "focus-validator").exists() and (FOCUS_VENV / "bin" / "focus-toolkit").exists():
        return FOCUS_VENV
    message = f"no FOCUS validator venv at {FOCUS_VENV}: `make focus-validator` needs a Python 3.12"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def subcategory_parents() -> dict[str, str]:
    """ServiceSubcategory -> ServiceCategory, as the validator's FOCUS 1.2 rule model allows them."""
    (model,) = focus_venv().glob("lib/python3*/site-packages/focus_validator/rules/model-1.2.0.1.json")
    rule = json.loads(model.read_text())["ModelRules"]["ServiceSubcategory-C-004-M"]
    pairs = {}
    for item in rule["ValidationCriteria"]["Requirement"]["Items"]:
        values = {check["ColumnName"]: check["Value"] for check in item["Items"]}
        pairs[values["ServiceSubcategory"]] = values["ServiceCategory"]
    return pairs


def run_focus_validator(parquet: Path) -> ValidatorResult:
    """focus-validator 2.2.1 on a FOCUS 1.2 file, offline, from the venv `make focus-validator` builds."""
    return validator.run_focus_validator(parquet, focus_venv())


def run_toolkit(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run focus-data-toolkit's ``focus-toolkit`` command."""
    command = [str(focus_venv() / "bin" / "focus-toolkit"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
