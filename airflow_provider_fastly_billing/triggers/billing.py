"""Trigger that waits out the 202 answers of Fastly's month-to-date estimate without a worker slot."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_fastly_billing.exceptions import FastlyApiError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.xcom import jsonable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def mtd_timeout_message(customer_id: str | None, timeout: float) -> str:
    """The error a user sees when an estimate was still not ready at the deadline."""
    who = f"customer {customer_id}" if customer_id else "the token's account"
    return f"Fastly month-to-date estimate for {who} was not ready after {timeout:.0f} s"


class InvoiceMtdTrigger(BaseTrigger):
    """
    Poll a customer's month-to-date estimate until Fastly has generated it.

    Yields one event: ``{"status": "success", "estimate": {...}}`` (money as exact strings),
    ``{"status": "error", "message": ...}`` when Fastly refuses (a parent-pay account, a bad token), or
    ``{"status": "timeout", "message": ...}`` at ``end_time``. The kwargs hold the connection id, never
    the token.

    :param customer_id: the alphanumeric Fastly customer id (v2; v3 estimates the token's account).
    :param year: with ``month``, the month to estimate; both ``None`` for the current month (v2 only).
    :param month: with ``year``.
    :param fastly_conn_id: the ``fastly`` connection to read the token and base URL from.
    :param poll_interval: seconds between polls while Fastly answers 202.
    :param end_time: Unix time after which the trigger gives up; absolute, so that a restarted trigger
        and the task's ``execution_timeout`` keep the same deadline.
    :param timeout: the waiting time the deadline stands for, for the message.
    :param api_version: ``"v2"`` or ``"v3"``, the billing API generation to poll.
    """

    def __init__(
        self,
        customer_id: str | None,
        *,
        year: int | str | None = None,
        month: int | str | None = None,
        fastly_conn_id: str = BillingHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float,
        timeout: float = 0.0,
        api_version: str = "v2",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is unannotated
        self.customer_id = customer_id
        self.year = year
        self.month = month
        self.fastly_conn_id = fastly_conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.timeout = timeout
        self.api_version = api_version

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-only kwargs; no token."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "customer_id": self.customer_id,
                "year": self.year,
                "month": self.month,
                "fastly_conn_id": self.fastly_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "timeout": self.timeout,
                "api_version": self.api_version,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the estimate is ready, Fastly refuses, or the deadline passes; one HTTP client for all polls."""
        hook = BillingHook(self.fastly_conn_id)
        try:
            async with hook.async_client() as client:
                while True:
                    estimate = await hook.async_get_invoice_mtd(
                        self.customer_id, self.year, self.month, self.api_version, client=client
                    )
                    if estimate is not None:
                        event = {"status": "success", "estimate": jsonable(estimate)}
                        break
                    if time.time() + self.poll_interval > self.end_time:
                        event = {"status": "timeout", "message": mtd_timeout_message(self.customer_id, self.timeout)}
                        break
                    await asyncio.sleep(self.poll_interval)
        except (FastlyApiError, ValueError) as exc:
            event = {"status": "error", "message": str(exc)}
        yield TriggerEvent(event)  # type: ignore[no-untyped-call]  # Airflow's TriggerEvent is unannotated


def estimate_from_event(event: dict[str, Any], timeout_error: type[Exception]) -> dict[str, Any]:
    """
    The estimate of a trigger event, or the event's error raised.

    :param event: the event :class:`InvoiceMtdTrigger` yielded.
    :param timeout_error: the exception to raise on timeout (sensors raise ``AirflowSensorTimeout``).
    """
    from airflow.sdk.exceptions import AirflowException

    if event.get("status") == "success":
        estimate: dict[str, Any] = event["estimate"]
        return estimate
    if event.get("status") == "timeout":
        raise timeout_error(event["message"])
    raise AirflowException(event.get("message", f"unexpected trigger event {event!r}"))
