"""Test setup: an Airflow home inside the repo per pytest worker, migrated once; simulator fixtures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

ROOT = Path(__file__).resolve().parent.parent
# One Airflow home per Airflow version (CI also runs the oldest admitted one) and per pytest worker.
_HOME = ROOT / ".airflow" / f"test-{version('apache-airflow')}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ.pop("FASTLY_API_TOKEN", None)

if not (_HOME / "airflow.db").exists():
    (_HOME / "dags").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_fastly_billing.testing import FastlySimulator


@pytest.fixture
def sim(fastly_simulator: FastlySimulator) -> FastlySimulator:
    """A running simulator (the provider's own pytest fixture)."""
    return fastly_simulator


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch):
    """Set an Airflow connection from a dict, through ``AIRFLOW_CONN_<ID>``."""

    def set_connection(conn_id: str, conn: dict) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return set_connection


def postgres_available() -> bool:
    """Whether the local PostgreSQL answers; under CI it must."""
    import psycopg2

    try:
        psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=3).close()
    except psycopg2.OperationalError:
        if os.environ.get("CI") == "true":
            raise
        return False
    return True


def _unavailable(reason: str) -> None:
    """Skip on a user's machine; under CI a missing real part is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: MariaDB tests must run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """
    A MariaDB server of this test session: Debian's ``mariadbd`` with a temporary data directory on a free
    loopback port (no system service), its time zone at UTC+05:00 on purpose. Connection fields for root.
    """
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    install = shutil.which("mariadb-install-db")
    if not server or not install:
        _unavailable("no mariadbd / mariadb-install-db (Debian: apt-get install mariadb-server)")
    base = tmp_path_factory.mktemp("mariadb")
    user = ["--user=root"] if os.geteuid() == 0 else []
    setup = subprocess.run(
        [install, "--no-defaults", f"--datadir={base / 'data'}", *user, "--auth-root-authentication-method=normal",
         "--skip-test-db"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if setup.returncode:
        _unavailable(f"mariadb-install-db failed: {setup.stderr[-500:]}")
    port = _free_port()
    log = (base / "server.log").open("w")
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={base / 'data'}", *user, "--bind-address=127.0.0.1", f"--port={port}",
         f"--socket={base / 'sock'}", f"--pid-file={base / 'pid'}", "--default-time-zone=+05:00", "--skip-log-bin",
         "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    fields = {"host": "127.0.0.1", "port": port, "login": "root"}
    try:
        _wait_for_mariadb(process, fields, base / "server.log")
        yield fields
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_for_mariadb(process: subprocess.Popen, fields: dict, log: Path) -> None:
    import MySQLdb

    deadline = time.monotonic() + 60
    while True:
        try:
            MySQLdb.connect(host=fields["host"], port=fields["port"], user=fields["login"], connect_timeout=2).close()
            return
        except MySQLdb.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                _unavailable(f"mariadbd did not start: {log.read_text()[-800:]}")
            time.sleep(0.1)


class Warehouse:
    """A real database behind an Airflow connection, with a schema of its own for the test."""

    def __init__(self, dialect: str, conn_id: str, schema: str | None) -> None:
        self.dialect, self.conn_id, self.schema = dialect, conn_id, schema
        self.siblings: list[str] = []

    def sibling(self, suffix: str) -> Warehouse:
        """The same database with another (not yet existing) schema, dropped after the test."""
        if not self.schema or self.dialect in ("duckdb", "sqlite"):
            return type(self)(self.dialect, self.conn_id, f"{self.schema}_{suffix}" if self.schema else None)
        self.siblings.append(f"{self.schema}_{suffix}")
        return type(self)(self.dialect, self.conn_id, self.siblings[-1])

    def table(self, name: str, prefix: str = "fastly_") -> str:
        return f"{self.schema + '.' if self.schema else ''}{prefix}{name}"

    def rows(self, sql: str) -> list[tuple]:
        """Run a query; ``{invoices}``-style names are the test's qualified tables."""
        from airflow.sdk import BaseHook

        from airflow_provider_fastly_billing.warehouse import TABLES

        names = {n: self.table(n) for n in TABLES}
        conn = BaseHook.get_hook(self.conn_id).get_conn()
        try:
            cursor = conn.cursor()
            cursor.execute(sql.format(**names))
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            conn.close()


WAREHOUSES = ["duckdb", "sqlite", "postgres"]
EVERY_WAREHOUSE = [*WAREHOUSES, "mariadb", "mariadb_connector"]
"""With MariaDB through both drivers of the mysql provider: for tests that apply to it, by
``@pytest.mark.parametrize("warehouse", EVERY_WAREHOUSE, indirect=True)``."""


@pytest.fixture(params=WAREHOUSES)
def warehouse(request, tmp_path: Path, connect) -> Iterator[Warehouse]:
    """Each real warehouse in turn: a DuckDB file, a SQLite file, a fresh schema in the local PostgreSQL,
    and where a test asks for them a fresh database in the session's MariaDB (mysqlclient, mysql-connector)."""
    import uuid

    dialect = request.param
    if dialect.startswith("mariadb"):
        yield from _mariadb_warehouse(request.getfixturevalue("mariadb"), dialect, connect)
        return
    if dialect == "duckdb":
        yield Warehouse(
            dialect, connect("wh_duckdb", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")}), "billing"
        )
        return
    if dialect == "sqlite":
        yield Warehouse(
            dialect, connect("wh_sqlite", {"conn_type": "sqlite", "host": str(tmp_path / "w.sqlite")}), None
        )
        return
    if not postgres_available():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    import psycopg2

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    # The schema is also the connection's default (search_path), for DAGs that name no schema.
    pg = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    conn_id = connect("wh_postgres", {**pg, "extra": {"options": f"-c search_path={schema}"}})
    wh = Warehouse(dialect, conn_id, schema)
    yield wh
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as conn, conn.cursor() as cursor:
        for name in (schema, *wh.siblings):
            cursor.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _mariadb_warehouse(server: dict, dialect: str, connect) -> Iterator[Warehouse]:
    """A fresh database (server default charset, not utf8mb4) that is also the connection's default."""
    import uuid

    import MySQLdb

    database = f"t_{uuid.uuid4().hex[:12]}"
    admin = {"host": server["host"], "port": server["port"], "user": server["login"]}
    with MySQLdb.connect(**admin) as conn:
        conn.cursor().execute(f"CREATE DATABASE {database}")
    extra = {"client": "mysql-connector-python"} if dialect == "mariadb_connector" else {}
    conn_id = connect(f"wh_{dialect}", {"conn_type": "mysql", **server, "schema": database, "extra": extra})
    wh = Warehouse(dialect, conn_id, database)
    yield wh
    with MySQLdb.connect(**admin) as conn:
        for name in (database, *wh.siblings):
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
