"""
The deployment test (``make test-deployment``): the provider as a user deploys it, not as ``dag.test()`` runs it.

The built wheel is installed in a venv of its own beside Airflow; api-server, scheduler (LocalExecutor),
dag-processor and triggerer run as separate processes on a metadata database of their own in the local
PostgreSQL, with the simulator as the Fastly API; every connection is an ``AIRFLOW_CONN_*`` variable that all
processes share. Runs are started through the REST API and the README's CLI line:

- a 12-month backfill of ``fastly_invoices_monthly`` into DuckDB (``POST /api/v2/backfills``);
- the same into PostgreSQL (a copy of the DAG, ``fastly_invoices_monthly_pg``), with the README's line;
- ``fastly_invoices_monthly`` triggered without a logical date (``POST .../dagRuns``, ``"logical_date": null``),
  and the PostgreSQL copy with ``airflow dags trigger`` (no logical date either);
- ``fastly_mtd_estimate_daily``, whose sensor must be seen ``deferred`` while the simulator answers 202.

Then every task instance must have succeeded on its first try, the warehouses must hold exactly the
simulator's invoices, and the token must be in no log. To add a DAG (say an asset consumer): put its file in
:func:`write_dags`, start its run in :func:`started` if the scheduler does not, and assert on it in a test;
:func:`test_every_task_succeeded_on_its_first_try` covers every run in the deployment.

Every wait draws on one budget (``DEPLOYMENT_BUDGET`` seconds, default 600); the processes are stopped by
their ids (terminate, then kill) and the database dropped, also when a test fails. Logs stay in
``.deploy/run/`` for a look afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import psycopg2
import pytest

import airflow_provider_fastly_billing
from airflow_provider_fastly_billing.operators.macros import previous_month
from airflow_provider_fastly_billing.testing import invoices

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".deploy" / "run"
BIN = Path(sys.executable).parent
DEADLINE = time.monotonic() + float(os.environ.get("DEPLOYMENT_BUDGET", "600"))
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MTD_PENDING = 8  # 202 answers before the estimate is ready: two sensors' pokes, then 15-20 s in the triggerer
BACKFILL_LINE = re.compile(r"`airflow backfill create --dag-id fastly_invoices_monthly (--from-date [^`]+)`")
MONTHLY, MONTHLY_PG, DAILY = "fastly_invoices_monthly", "fastly_invoices_monthly_pg", "fastly_mtd_estimate_daily"
REPORT = "fastly_invoices_report"  # scheduled on the partitioned asset events of MONTHLY's loads


SUMMARY: dict[str, Any] = {}  # what the run saw, written to .deploy/run/summary.json


def remaining() -> float:
    left = DEADLINE - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deployment test ran out of its time budget (DEPLOYMENT_BUDGET)")
    return left


def wait_for(what: str, check: Any, interval: float = 1.0) -> Any:
    """Call ``check`` until it returns something truthy, within the budget."""
    while True:
        try:
            remaining()
        except TimeoutError as error:
            raise TimeoutError(f"gave up waiting for {what}") from error
        if result := check():
            return result
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Deployment:
    """The running deployment: its home, environment, REST client, simulator and processes."""

    home: Path
    database: str
    api: httpx.Client
    token: str = field(default_factory=lambda: f"deploy-{secrets.token_hex(16)}")
    customer: str = ""
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: list[Any] = field(default_factory=list)

    @property
    def process_logs(self) -> Path:
        return self.home.parent / "process-logs"

    def start(self, name: str, *args: str, stdout: Any = None) -> subprocess.Popen:
        """Start a process in a session of its own (so its children can be stopped with it), logging to a file."""
        self.process_logs.mkdir(parents=True, exist_ok=True)
        log = open(self.process_logs / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        self.logs.append(log)
        process = subprocess.Popen(
            args, env=self.env, cwd=self.home, stdout=stdout or log, stderr=log, start_new_session=True
        )
        self.processes[name] = process
        return process

    def airflow(self, *args: str) -> str:
        """Run an ``airflow`` CLI command to completion; its output goes to a process log too."""
        done = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, cwd=self.home, capture_output=True, timeout=remaining()
        )
        with open(self.process_logs / "cli.log", "ab") as log:
            log.write(b"$ airflow " + " ".join(args).encode() + b"\n" + done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return done.stdout.decode()

    def stop(self) -> None:
        """Terminate every process by its id, then kill what is left of its session."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        for log in self.logs:
            log.close()

    def alive(self) -> bool:
        """Fail at once, naming it, if a process has exited."""
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}: see {self.process_logs}"
        return True

    def get(self, path: str, **params: Any) -> Any:
        answer = self.api.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]

    def task_instances(self, dag_id: str = "~") -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", limit=1000)["task_instances"]


def write_dags(folder: Path) -> None:
    """
    The DAGs folder: the example DAGs as users copy them, and a copy of the monthly one loading PostgreSQL.

    ``catchup=False`` in the monthly copies: unpausing must not add 23 catch-up runs beside the backfills.
    """
    examples = ROOT / "dags_examples"
    folder.mkdir(parents=True)
    monthly = (examples / f"{MONTHLY}.py").read_text()
    assert monthly.count("catchup=True") == 1 and monthly.count('"fastly_warehouse"') == 1
    monthly = monthly.replace("catchup=True", "catchup=False")
    (folder / f"{MONTHLY}.py").write_text(monthly)
    pg = monthly.replace(f'dag_id="{MONTHLY}"', f'dag_id="{MONTHLY_PG}"').replace(
        '"fastly_warehouse"', '"fastly_warehouse_pg"'
    )
    (folder / f"{MONTHLY_PG}.py").write_text(pg)
    shutil.copy(examples / f"{DAILY}.py", folder)
    shutil.copy(examples / f"{REPORT}.py", folder)


def environment(home: Path, database: str, api_port: int, connections: dict[str, dict], customer: str) -> dict:
    url = f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FASTLY"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW_VAR_FASTLY_CUSTOMER_ID": customer,
            "AIRFLOW_VAR_FASTLY_FOCUS_DESTINATION": str(home / "focus"),
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        }
    )
    env.update({f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in connections.items()})
    return env


@contextlib.contextmanager
def admin(database: str | None = None) -> Iterator[Any]:
    """A cursor in autocommit mode on the local PostgreSQL (``CREATE DATABASE`` refuses transactions)."""
    with contextlib.closing(psycopg2.connect(dbname=database or "test", connect_timeout=5, **PG)) as conn:
        conn.autocommit = True
        yield conn.cursor()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    assert Path(airflow_provider_fastly_billing.__file__).is_relative_to(BIN.parent), "not the installed wheel"
    shutil.rmtree(RUN, ignore_errors=True)
    home = RUN / "home"
    database = f"airflow_deploy_{secrets.token_hex(6)}"
    with admin() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    api_port = free_port()
    dep = Deployment(home, database, httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30))
    try:
        with admin(database) as cursor:
            cursor.execute("CREATE SCHEMA warehouse")
        write_dags(home / "dags")
        simulator = dep.start(
            "simulator",
            str(BIN / "python"),
            "-m",
            "airflow_provider_fastly_billing.testing",
            "--port=0",
            f"--token={dep.token}",
            f"--mtd-pending={MTD_PENDING}",
            stdout=subprocess.PIPE,
        )
        assert select.select([simulator.stdout], [], [], 30)[0], "the simulator did not start"
        started = json.loads(simulator.stdout.readline())  # the first line holds the token: read, never logged
        dep.customer = started["customer_ids"][0]
        pg = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": database}
        connections = {
            "fastly_default": started["connection"],
            "fastly_warehouse": {"conn_type": "duckdb", "host": str(home / "warehouse.duckdb")},
            "fastly_warehouse_pg": {**pg, "extra": {"options": "-c search_path=warehouse"}},
        }
        dep.env = environment(home, database, api_port, connections, dep.customer)
        dep.airflow("db", "migrate")
        dep.start("api-server", str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(api_port))
        for name in ("scheduler", "dag-processor", "triggerer"):
            dep.start(name, str(BIN / "airflow"), name)
        wait_for("the api-server", lambda: dep.alive() and _answers(dep.api, "/api/v2/monitor/health"))
        token = dep.api.get("/auth/token").raise_for_status().json()["access_token"]
        dep.api.headers["Authorization"] = f"Bearer {token}"
        yield dep
    finally:
        dep.stop()
        dep.api.close()
        (RUN / "summary.json").write_text(json.dumps(SUMMARY, indent=1))
        with admin() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _answers(api: httpx.Client, path: str) -> bool:
    try:
        return api.get(path).status_code == 200
    except httpx.TransportError:
        return False


class StateWatcher(threading.Thread):
    """Records, every half second in the background, each state a task's instances pass through, per run."""

    def __init__(self, dep: Deployment, dag_id: str, task_id: str) -> None:
        super().__init__(daemon=True)
        self.dep, self.dag_id, self.task_id = dep, dag_id, task_id
        self.seen: dict[str, list[str]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5) and time.monotonic() < DEADLINE:
            with contextlib.suppress(httpx.HTTPError):
                for ti in self.dep.task_instances(self.dag_id):
                    states = self.seen.setdefault(ti["dag_run_id"], [])
                    if ti["task_id"] == self.task_id and (not states or states[-1] != ti["state"]):
                        states.append(ti["state"])


@pytest.fixture(scope="module")
def started(deployment: Deployment) -> dict[str, Any]:
    """Start every run: the daily DAG first (its sensor defers for a short while), the backfills, the triggers."""
    dep = deployment
    for dag_id in (DAILY, REPORT, MONTHLY, MONTHLY_PG):
        wait_for(f"{dag_id} to be parsed", lambda d=dag_id: dep.api.get(f"/api/v2/dags/{d}").status_code == 200)
        dep.api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        if dag_id == DAILY:
            sensor = StateWatcher(dep, DAILY, "wait_for_estimate")
            sensor.start()
    daily = dep.api.post(f"/api/v2/dags/{DAILY}/dagRuns", json={"logical_date": None}).raise_for_status().json()
    backfill = dep.api.post(
        "/api/v2/backfills",
        json={"dag_id": MONTHLY, "from_date": "2025-02-01T00:00:00Z", "to_date": "2026-01-01T00:00:00Z"},
    )
    assert backfill.status_code == 200, backfill.text
    readme_line = BACKFILL_LINE.search((ROOT / "README.md").read_text())
    assert readme_line, "the README has no backfill line for fastly_invoices_monthly"
    dep.airflow("backfill", "create", "--dag-id", MONTHLY_PG, *readme_line.group(1).split())
    dep.airflow("dags", "trigger", MONTHLY_PG)
    manual = dep.api.post(f"/api/v2/dags/{MONTHLY}/dagRuns", json={"logical_date": None}).raise_for_status().json()
    assert manual["logical_date"] is None
    return {"daily": daily["dag_run_id"], "sensor": sensor}


def finished(dep: Deployment, dag_id: str, count: int) -> list[dict[str, Any]] | None:
    """The DAG's runs once ``count`` of them exist and none is still queued or running."""
    dep.alive()
    runs = dep.runs(dag_id)
    if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
        return runs
    return None


def test_the_estimate_sensor_is_seen_deferred_then_succeeds(deployment: Deployment, started: dict) -> None:
    # Unpausing adds today's scheduled run beside the triggered one; both sensors wait on the same estimate.
    runs = wait_for(f"{DAILY} to finish", lambda: finished(deployment, DAILY, 2))
    watcher = started["sensor"]
    watcher.done.set()
    watcher.join(timeout=10)
    SUMMARY["sensor states seen"] = watcher.seen
    assert {r["run_type"]: r["state"] for r in runs} == {"manual": "success", "scheduled": "success"}
    assert started["daily"] in watcher.seen
    assert any("deferred" in states for states in watcher.seen.values()), watcher.seen
    assert [states[-1] for states in watcher.seen.values()] == ["success", "success"], watcher.seen


def expected_months(runs: list[dict[str, Any]]) -> set[tuple[int, int]]:
    """The month each run loads, as the example DAG derives it: the month before its logical date or run_after."""
    months = set()
    for run in runs:
        when = datetime.fromisoformat(run["logical_date"] or run["run_after"])
        month = previous_month(SimpleNamespace(logical_date=when, run_after=when))
        months.add((month.year, month.month))
    return months


def invoice_rows(cursor: Any) -> dict[tuple[int, int], tuple[Decimal, int, Decimal]]:
    """Per loaded month: the invoice's cost, its line items and their sum, read back from the warehouse."""
    cursor.execute("SELECT load_key, period_start, cost FROM fastly_invoices WHERE NOT is_estimate")
    invoices_by_key = {key: (start, cost) for key, start, cost in cursor.fetchall()}
    cursor.execute("SELECT load_key, COUNT(*), SUM(amount) FROM fastly_line_items GROUP BY load_key")
    items = {key: (count, total) for key, count, total in cursor.fetchall()}
    rows = {}
    for key, (start, cost) in invoices_by_key.items():
        month = (int(str(start)[:4]), int(str(start)[5:7]))
        assert month not in rows, f"{month} loaded twice"
        rows[month] = (Decimal(str(cost)), items[key][0], Decimal(str(items[key][1])))
    return rows


def simulator_months(customer: str, months: set[tuple[int, int]]) -> dict[tuple[int, int], tuple]:
    """The same, computed in-process from the simulator's invoice model."""
    expected = {}
    for year, month in months:
        invoice = invoices.v2_invoice(invoices.charges_for(customer, 0, year, month))
        amounts = [Decimal(str(item["amount"])) for item in invoice["line_items"]]
        expected[(year, month)] = (Decimal(str(invoice["total"]["cost"])), len(amounts), sum(amounts))
    return expected


def check_monthly(dep: Deployment, dag_id: str, kinds: dict[str, int], cursor_of: Any) -> None:
    runs = wait_for(f"{dag_id} to finish", lambda: finished(dep, dag_id, sum(kinds.values())), interval=2)
    assert [r["state"] for r in runs] == ["success"] * len(runs), [(r["dag_run_id"], r["state"]) for r in runs]
    assert {k: sum(r["run_type"] == k for r in runs) for k in kinds} == kinds
    months = expected_months(runs)
    assert {(2025, m) for m in range(1, 13)} <= months
    with cursor_of() as cursor:
        loaded = invoice_rows(cursor)
    SUMMARY[dag_id] = {"runs": kinds, "months loaded": len(loaded), "line items": sum(r[1] for r in loaded.values())}
    assert loaded == simulator_months(dep.customer, months)


def test_duckdb_backfill_and_a_run_without_logical_date(deployment: Deployment, started: dict) -> None:
    import duckdb

    @contextlib.contextmanager
    def cursor_of():
        with duckdb.connect(str(deployment.home / "warehouse.duckdb"), read_only=True) as db:
            yield db.cursor()

    # Unpausing adds the latest scheduled run (2026-11-01 on 2026-11-29) beside the backfill and the trigger.
    check_monthly(deployment, MONTHLY, {"backfill": 12, "manual": 1, "scheduled": 1}, cursor_of)


def test_postgres_backfill_with_the_readme_line_and_a_cli_trigger(deployment: Deployment, started: dict) -> None:
    @contextlib.contextmanager
    def cursor_of():
        with admin(deployment.database) as cursor:
            cursor.execute("SET search_path = warehouse")
            yield cursor

    check_monthly(deployment, MONTHLY_PG, {"backfill": 12, "manual": 1, "scheduled": 1}, cursor_of)


def test_the_estimate_is_the_days_snapshot(deployment: Deployment, started: dict) -> None:
    import duckdb

    wait_for(f"{DAILY} to finish", lambda: finished(deployment, DAILY, 2))
    wait_for(f"{MONTHLY} to finish", lambda: finished(deployment, MONTHLY, 14), interval=2)  # the file's one writer
    now = datetime.now(timezone.utc)
    estimate = invoices.v2_estimate(invoices.charges_for(deployment.customer, 0, now.year, now.month, scale=0.5))
    with duckdb.connect(str(deployment.home / "warehouse.duckdb"), read_only=True) as db:
        rows = db.sql("SELECT customer_id, cost FROM fastly_invoices WHERE is_estimate").fetchall()
    # The scheduled and the triggered run both snapshot today: the second replaces the first.
    assert rows == [(deployment.customer, Decimal(str(estimate["total"]["cost"])))]


def test_every_task_succeeded_on_its_first_try(deployment: Deployment, started: dict) -> None:
    dags = {p.stem for p in (deployment.home / "dags").glob("*.py")}
    for dag_id in dags:
        wait_for(f"{dag_id} to finish", lambda d=dag_id: finished(deployment, d, 1), interval=2)
    instances = deployment.task_instances()
    expected = {d: len(deployment.runs(d)) * len(deployment.get(f"/api/v2/dags/{d}/tasks")["tasks"]) for d in dags}
    assert {d: sum(ti["dag_id"] == d for ti in instances) for d in dags} == expected
    SUMMARY["task instances"] = expected
    outcomes = [(ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["state"], ti["try_number"]) for ti in instances]
    assert [o for o in outcomes if o[3:] != ("success", 1)] == []


def test_each_loaded_month_is_exported_by_the_asset_consumer(deployment: Deployment, started: dict) -> None:
    dep = deployment
    loads = wait_for(f"{MONTHLY} to finish", lambda: finished(dep, MONTHLY, 14), interval=2)
    events = dep.get("/api/v2/assets/events", source_dag_id=MONTHLY, limit=1000)["asset_events"]
    invoices_events = [e for e in events if e["uri"].endswith("/fastly_invoices")]
    assert len(invoices_events) == len(loads) == 14
    months = {e["partition_key"] for e in invoices_events}
    assert {f"2025-{m:02}" for m in range(1, 13)} <= months and len(months) == 13
    for event in invoices_events:
        year, month = map(int, event["partition_key"].split("-"))
        invoice = invoices.v2_invoice(invoices.charges_for(dep.customer, 0, year, month))
        assert event["extra"]["invoice_ids"] == [str(invoice["invoice_id"])]
        assert Decimal(event["extra"]["total"]) == Decimal(str(invoice["total"]["cost"]))
        assert event["extra"]["period"]["start"] == f"{event['partition_key']}-01"
    runs = wait_for(f"{REPORT} to finish", lambda: finished(dep, REPORT, len(months)), interval=2)
    assert {r["state"] for r in runs} == {"success"}
    assert {r["partition_key"] for r in runs} == months
    exported = {p.name for p in (dep.home / "focus").glob("*.csv")}
    assert exported == {f"fastly-{m}.csv" for m in months}
    SUMMARY["asset events"] = {"example": invoices_events[0], "report runs": len(runs)}


def test_the_wheel_is_a_registered_typed_provider(deployment: Deployment) -> None:
    listed = deployment.airflow("providers", "list", "--output", "json")
    assert "airflow-provider-fastly-billing" in {p["package_name"] for p in json.loads(listed)}
    package = Path(airflow_provider_fastly_billing.__file__).parent
    assert (package / "py.typed").is_file()
    copied = deployment.home / "copied-examples"
    subprocess.run([str(BIN / "python"), "-m", "airflow_provider_fastly_billing.examples", str(copied)], check=True)
    assert {p.name for p in copied.glob("*.py")} >= {f"{MONTHLY}.py", f"{REPORT}.py", f"{DAILY}.py"}


def test_the_token_is_in_no_log(deployment: Deployment, started: dict) -> None:
    logs = [p for p in (deployment.home / "logs").rglob("*") if p.is_file()]
    logs += list(deployment.process_logs.glob("*.log"))
    assert len(logs) > 27  # a log per task instance at least, and the processes'
    leaked = [str(p) for p in logs if deployment.token.encode() in p.read_bytes()]
    assert leaked == []
