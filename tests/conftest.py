"""Test setup: an Airflow home inside the repo per pytest worker, migrated once; simulator fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


class Warehouse:
    """A real database behind an Airflow connection, with a schema of its own for the test."""

    def __init__(self, dialect: str, conn_id: str, schema: str | None) -> None:
        self.dialect, self.conn_id, self.schema = dialect, conn_id, schema

    def table(self, name: str, prefix: str = "fastly_") -> str:
        return f"{self.schema + '.' if self.schema else ''}{prefix}{name}"

    def rows(self, sql: str) -> list[tuple]:
        """Run a query; ``{invoices}``-style names are the test's qualified tables."""
        from airflow.sdk import BaseHook

        names = {n: self.table(n) for n in ("invoices", "line_items", "regions", "extras")}
        conn = BaseHook.get_hook(self.conn_id).get_conn()
        try:
            cursor = conn.cursor()
            cursor.execute(sql.format(**names))
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            conn.close()


@pytest.fixture(params=["duckdb", "sqlite", "postgres"])
def warehouse(request, tmp_path: Path, connect) -> Iterator[Warehouse]:
    """Each real warehouse in turn: a DuckDB file, a SQLite file, a fresh schema in the local PostgreSQL."""
    import uuid

    dialect = request.param
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
    yield Warehouse(dialect, conn_id, schema)
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
