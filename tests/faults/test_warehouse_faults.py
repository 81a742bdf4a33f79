"""Faults a warehouse throws mid-load: rollback, earlier data intact, and a re-run gives a clean run's rows."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from airflow_provider_fastly_billing.frames import InvoiceFrames, invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.warehouse import load_frames
from tests.conftest import EVERY_WAREHOUSE
from tests.dagrun import run_dag

if TYPE_CHECKING:
    from tests.conftest import Warehouse

FETCHED = datetime(2026, 11, 2, tzinfo=timezone.utc)
SIM = FastlySimulator(account_customers=4)
TABLES = ("invoices", "line_items", "regions", "extras")


def frames(*months: int, boom: int | None = None) -> InvoiceFrames:
    """Invoices of every customer for ``months``; the ``boom`` month carries a poisoned line item last."""
    parts = []
    for month in months:
        for customer in SIM.customers:
            doc = parse_json(to_json(SIM.invoice(customer, 2025, month)))
            if month == boom and customer == SIM.customers[-1]:
                doc["line_items"][-1]["description"] = "BOOM"
            parts.append(invoice_to_frames(doc, FETCHED))
    return InvoiceFrames.concat(parts)


def snapshot(wh: Warehouse) -> dict[str, list[tuple]]:
    return {t: sorted(wh.rows(f"SELECT * FROM {{{t}}}"), key=repr) for t in TABLES}


def poison(wh: Warehouse, how: str) -> None:
    """Make inserting a line item described 'BOOM' fail inside the database."""
    statements = {
        ("sqlite", "constraint"): "CREATE TRIGGER boom BEFORE INSERT ON fastly_line_items "
        "WHEN NEW.description = 'BOOM' BEGIN SELECT RAISE(ABORT, 'constraint violated: BOOM'); END",
        ("postgres", "constraint"): "ALTER TABLE {line_items} ADD CONSTRAINT no_boom CHECK (description <> 'BOOM')",
        ("postgres", "drop"): "CREATE FUNCTION {schema}.boom() RETURNS trigger AS $$ BEGIN "
        "IF NEW.description = 'BOOM' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; "
        "END $$ LANGUAGE plpgsql; CREATE TRIGGER boom BEFORE INSERT ON {line_items} "
        "FOR EACH ROW EXECUTE FUNCTION {schema}.boom()",
    }
    statements[("mariadb", "constraint")] = statements[("mariadb_connector", "constraint")] = (
        "CREATE TRIGGER boom BEFORE INSERT ON {line_items} FOR EACH ROW BEGIN IF NEW.description = 'BOOM' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'constraint violated: BOOM'; END IF; END"
    )
    sql = statements[(wh.dialect, how)].replace("{schema}", wh.schema or "")
    from airflow.sdk import BaseHook

    conn = BaseHook.get_hook(wh.conn_id).get_conn()
    conn.cursor().execute(sql.format(**{t: wh.table(t) for t in TABLES}))
    conn.commit()
    conn.close()


def unpoison(wh: Warehouse, how: str) -> None:
    sql = {
        ("sqlite", "constraint"): "DROP TRIGGER boom",
        ("postgres", "constraint"): "ALTER TABLE {line_items} DROP CONSTRAINT no_boom",
        ("postgres", "drop"): "DROP TRIGGER boom ON {line_items}",
        ("mariadb", "constraint"): "DROP TRIGGER boom",
        ("mariadb_connector", "constraint"): "DROP TRIGGER boom",
    }[(wh.dialect, how)]
    from airflow.sdk import BaseHook

    conn = BaseHook.get_hook(wh.conn_id).get_conn()
    conn.cursor().execute(sql.format(**{t: wh.table(t) for t in TABLES}))
    conn.commit()
    conn.close()


# DuckDB has neither triggers nor added CHECK constraints: its mid-load failure is the duplicate-key test below.
# MariaDB commits DDL before the data transaction: the failure comes after it, in the rows.
@pytest.mark.parametrize(
    ("warehouse", "how"),
    [
        ("sqlite", "constraint"),
        ("postgres", "constraint"),
        ("postgres", "drop"),
        ("mariadb", "constraint"),
        ("mariadb_connector", "constraint"),
    ],
    indirect=["warehouse"],
)
def test_failure_mid_load_rolls_back_and_a_rerun_matches_a_clean_run(
    warehouse: Warehouse, how: str, connect, tmp_path
) -> None:
    first, second = frames(1, 2), frames(2, 3, boom=3)
    load_frames(first, warehouse.conn_id, schema=warehouse.schema)
    before = snapshot(warehouse)
    poison(warehouse, how)
    expected = {"constraint": r"(?i)constraint|BOOM", "drop": r"(?i)terminat|closed|connection"}[how]
    with pytest.raises(Exception, match=expected):
        load_frames(second, warehouse.conn_id, schema=warehouse.schema)
    assert snapshot(warehouse) == before
    unpoison(warehouse, how)
    load_frames(second, warehouse.conn_id, schema=warehouse.schema)
    rerun = snapshot(warehouse)
    assert len(rerun["invoices"]) == 3 * len(SIM.customers)
    assert rerun == clean_run(warehouse, connect, tmp_path, first, second)


def clean_run(wh: Warehouse, connect, tmp_path, *loads: InvoiceFrames) -> dict[str, list[tuple]]:
    """The rows the same loads give in a fresh database (a new SQLite file, a new PostgreSQL schema)."""
    if wh.dialect == "sqlite":
        clean = type(wh)(
            "sqlite", connect("wh_clean", {"conn_type": "sqlite", "host": str(tmp_path / "c.sqlite")}), None
        )
    else:
        clean = wh.sibling("clean")
    for frames_ in loads:
        load_frames(frames_, clean.conn_id, schema=clean.schema)
    return snapshot(clean)


@pytest.mark.parametrize("warehouse", EVERY_WAREHOUSE, indirect=True)
def test_duplicate_key_mid_load_keeps_earlier_data(warehouse: Warehouse) -> None:
    load_frames(frames(1), warehouse.conn_id, schema=warehouse.schema)
    before = snapshot(warehouse)
    # Stacked by hand: concat would load the repeated invoices once, and the database's own key must hold too.
    parts = [frames(2), frames(1), frames(1)]
    twice = InvoiceFrames(**{t: pd.concat([p.tables[t] for p in parts], ignore_index=True) for t in TABLES})
    with pytest.raises(Exception, match=r"(?i)primary key|unique|duplicate"):
        load_frames(twice, warehouse.conn_id, schema=warehouse.schema)
    assert snapshot(warehouse) == before


def test_api_fault_in_a_fan_out_loads_nothing(sim: FastlySimulator, connect, warehouse: Warehouse, capfd) -> None:
    connect("fastly_default", {**sim.connection(), "extra": {"max_wait": 0.01, "max_retries": 1}})
    pairs = [[c, sim.invoice_ids(c)[1]] for c in sim.customers]
    body = f"""
    from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
    with DAG(DAG_ID, schedule=None, start_date=START) as dag:
        InvoiceToSqlOperator(
            task_id="load", invoices={pairs!r}, warehouse_conn_id="{warehouse.conn_id}", schema={warehouse.schema!r}
        )
    """
    sim.inject("status", times=50, status=500, path=f"/invoices/{pairs[-1][1]}")
    failed = run_dag(f"fault_fan_out_{warehouse.dialect}", body)
    assert failed.state == "failed"
    assert f"Fastly API error 500 on GET /billing/v2/account_customers/{pairs[-1][0]}" in capfd.readouterr().out
    sim.faults.clear()
    assert run_dag(f"fault_fan_out_{warehouse.dialect}", body).state == "success"
    assert warehouse.rows("SELECT COUNT(*) FROM {invoices}") == [(len(pairs),)]
