"""Operators that expose each Fastly billing call as a task, to XCom or to a file."""

from __future__ import annotations

import time
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf

from airflow_provider_fastly_billing import validation
from airflow_provider_fastly_billing.api import v2, v3
from airflow_provider_fastly_billing.files import storage_path, write_atomically
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.xcom import jsonable, to_json_bytes

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

FORMATS = ("json", "csv", "pdf")


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as official providers read it."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class _BillingOperator(BaseOperator):
    """
    What every billing operator shares: the connection, and where the result goes.

    :param fastly_conn_id: the ``fastly`` connection (token and base URL).
    :param output_path: write the result here instead of XCom: a local path or a URL such as
        ``file:///data/x.json`` or ``s3://bucket/key.pdf``. XCom then holds ``{"path", "bytes", "format"}``.
    :param fmt: ``json``, ``csv`` or ``pdf``; ``csv`` and ``pdf`` need ``output_path``.
    """

    template_fields: Sequence[str] = ("fastly_conn_id", "output_path", "fmt")
    ui_color = "#ff282d"
    formats: tuple[str, ...] = FORMATS

    def __init__(
        self,
        *,
        fastly_conn_id: str = BillingHook.default_conn_name,
        output_path: str | None = None,
        fmt: str = "json",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fastly_conn_id = fastly_conn_id
        self.output_path = output_path
        self.fmt = fmt

    @cached_property
    def hook(self) -> BillingHook:
        return BillingHook(self.fastly_conn_id)

    def _api_paths(self) -> list[str]:
        """The API paths this operator reads (for lineage)."""
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the Fastly endpoint read, and the file written if ``output_path`` is set."""
        from airflow_provider_fastly_billing import lineage

        outputs = [lineage.file_dataset(self.output_path)] if self.output_path else []
        return lineage.lineage(self.hook, self._api_paths(), outputs)

    def _check_output(self) -> None:
        if self.fmt not in self.formats:
            raise ValueError(f"fmt must be one of {', '.join(self.formats)}, got {self.fmt!r}")
        if self.fmt != "json" and not self.output_path:
            raise ValueError(f"fmt={self.fmt!r} writes a file: give output_path")

    def _written(self, size: int) -> dict[str, Any]:
        self.log.info("Wrote %d bytes of %s to %s", size, self.fmt, self.output_path)
        return {"path": str(self.output_path), "bytes": size, "format": self.fmt}

    def _deliver(self, data: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """Return ``data`` for XCom (money as exact strings), or write it to ``output_path``."""
        if not self.output_path:
            return jsonable(data)
        return self._written(write_atomically(storage_path(self.output_path), [to_json_bytes(data)]))

    def _download(self, **where: Any) -> dict[str, Any]:
        target = storage_path(self.output_path)  # type: ignore[arg-type]
        self.hook.download_invoice(target, fmt=self.fmt, **where)
        return self._written(target.stat().st_size)


class GetInvoiceOperator(_BillingOperator):
    """
    Fetch the account's invoice for a month.

    :param year: the year, e.g. ``"{{ data_interval_start.year }}"``.
    :param month: the month, e.g. ``"{{ data_interval_start.strftime('%m') }}"``.
    """

    template_fields: Sequence[str] = (*_BillingOperator.template_fields, "year", "month")

    def __init__(self, *, year: int | str, month: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.year = year
        self.month = month

    def _api_paths(self) -> list[str]:
        return [v2.invoice_path(self.year, self.month)]

    def execute(self, context: Context) -> Any:
        self._check_output()
        if self.fmt != "json":
            return self._download(year=self.year, month=self.month)
        return self._deliver(self.hook.get_invoice(self.year, self.month))


class GetInvoiceByIdOperator(_BillingOperator):
    """
    Fetch one invoice of an account customer by id.

    :param customer_id: the alphanumeric Fastly customer id.
    :param invoice_id: the numeric invoice id.
    """

    template_fields: Sequence[str] = (*_BillingOperator.template_fields, "customer_id", "invoice_id")

    def __init__(self, *, customer_id: str, invoice_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.customer_id = customer_id
        self.invoice_id = invoice_id

    def _api_paths(self) -> list[str]:
        return [v2.invoice_by_id_path(self.customer_id, self.invoice_id)]

    def execute(self, context: Context) -> Any:
        self._check_output()
        if self.fmt != "json":
            return self._download(customer_id=self.customer_id, invoice_id=self.invoice_id)
        return self._deliver(self.hook.get_invoice_by_id(self.customer_id, self.invoice_id))


class ListInvoicesOperator(_BillingOperator):
    """
    List every Billing v3 invoice whose billing period starts in ``[start, end]``, across all pages.

    XCom holds a summary (count, invoice ids, the total as an exact string), or with ``output_path``
    the invoices are written there as a JSON list and XCom holds the file's path and size.

    :param start: first billing start date, ``YYYY-MM-DD`` (templated, e.g. ``"{{ ds }}"``).
    :param end: last billing start date, ``YYYY-MM-DD``.
    :param page_size: invoices per request, 1 to 200.
    """

    template_fields: Sequence[str] = (*_BillingOperator.template_fields, "start", "end")
    formats = ("json",)

    def __init__(
        self, *, start: str | None = None, end: str | None = None, page_size: int = 200, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.page_size = page_size

    def _api_paths(self) -> list[str]:
        return [v3.INVOICES_PATH]

    def execute(self, context: Context) -> Any:
        self._check_output()
        invoices = list(self.hook.list_invoices(self.start, self.end, page_size=self.page_size))
        if self.output_path:
            return self._deliver(invoices)
        total = sum(Decimal(str(i.get("monthly_transaction_amount") or 0)) for i in invoices)
        return {
            "count": len(invoices),
            "invoice_ids": [str(i.get("invoice_id")) for i in invoices],
            "total_amount": str(total),
        }


class GetInvoiceMtdOperator(_BillingOperator):
    """
    Fetch a customer's month-to-date estimate, waiting while Fastly answers 202.

    :param customer_id: the alphanumeric Fastly customer id.
    :param year: with ``month``, the month to estimate; both omitted for the current month.
    :param month: with ``year``.
    :param poll_interval: seconds between polls while the estimate is being generated.
    :param timeout: seconds to wait for the estimate before failing.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param api_version: ``"v2"`` (default), or ``"v3"`` for the token's account's v3 estimate (no customer id).
    """

    template_fields: Sequence[str] = (*_BillingOperator.template_fields, "customer_id", "year", "month")
    formats = ("json",)

    def __init__(
        self,
        *,
        customer_id: str | None = None,
        year: int | str | None = None,
        month: int | str | None = None,
        poll_interval: float = 10.0,
        timeout: float = 600.0,
        deferrable: bool = default_deferrable(),
        api_version: str = "v2",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.customer_id = customer_id
        self.year = year
        self.month = month
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.api_version = api_version

    def _api_paths(self) -> list[str]:
        if validation.api_version(self.api_version) == "v3":
            return [v3.MTD_PATH]
        return [v2.mtd_request(self.customer_id, self.year, self.month)[0]]

    def execute(self, context: Context) -> Any:
        self._check_output()
        estimate = wait_for_estimate(
            self.hook,
            self.customer_id,
            self.year,
            self.month,
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            log=self.log,
            defer=self.defer if self.deferrable else None,
            api_version=self.api_version,
        )
        return self._deliver(estimate)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after deferral with the trigger's event."""
        from airflow_provider_fastly_billing.triggers.billing import estimate_from_event

        return self._deliver(estimate_from_event(event, TimeoutError))


def fetch_estimate(
    hook: BillingHook, api_version: str, customer_id: str | None, year: int | str | None, month: int | str | None
) -> dict[str, Any] | None:
    """One poll of the month-to-date estimate of either API generation; ``None`` while Fastly answers 202."""
    if validation.api_version(api_version) == "v3":
        return hook.get_invoice_mtd_v3()
    return hook.get_invoice_mtd(customer_id, year, month)  # type: ignore[arg-type]


def wait_for_estimate(
    hook: BillingHook,
    customer_id: str | None,
    year: int | str | None,
    month: int | str | None,
    *,
    poll_interval: float,
    timeout: float,
    log: Any,
    defer: Callable[..., Any] | None = None,
    api_version: str = "v2",
) -> dict[str, Any]:
    """
    Poll a month-to-date estimate until Fastly has generated it, in the task or deferred.

    :param defer: the task's ``defer`` to hand the wait to
        :class:`~airflow_provider_fastly_billing.triggers.billing.InvoiceMtdTrigger` at the first 202
        (the task resumes in ``execute_complete``); ``None`` polls here every ``poll_interval`` seconds.
    :param api_version: ``"v2"`` (a customer's estimate) or ``"v3"`` (the token's account).
    """
    from airflow_provider_fastly_billing.triggers.billing import InvoiceMtdTrigger, mtd_timeout_message

    deadline = time.time() + timeout
    while (estimate := fetch_estimate(hook, api_version, customer_id, year, month)) is None:
        if defer is not None:
            trigger = InvoiceMtdTrigger(
                customer_id,
                year=year,
                month=month,
                fastly_conn_id=hook.fastly_conn_id,
                poll_interval=poll_interval,
                end_time=deadline,
                timeout=timeout,
                api_version=api_version,
            )
            defer(trigger=trigger, method_name="execute_complete")
        if time.time() + poll_interval > deadline:
            raise TimeoutError(mtd_timeout_message(customer_id, timeout))
        log.info("Estimate for %s not ready yet; next poll in %s s", customer_id or "the account", poll_interval)
        time.sleep(poll_interval)
    return estimate
