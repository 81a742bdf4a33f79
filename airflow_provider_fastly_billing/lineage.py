"""
OpenLineage facets of the operators: the Fastly endpoint each one read, the tables or file it wrote.

Inputs are the API's endpoints as datasets (namespace the connection's base URL, ``https://api.fastly.com``,
name the path); outputs are the warehouse tables, with their columns as a schema facet, or the file written.
Called from the operators' ``get_openlineage_facets_on_complete``: the OpenLineage provider is imported here,
only when it runs, so the provider works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_fastly_billing.api import v2, v3

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_fastly_billing.hooks.billing import BillingHook

COLUMN_TYPES = {
    "string": "VARCHAR",
    "numeric": "DECIMAL(38, 15)",
    "int": "BIGINT",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "json": "JSON",
}
"""The portable SQL type of each column kind of :data:`~airflow_provider_fastly_billing.frames.SCHEMA`."""


def lineage(hook: BillingHook, paths: Iterable[str], outputs: list[Any]) -> OperatorLineage[Any, Any]:
    """The endpoints read (deduplicated, in order) and the datasets written."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    base = hook.settings.base_url
    inputs = [Dataset(namespace=base, name=path) for path in dict.fromkeys(paths)]
    return OperatorLineage(inputs=inputs, outputs=outputs)


def file_dataset(path: str) -> Any:
    """A file written, named as OpenLineage names files: ``file`` + absolute path, or ``s3://bucket`` + key."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    url = urlsplit(str(path))
    if url.scheme in ("", "file"):
        return Dataset(namespace="file", name=url.path)
    return Dataset(namespace=f"{url.scheme}://{url.netloc}", name=url.path.lstrip("/"))


def table_datasets(uris: Mapping[str, str]) -> list[Any]:
    """The tables written (``table -> asset URI``, from :func:`~.assets.written`), with their columns."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    from airflow_provider_fastly_billing.frames import SCHEMA

    datasets = []
    for table, uri in uris.items():
        fields = [SchemaDatasetFacetFields(name=c, type=COLUMN_TYPES[k]) for c, k in SCHEMA[table].items()]
        namespace, name = table_name(uri)
        datasets.append(Dataset(namespace=namespace, name=name, facets={"schema": SchemaDatasetFacet(fields=fields)}))
    return datasets


def table_name(uri: str) -> tuple[str, str]:
    """OpenLineage namespace and name of a table's asset URI (``postgres://h:5432`` and ``db.schema.table``)."""
    url = urlsplit(uri)
    parts = url.path.strip("/").split("/")
    if url.scheme in ("duckdb", "sqlite"):
        depth = 2 if url.scheme == "duckdb" else 1
        return f"{url.scheme}://localhost/{'/'.join(parts[:-depth])}", ".".join(parts[-depth:])
    return f"{url.scheme}://{url.netloc}", ".".join(parts)


def transfer_paths(api_version: str, mode: str, what: Any) -> list[str]:
    """The paths an ``InvoiceToSqlOperator`` load read, from its validated mode and what it fetched."""
    if mode == "period":
        return [v3.INVOICES_PATH if api_version == "v3" else v2.invoice_path(*what)]
    if mode == "invoices":
        if api_version == "v3":
            return [f"{v3.INVOICES_PATH}/{invoice_id}" for _, invoice_id in what]
        return [v2.invoice_by_id_path(*pair) for pair in what]
    return [v3.MTD_PATH if api_version == "v3" else v2.mtd_request(c)[0] for c in what]


def month_paths(api_version: str, year: int | str, month: int | str) -> list[str]:
    """The path of a month's invoices: v2's account invoice, or v3's listing."""
    return [v3.INVOICES_PATH if api_version == "v3" else v2.invoice_path(year, month)]
