"""
Billing v2 paths, validated: the file to delete the day Fastly turns v2 off.

Fastly removed v2 from its API clients in March 2025; the endpoints still answer.
"""

from __future__ import annotations

from airflow_provider_fastly_billing import validation


def invoice_path(year: int | str, month: int | str) -> str:
    """Path of the account's invoice for a month (``GET /billing/v2/year/{year}/month/{month}``)."""
    y, m = validation.period(year, month)
    return f"/billing/v2/year/{y}/month/{m}"


def invoice_by_id_path(customer_id: str, invoice_id: int | str) -> str:
    """Path of one invoice of an account customer."""
    return (
        f"/billing/v2/account_customers/{validation.customer_id(customer_id)}"
        f"/invoices/{validation.invoice_id(invoice_id)}"
    )


def mtd_request(
    customer_id: str | None, year: int | str | None = None, month: int | str | None = None
) -> tuple[str, dict[str, str]]:
    """Path and query of a customer's month-to-date estimate; no period means the current month."""
    path = f"/billing/v2/account_customers/{validation.customer_id(customer_id)}/mtd_invoice"
    when = validation.optional_period(year, month)
    return path, ({"year": when[0], "month": when[1]} if when else {})
