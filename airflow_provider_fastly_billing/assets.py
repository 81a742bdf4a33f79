"""
Assets of the warehouse tables a load writes, and the events a load attaches to them.

URIs are spelled as the SQL providers spell theirs (``postgres://host:5432/db/schema/table``,
``mysql://host:3306/db/table``); DuckDB and SQLite files, for which no provider registers a scheme, get
``duckdb://localhost/path/to/file.duckdb/schema/table`` and ``sqlite://localhost/path/to/file.db/table``
(``localhost`` as in ``file://localhost/...``: Airflow drops an empty host; registered by this provider's
``asset-uris``). A schema left to the connection is ``default``, as the postgres provider writes it.
Each event carries the invoice ids, rows per table, the total as an exact string, the currency and the
period, and on Airflow >= 3.3 (``add_partitions``) the partition key ``YYYY-MM`` of each month loaded.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from urllib.parse import SplitResult

    from airflow.sdk import Asset, Context

TABLES = ("invoices", "line_items", "regions", "extras")
"""The tables of :data:`~airflow_provider_fastly_billing.frames.SCHEMA` (frames imports pandas: not here)."""
DEFAULT_SCHEMA = "default"


def table_uri(conn: Any, table: str, schema: str | None = None) -> str:
    """The asset URI of ``table`` (a full table name) in the warehouse of the Airflow connection ``conn``."""
    kind = (conn.conn_type or "").lower()
    schema = schema or DEFAULT_SCHEMA
    if kind in ("postgres", "postgresql"):
        return f"postgres://{conn.host}:{conn.port or 5432}/{conn.schema or 'postgres'}/{schema}/{table}"
    if kind in ("mysql", "mariadb"):
        database = schema if schema != DEFAULT_SCHEMA else conn.schema
        return f"mysql://{conn.host}:{conn.port or 3306}/{database}/{table}"
    if kind in ("duckdb", "sqlite"):
        path = os.path.abspath(conn.host) if conn.host and conn.host != ":memory:" else ":memory:"
        parts = [path.lstrip("/"), *([schema] if kind == "duckdb" else []), table]
        return f"{kind}://localhost/{'/'.join(parts)}"
    return f"x-fastly-billing://{conn.conn_id}/{schema}/{table}"


def warehouse_assets(
    conn_id: str = "fastly_warehouse", *, schema: str | None = None, table_prefix: str = "fastly_"
) -> dict[str, Asset]:
    """
    The four tables a load into ``conn_id`` writes, as assets keyed ``invoices``, ``line_items``...

    For a DAG's ``outlets`` (and a downstream DAG's ``schedule``): reads the connection, so at parse time
    it must be one the DAG processor sees (an ``AIRFLOW_CONN_*`` variable, a secrets backend, or the
    metadata database on Airflow 3.3).
    """
    from airflow.sdk import Asset

    uris = written(conn_id, schema, table_prefix)
    return {t: Asset(uri=uri, group="fastly_billing") for t, uri in uris.items()}


def written(conn_id: str, schema: str | None, table_prefix: str) -> dict[str, str]:
    """The URIs of the four tables a load into ``conn_id`` writes, keyed ``invoices``, ``line_items``..."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return {t: table_uri(conn, f"{table_prefix}{t}", schema) for t in TABLES}


def event_extra(summary: Mapping[str, Any], invoices: Any) -> dict[str, Any]:
    """
    The ``extra`` of a load's asset events: JSON values only, money as an exact string.

    :param summary: the load's XCom summary (invoice ids, rows per table, total cost).
    :param invoices: the ``invoices`` frame that was loaded (period and currency per invoice).
    """
    periods = [
        (start.date().isoformat(), end.date().isoformat())
        for start, end in zip(invoices["period_start"], invoices["period_end"], strict=True)
        if isinstance(start, datetime) and isinstance(end, datetime)
    ]
    currencies = [c for c in invoices["currency_code"] if isinstance(c, str)]
    return {
        "invoice_ids": list(summary["invoice_ids"]),
        "rows": dict(summary["rows"]),
        "total": summary["total_cost"],
        "currency": ",".join(sorted(set(currencies))) or None,  # v2 invoices name no currency
        "period": {"start": min(p[0] for p in periods), "end": max(p[1] for p in periods)} if periods else None,
        "partitions": partition_keys(periods),
    }


def partition_keys(periods: Sequence[tuple[str, str]]) -> list[str]:
    """The ``YYYY-MM`` of each period's start (a Fastly invoice covers one calendar month)."""
    return sorted({start[:7] for start, _ in periods})


def check_outlets(outlets: Sequence[Any], written: Mapping[str, str]) -> list[Asset]:
    """The outlet assets among ``outlets``; each must name a table the load writes, else a clear error."""
    from airflow.sdk import Asset

    assets = [o for o in outlets if isinstance(o, Asset)]
    unknown = [a.uri for a in assets if a.uri not in written.values()]
    if unknown:
        raise ValueError(f"outlets {unknown} are not tables this load writes: {sorted(written.values())}")
    return assets


def announce(context: Context, assets: Sequence[Asset], extra: Mapping[str, Any]) -> None:
    """Attach ``extra`` and the partition keys to the events of ``assets`` (the task's outlets)."""
    for asset in assets:
        event = context["outlet_events"][asset]
        event.extra.update(extra)
        if extra["partitions"] and hasattr(event, "add_partitions"):  # Airflow >= 3.3
            event.add_partitions(list(extra["partitions"]))


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Normalise a ``duckdb://`` or ``sqlite://`` asset URI: an absolute file path, then schema and table."""
    parts = uri.path.split("/")
    least = 3 if uri.scheme == "duckdb" else 2
    if uri.netloc != "localhost" or len(parts) < least + 1 or not all(parts[-least:]):
        shape = "localhost/path/to/file/schema/table" if uri.scheme == "duckdb" else "localhost/path/to/file/table"
        raise ValueError(f"URI format {uri.scheme}:// must be {uri.scheme}://{shape}")
    return uri
