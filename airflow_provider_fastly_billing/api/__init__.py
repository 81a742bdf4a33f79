"""
Fastly's billing API below Airflow: the guarded transport and one module per API generation.

Nothing here imports Airflow, requests or httpx at import time.
"""

from __future__ import annotations

from airflow_provider_fastly_billing import validation
from airflow_provider_fastly_billing.api import v2, v3


def mtd_request(
    customer_id: str | None,
    year: int | str | None = None,
    month: int | str | None = None,
    api_version: str = "v2",
) -> tuple[str, dict[str, str]]:
    """
    Path and query of a month-to-date estimate, validated.

    v2 estimates a customer's month; v3 has one estimate, the token's account's current month.
    """
    if validation.api_version(api_version) == "v3":
        return v3.MTD_PATH, {}
    return v2.mtd_request(customer_id, year, month)


def customer_path(customer_id: str) -> str:
    """Path of a customer's record (``GET /customer/{customer_id}``): its account name, among others."""
    return f"/customer/{validation.customer_id(customer_id)}"
