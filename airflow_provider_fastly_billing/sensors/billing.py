"""Sensor that waits for Fastly's month-to-date estimate and returns it as its XCom."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.operators.billing import (
    default_deferrable,
    fetch_estimate,
    wait_for_estimate,
)
from airflow_provider_fastly_billing.xcom import jsonable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class InvoiceMtdSensor(BaseSensorOperator):
    """
    Wait until Fastly has generated a customer's month-to-date estimate; the estimate is the XCom.

    Fastly answers 202 while it generates an estimate (usually seconds, up to a minute). An error answer,
    such as an account that can never have an estimate, fails the task at once instead of waiting out
    the timeout. Works in ``poke`` and ``reschedule`` mode, and deferred to
    :class:`~airflow_provider_fastly_billing.triggers.billing.InvoiceMtdTrigger`.

    :param customer_id: the alphanumeric Fastly customer id.
    :param year: with ``month``, the month to estimate; both omitted for the current month.
    :param month: with ``year``.
    :param fastly_conn_id: the ``fastly`` connection.
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param api_version: ``"v2"`` (default), or ``"v3"`` for the token's account's v3 month-to-date
        invoice (``customer_id``, ``year`` and ``month`` are then not used).
    """

    template_fields: Sequence[str] = ("customer_id", "year", "month", "fastly_conn_id")
    ui_color = "#ff282d"

    def __init__(
        self,
        *,
        customer_id: str | None = None,
        year: int | str | None = None,
        month: int | str | None = None,
        fastly_conn_id: str = BillingHook.default_conn_name,
        deferrable: bool = default_deferrable(),
        poke_interval: float = 10.0,
        timeout: float = 600.0,
        api_version: str = "v2",
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.api_version = api_version
        self.customer_id = customer_id
        self.year = year
        self.month = month
        self.fastly_conn_id = fastly_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> BillingHook:
        return BillingHook(self.fastly_conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        estimate = fetch_estimate(self.hook, self.api_version, self.customer_id, self.year, self.month)
        return PokeReturnValue(is_done=estimate is not None, xcom_value=jsonable(estimate))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        estimate = wait_for_estimate(
            self.hook,
            self.customer_id,
            self.year,
            self.month,
            poll_interval=self.poke_interval,
            timeout=self.timeout,
            log=self.log,
            defer=self.defer,
            api_version=self.api_version,
        )
        return jsonable(estimate)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after deferral: the estimate, or the trigger's error raised."""
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from airflow_provider_fastly_billing.triggers.billing import estimate_from_event

        return estimate_from_event(event, AirflowSensorTimeout)
