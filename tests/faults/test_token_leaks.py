"""A distinctive token through whole example DAG runs, errors included: it appears nowhere it could leak."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pendulum
import pytest

from airflow_provider_fastly_billing.exceptions import FastlyApiError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.triggers.billing import InvoiceMtdTrigger
from tests.dagrun import run_dag_file

CANARY = "CANARY-7f3e9a1c-fastly-token-SHOULD-NEVER-APPEAR"
EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"


def run_example(name: str, logical_date=None):
    target = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{name}.py"
    shutil.copy(EXAMPLES / f"{name}.py", target)
    return run_dag_file(target, logical_date)


def test_the_token_leaks_nowhere(connect, tmp_path: Path, capfd, monkeypatch) -> None:
    with FastlySimulator(token=CANARY, mtd_pending=1) as sim:
        connect("fastly_default", sim.connection())
        connect("fastly_warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
        monkeypatch.setenv("AIRFLOW_VAR_FASTLY_CUSTOMER_ID", sim.customer_id)
        monkeypatch.setenv("AIRFLOW_VAR_FASTLY_RESELLER_INVOICES", json.dumps([[sim.customers[1], 1]]))  # a 404
        runs = [
            run_example("fastly_invoices_monthly", pendulum.datetime(2025, 6, 1, tz="UTC")),
            run_example("fastly_invoices_v3", pendulum.datetime(2025, 6, 1, tz="UTC")),
            run_example("fastly_mtd_estimate_daily"),
            run_example("fastly_reseller_invoices"),
        ]
        sim.inject("status", times=20, status=503)
        errors = []
        for call in (lambda h: h.get_invoice(2025, 1), lambda h: h.get_invoice_mtd_v3()):
            with pytest.raises(FastlyApiError) as caught:
                call(BillingHook(max_retries=1, max_wait=0.01))
            errors.append(caught.value)
        trigger_kwargs = InvoiceMtdTrigger(sim.customer_id, end_time=0).serialize()
        assert all(r.headers["Fastly-Key"] == CANARY for r in sim.requests)
    assert [r.state for r in runs] == ["success", "success", "success", "failed"]
    captured = capfd.readouterr()
    assert "404" in captured.out  # the failed run logged its error ...
    assert CANARY not in captured.out + captured.err  # ... and no line of any run holds the token
    for run in runs:
        assert CANARY not in json.dumps([run.xcom, run.rendered], default=str)
    assert all(CANARY not in f"{e} {e!r} {e.args}" for e in errors)
    assert CANARY not in json.dumps(trigger_kwargs)
    home = Path(os.environ["AIRFLOW_HOME"])
    assert [p for p in home.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()] == []


def test_a_token_echoed_in_a_cursor_and_an_error_body_is_masked_in_errors_and_logs(connect, capfd) -> None:
    from tests.faults.hostile import Answer, HostileServer

    with HostileServer() as api:
        connect("fastly_default", api.connection(CANARY, max_retries=1, max_wait=0.01))
        page = {"data": [{"invoice_id": "1"}], "meta": {"next_cursor": CANARY, "limit": 200, "total": 400}}
        echo = {"msg": f"busy, key {CANARY}", "detail": CANARY}
        api.script(Answer(200, json.dumps(page).encode()), Answer(503, json.dumps(echo).encode()))
        with pytest.raises(FastlyApiError) as caught:
            list(BillingHook().list_invoices())
        assert [s.query.get("cursor") for s in api.seen] == [None, CANARY, CANARY]
    assert str(caught.value) == (
        "Fastly API error 503 on GET /billing/v3/invoices?limit=200&cursor=***: busy, key *** (***)"
    )
    logged = capfd.readouterr()
    assert "retry 1/1" in logged.out and "cursor=***" in logged.out
    assert CANARY not in logged.out + logged.err
