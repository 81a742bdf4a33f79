"""
``make demo``: a year of Fastly invoices into a local DuckDB file, through the example DAG, then a report.

Not a DAG (``.airflowignore`` keeps Airflow from parsing it): the runner of the DAG beside it.

Starts the Fastly simulator (unless ``AIRFLOW_CONN_FASTLY_DEFAULT`` points at the real API), runs
``fastly_invoices_monthly`` for each of the last 12 complete months with ``dag.test()``, reads the
warehouse back, prints a month-by-month table by product and writes a PNG chart of it. Then
``fastly_service_costs_monthly`` loads the same months with their usage per Fastly service and the
allocation of every line, charted as monthly cost per service (stacked), read back from the warehouse.
The same months become a FOCUS 1.2 file, checked by the FinOps Foundation's validator when
``.venv-focus`` exists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
OUT = ROOT / "demo"
DATABASE = OUT / "fastly_billing.duckdb"
CHART = OUT / "fastly_billing.png"
SERVICE_CHART = OUT / "fastly_service_costs.png"
FOCUS_FILE = OUT / "fastly_focus.parquet"
FOCUS_VENV = ROOT / ".venv-focus"
HOME = ROOT / ".airflow" / "demo"

os.environ["AIRFLOW_HOME"] = str(HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags_examples")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
os.environ.setdefault("AIRFLOW_CONN_FASTLY_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(DATABASE)}))

REPORT_SQL = """
SELECT strftime(i.period_start, '%Y-%m') AS month, l.plan_name AS product, SUM(l.amount) AS cost
FROM fastly_invoices i JOIN fastly_line_items l ON l.load_key = i.load_key
WHERE NOT i.is_estimate AND i.api_version = 'v2'
GROUP BY 1, 2 ORDER BY 1, 2
"""
SERVICES_SQL = """
SELECT month, COALESCE(service_name, 'unallocated (plans, support, unattributed usage)') AS service,
       SUM(amount) AS cost
FROM fastly_service_costs WHERE NOT is_estimate
GROUP BY 1, 2 ORDER BY 1, 2
"""
TOTALS_SQL = """
SELECT strftime(period_start, '%Y-%m') AS month, cost AS invoice_total FROM fastly_invoices
WHERE NOT is_estimate AND api_version = 'v2'
"""


def last_months(count: int) -> list:
    """Logical dates of the monthly runs that load the last ``count`` complete months."""
    import pendulum

    first = pendulum.now("UTC").start_of("month")
    return [first.subtract(months=n) for n in range(count - 1, -1, -1)]


def run_months(dag_id: str) -> None:
    if not (HOME / "airflow.db").exists():
        HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    path = ROOT / "dags_examples" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for logical_date in last_months(12):
        run = module.dag.test(logical_date=logical_date)
        print(f"  run of {logical_date:%Y-%m-%d} (loads the month before): {run.state}", flush=True)
        if run.state != "success":
            raise SystemExit(f"{dag_id} failed for {logical_date:%Y-%m-%d}")


def report() -> None:
    import duckdb
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with duckdb.connect(str(DATABASE), read_only=True) as db:
        by_product = db.sql(REPORT_SQL).df().pivot(index="month", columns="product", values="cost").fillna(0)
        totals = db.sql(TOTALS_SQL).df().set_index("month")
    table = by_product.join(totals)
    print("\nFastly invoices by month (USD), read back from the warehouse:\n")
    print(table.to_string(float_format=lambda v: f"{v:,.2f}"))
    figure, axes = plt.subplots(figsize=(11, 5.5))
    by_product.astype(float).plot.bar(stacked=True, ax=axes, width=0.8, colormap="tab10")
    axes.plot(range(len(totals)), totals["invoice_total"].astype(float), "k.-", label="invoice total")
    axes.set(title="Fastly bill by month and product", xlabel="billing month", ylabel="USD")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(CHART, dpi=110)
    print(f"\nWarehouse: {DATABASE}\nChart:     {CHART}")


def report_services() -> None:
    """Monthly cost per Fastly service, stacked, from ``fastly_service_costs``."""
    import duckdb
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with duckdb.connect(str(DATABASE), read_only=True) as db:
        costs = db.sql(SERVICES_SQL).df().pivot(index="month", columns="service", values="cost").fillna(0)
    services = [c for c in costs.sum().sort_values(ascending=False).index if not c.startswith("unallocated")]
    costs = costs[services + [c for c in costs.columns if c not in services]]  # unallocated on top
    print("\nCost per Fastly service by month (USD), read back from fastly_service_costs:\n")
    print(costs.assign(total=costs.sum(axis=1)).to_string(float_format=lambda v: f"{v:,.2f}"))
    figure, axes = plt.subplots(figsize=(11, 5.5))
    palette = plt.get_cmap("tab10")
    colors = [palette(n % 10) if c in services else "lightgrey" for n, c in enumerate(costs.columns)]
    costs.astype(float).plot.bar(stacked=True, ax=axes, width=0.8, color=colors)
    axes.set(title="Fastly bill by month and Fastly service (usage split by each service's use)")
    axes.set(xlabel="billing month", ylabel="USD")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    figure.savefig(SERVICE_CHART, dpi=110)
    print(f"\nChart:     {SERVICE_CHART}")


def export_focus() -> None:
    """The same 12 months as one FOCUS 1.2 file, fetched from Fastly and converted."""
    from airflow_provider_fastly_billing.focus import to_focus, write_focus
    from airflow_provider_fastly_billing.frames import invoices_to_frames
    from airflow_provider_fastly_billing.hooks.billing import BillingHook

    hook = BillingHook()
    months = [d.subtract(months=1) for d in last_months(12)]
    frames = invoices_to_frames(hook.get_invoice(m.year, m.month) for m in months)
    df = to_focus(frames)
    write_focus(df, FOCUS_FILE)
    print(f"FOCUS 1.2 file: {FOCUS_FILE} ({len(df)} rows, BilledCost {sum(df['BilledCost'])} USD)")


def validate_focus() -> None:
    """The FinOps Foundation's validator on the FOCUS file, when `make focus-validator` could build it."""
    from airflow_provider_fastly_billing.testing.focus_validator import run_focus_validator

    if not (FOCUS_VENV / "bin" / "focus-validator").exists():
        print("\nfocus-validator: not installed (needs Python 3.12; see `make focus-validator`)")
        return
    result = run_focus_validator(FOCUS_FILE, FOCUS_VENV)
    verdict = "OK" if result.ok else "FAILED"
    print(f"\nfocus-validator 2.2.1 on {FOCUS_FILE.name}: {verdict}, {result.summary()}")
    if not result.ok:
        raise SystemExit("the FOCUS file did not pass the validator")


def main() -> None:
    from airflow_provider_fastly_billing.testing import FastlySimulator

    OUT.mkdir(exist_ok=True)
    real = "AIRFLOW_CONN_FASTLY_DEFAULT" in os.environ
    with nullcontext() if real else FastlySimulator(first_month=(2020, 1)) as sim:
        if sim:
            os.environ["AIRFLOW_CONN_FASTLY_DEFAULT"] = json.dumps(sim.connection())
            print(f"Fastly simulator at {sim.url} (set AIRFLOW_CONN_FASTLY_DEFAULT to use the real API)")
        print("Running fastly_invoices_monthly for the last 12 months:")
        run_months("fastly_invoices_monthly")
        print("Running fastly_service_costs_monthly for the same months (usage per service, allocation):")
        run_months("fastly_service_costs_monthly")
        export_focus()
    report()
    report_services()
    validate_focus()


if __name__ == "__main__":
    main()
