"""Operator that writes a month of the Fastly bill as a FOCUS file to a local path or object storage."""

from __future__ import annotations

import calendar
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_fastly_billing import validation
from airflow_provider_fastly_billing.hooks.billing import BillingHook

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

FORMATS = ("parquet", "csv")


class FocusExportOperator(BaseOperator):
    """
    Fetch a month's Fastly invoices and write them as one FOCUS Cost and Usage file, atomically.

    The invoices are fetched from Fastly (not read back from a warehouse), so the export needs nothing but
    the ``fastly`` connection: v2 exports the account's invoice of the month, v3 every invoice listed for
    it. The file is written whole or not at all, and a re-run replaces it. XCom holds a small summary:
    the destination, the row count, the invoice ids and the billed total as an exact string.

    :param destination: the file's path or URL (``s3://bucket/fastly/{{ ds }}.parquet``, any
        ``ObjectStoragePath``, or a local path).
    :param year: the invoiced year.
    :param month: the invoiced month, 1 to 12.
    :param fastly_conn_id: the ``fastly`` connection.
    :param api_version: ``"v2"`` (default) or ``"v3"``.
    :param focus_version: ``"1.2"`` (default; what FinOps tools import today) or ``"1.4"``.
    :param fmt: ``"parquet"`` (default, typed) or ``"csv"``.
    :param account_names: customer id -> account name for ``BillingAccountName``; default: read once per
        run from Fastly's customer API (``GET /customer/{id}``), the customer id where it has no name.
    """

    template_fields: Sequence[str] = (
        "destination",
        "year",
        "month",
        "fastly_conn_id",
        "api_version",
        "focus_version",
        "fmt",
        "account_names",
    )
    ui_color = "#ff282d"

    def __init__(
        self,
        *,
        destination: str,
        year: int | str,
        month: int | str,
        fastly_conn_id: str = BillingHook.default_conn_name,
        api_version: str = "v2",
        focus_version: str = "1.2",
        fmt: str = "parquet",
        account_names: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.year = year
        self.month = month
        self.fastly_conn_id = fastly_conn_id
        self.api_version = api_version
        self.focus_version = focus_version
        self.fmt = fmt
        self.account_names = account_names

    @cached_property
    def hook(self) -> BillingHook:
        return BillingHook(self.fastly_conn_id)

    def _check(self) -> tuple[str, str]:
        """Validate every input before any request; return the period."""
        validation.api_version(self.api_version)
        if self.focus_version not in ("1.2", "1.4"):
            raise ValueError(f"focus_version must be '1.2' or '1.4', got {self.focus_version!r}")
        if self.fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if not isinstance(self.destination, str) or not self.destination.strip():
            raise ValueError(f"destination must be a path or URL, got {self.destination!r}")
        if self.account_names is not None and not isinstance(self.account_names, dict):
            raise ValueError("account_names must be a mapping of customer id to account name")
        return validation.period(self.year, self.month)

    def _invoices(self, year: str, month: str) -> list[dict[str, Any]]:
        if self.api_version == "v2":
            return [self.hook.get_invoice(year, month)]
        first = date(int(year), int(month), 1)
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        return list(self.hook.list_invoices(first, last))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the month's invoice endpoint read and the FOCUS file written."""
        from airflow_provider_fastly_billing import lineage

        paths = lineage.month_paths(self.api_version, *self._check())
        return lineage.lineage(self.hook, paths, [lineage.file_dataset(self.destination)])

    def execute(self, context: Context) -> dict[str, Any]:
        from decimal import Decimal

        from airflow_provider_fastly_billing.focus import to_focus, write_focus
        from airflow_provider_fastly_billing.frames import invoices_to_frames

        year, month = self._check()
        frames = invoices_to_frames(self._invoices(year, month))
        names = self.account_names
        if names is None:
            names = self.hook.get_account_names(frames.invoices["customer_id"])
        df = to_focus(frames, version=self.focus_version, account_names=names)
        target = write_focus(df, self.destination, fmt=self.fmt)
        summary = {
            "destination": str(target),
            "rows": len(df),
            "invoice_ids": sorted(set(df["x_FastlyInvoiceId"])),
            "billed_cost": str(sum(df["BilledCost"], Decimal(0))),
        }
        self.log.info("Wrote %s FOCUS %s rows of %s-%s to %s", summary["rows"], self.focus_version, year, month, target)
        return summary
