"""Asset events of loads: URIs of the tables written, extra a user reads, the month as partition key."""

from __future__ import annotations

import secrets
from decimal import Decimal
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.assets import table_uri
from tests.dagrun import run_dag

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from tests.conftest import Warehouse


def conn(conn_type: str, **fields: object) -> SimpleNamespace:
    return SimpleNamespace(conn_id="w", conn_type=conn_type, **{"host": None, "port": None, "schema": None, **fields})


def test_uris_are_spelled_as_the_sql_providers_spell_them() -> None:
    from airflow.sdk import Asset

    pg = conn("postgres", host="db.example", schema="dwh")
    assert table_uri(pg, "fastly_invoices", "billing") == "postgres://db.example:5432/dwh/billing/fastly_invoices"
    assert table_uri(pg, "fastly_invoices") == "postgres://db.example:5432/dwh/default/fastly_invoices"
    assert table_uri(conn("mysql", host="m", port=3307, schema="dwh"), "t") == "mysql://m:3307/dwh/t"
    assert table_uri(conn("duckdb", host="/data/w.duckdb"), "t", "main") == "duckdb://localhost/data/w.duckdb/main/t"
    assert table_uri(conn("sqlite", host="/data/w.db"), "t") == "sqlite://localhost/data/w.db/t"
    # Airflow's own normalisation (the providers' handlers, and ours for duckdb/sqlite) keeps them as they are.
    for uri in (
        "postgres://db.example:5432/dwh/default/t",
        "duckdb://localhost/data/w.duckdb/main/t",
        "sqlite://localhost/data/w.db/t",
    ):
        assert Asset(uri=uri).uri == uri
    with pytest.raises(ValueError, match="duckdb://"):
        Asset(uri="duckdb://host/t")


@pytest.fixture
def fastly(sim: FastlySimulator, connect) -> FastlySimulator:
    connect("fastly_default", sim.connection())
    return sim


def events_of(dag_id: str) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent, AssetModel.uri)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetEvent.source_dag_id == dag_id)
        )
        return [SimpleNamespace(uri=uri, extra=e.extra, partition_key=e.partition_key) for e, uri in rows]


def test_a_load_announces_its_tables_with_the_month(fastly: FastlySimulator, warehouse: Warehouse) -> None:
    dag_id = f"assets_{warehouse.dialect}_{secrets.token_hex(4)}"  # events of earlier sessions stay in the db
    run = run_dag(
        dag_id,
        f"""
        from airflow_provider_fastly_billing.assets import warehouse_assets
        from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            InvoiceToSqlOperator(
                task_id="load", warehouse_conn_id="{warehouse.conn_id}", schema={warehouse.schema!r},
                year="2025", month="4",
                outlets=list(warehouse_assets("{warehouse.conn_id}", schema={warehouse.schema!r}).values()),
            )
        """,
    )
    assert run.state == "success"
    invoice = fastly.invoice(fastly.customer_id, 2025, 4)
    events = sorted(events_of(dag_id), key=lambda e: e.uri)
    assert [e.uri.rsplit("/", 1)[1] for e in events] == [f"fastly_{t}" for t in sorted(run.xcom["load"]["rows"])]
    # Partition keys came with Airflow 3.3 (``add_partitions``); on 3.2 the month is in the extra only.
    from airflow.sdk.execution_time.context import OutletEventAccessor

    partitioned = hasattr(OutletEventAccessor, "add_partitions")
    assert {e.partition_key for e in events} == ({"2025-04"} if partitioned else {None})
    extra = events[0].extra
    assert all(e.extra == extra for e in events)
    assert extra["invoice_ids"] == [str(invoice["invoice_id"])]
    assert extra["rows"] == run.xcom["load"]["rows"] and extra["rows"]["line_items"] == len(invoice["line_items"])
    assert Decimal(extra["total"]) == invoice["total"]["cost"] and isinstance(extra["total"], str)
    assert extra["currency"] is None  # v2 invoices name no currency
    assert extra["period"]["start"] == "2025-04-01" and extra["partitions"] == ["2025-04"]
    if warehouse.dialect == "postgres":
        assert events[0].uri.startswith(f"postgres://127.0.0.1:5432/test/{warehouse.schema}/fastly_")


def test_an_outlet_the_load_does_not_write_fails_before_any_request(fastly: FastlySimulator, warehouse: Warehouse):
    run = run_dag(
        f"assets_wrong_{warehouse.dialect}",
        f"""
        from airflow.sdk import Asset
        from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            InvoiceToSqlOperator(
                task_id="load", warehouse_conn_id="{warehouse.conn_id}", schema={warehouse.schema!r},
                year="2025", month="4", outlets=[Asset(uri="s3://bucket/fastly_invoices")],
            )
        """,
    )
    assert run.state == "failed"
    assert fastly.billing_requests() == []
