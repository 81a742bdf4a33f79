"""FOCUS rows of real-shaped and simulator invoices, the files written, and FocusExportOperator in real DAG runs."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pendulum
import pytest

from airflow_provider_fastly_billing.focus import (
    CHARGES,
    PRODUCTS,
    TABLE_SCHEMA,
    FocusError,
    to_focus,
    to_focus_billing_period,
    to_focus_invoice_detail,
    to_focus_table,
    write_focus,
)
from airflow_provider_fastly_billing.frames import InvoiceFrames, estimates_to_frames, invoices_to_frames
from airflow_provider_fastly_billing.testing import invoices
from tests.dagrun import run_dag, run_dag_file
from tests.focus_data import credit_invoices, meltano_invoice, own_checks

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from tests.conftest import Warehouse

UTC = timezone.utc
CUSTOMER = invoices.base62("customer:1")


def month(customer_index: int = 1, year: int = 2025, month: int = 3) -> invoices.InvoiceCharges:
    return invoices.charges_for(invoices.base62(f"customer:{customer_index}"), customer_index, year, month)


def test_real_shaped_2018_invoice_one_row_per_line_extras_not_twice() -> None:
    invoice = meltano_invoice()
    frames = invoices_to_frames([invoice])
    df = to_focus(frames)
    # 14 line items; the TLS extra of total.extras is one of them, not a 15th row.
    assert len(df) == 14 == len(invoice["line_items"])
    assert sum(df["BilledCost"], Decimal(0)) == Decimal("575.26")
    own_checks(df, frames)
    tls = df[df["ChargeDescription"] == "Shared TLS Certificate"].iloc[0]
    assert (tls["ServiceCategory"], tls["ServiceSubcategory"], tls["ServiceName"]) == (
        "Security",
        "Secret Management",
        "TLS Certificates",
    )
    assert (tls["ChargeCategory"], tls["ChargeFrequency"], tls["BilledCost"]) == (
        "Usage",
        "Recurring",
        Decimal("100.0"),
    )
    # v2 says end_time 2018-02-28T00:00:00Z; FOCUS periods end at the first instant of the next month.
    assert set(df["BillingPeriodEnd"]) == set(df["ChargePeriodEnd"]) == {datetime(2018, 3, 1, tzinfo=UTC)}
    assert set(df["BillingPeriodStart"]) == {datetime(2018, 2, 1, tzinfo=UTC)}
    latam = df[df["x_FastlyLineNumber"] == "6"].iloc[0]
    assert latam["RegionId"] == "latam" and latam["RegionName"] == "Latin America"
    assert latam["PricingUnit"] == "GB" and latam["PricingQuantity"] == Decimal("143.656927205")
    assert latam["ContractedCost"] == Decimal("0.28") * Decimal("143.656927205") and latam["BilledCost"] == Decimal(
        "40.22"
    )
    requests = df[df["x_FastlyLineNumber"] == "11"].iloc[0]
    assert (requests["PricingUnit"], requests["ConsumedUnit"]) == ("10000 Requests", "Requests")
    assert requests["ConsumedQuantity"] == Decimal("4972731.0000")
    assert requests["x_FastlyUsageType"] == "Latin_America_Requests" and requests["x_FastlyRate"] == Decimal("0.016")
    plan = df[df["ChargeDescription"] == "Master Plan"].iloc[0]
    assert (plan["ServiceName"], plan["BilledCost"], plan["x_FastlyPlanName"]) == (
        "CDN",
        Decimal("0.0"),
        "Master Plan - Fastly US - M2M",
    )
    assert set(df["InvoiceId"]) == {"2433860"} and set(df["BillingCurrency"]) == {"USD"}


def test_v2_and_v3_of_the_same_month_give_the_same_focus_rows() -> None:
    charges = month()
    v2 = to_focus(invoices_to_frames([invoices.v2_invoice(charges)]))
    v3 = to_focus(invoices_to_frames([invoices.v3_invoice(charges)]))
    columns = ["BilledCost", "ChargeCategory", "ChargeFrequency", "ServiceName", "ServiceCategory", "RegionId"]
    columns += ["ServiceSubcategory", "PricingUnit", "PricingQuantity", "ContractedCost", "BillingPeriodEnd"]
    assert v2[columns].to_dict("records") == v3[columns].to_dict("records")
    discount = v3[v3["ChargeDescription"] == "Discount"].iloc[0]
    assert (discount["ChargeCategory"], discount["ChargeFrequency"]) == ("Credit", "Recurring")
    assert discount["BilledCost"] == -charges.discount_amount == discount["ListCost"] == discount["EffectiveCost"]
    assert discount["PricingQuantity"] is None and discount["ListUnitPrice"] is None
    assert sum(v3["BilledCost"], Decimal(0)) == charges.cost


def test_the_same_invoice_from_both_generations_is_refused() -> None:
    charges = month()
    frames = invoices_to_frames([invoices.v2_invoice(charges), invoices.v3_invoice(charges)])
    with pytest.raises(
        FocusError, match=rf"invoice {charges.invoice_id} of customer {CUSTOMER} is in the frames twice"
    ):
        to_focus(frames)


def test_an_invoice_whose_lines_do_not_add_up_is_refused() -> None:
    invoice = invoices.v2_invoice(month())
    invoice["total"]["cost"] += Decimal("0.01")
    with pytest.raises(FocusError, match=rf"invoice {invoice['invoice_id']} .* add up to .* would not reconcile"):
        to_focus(invoices_to_frames([invoice]))


def test_a_usage_line_without_units_names_the_invoice_line_and_field() -> None:
    invoice = invoices.v3_invoice(month())
    invoice["transaction_line_items"][1]["units"] = None
    with pytest.raises(FocusError, match=rf"invoice {invoice['invoice_id']} of customer \w+, line 2: units is missing"):
        to_focus(invoices_to_frames([invoice]))


def test_credits_setup_fees_shortfall_tax_and_unknown_products() -> None:
    frames = invoices_to_frames(credit_invoices())
    df = to_focus(frames).set_index("ChargeDescription")
    own_checks(df.reset_index(), frames)
    expected = {
        "Welcome credit": ("Credit", "One-Time"),
        "Service credit": ("Credit", "One-Time"),
        "Discount": ("Credit", "Recurring"),
        "Dedicated TLS Setup": ("Usage", "One-Time"),
        "Commit Shortfall": ("Adjustment", "Recurring"),
        "Sales Tax": ("Tax", "Recurring"),
        "Shared TLS Certificate": ("Usage", "Recurring"),
    }
    for description, charge in expected.items():
        rows = df.loc[[description], ["ChargeCategory", "ChargeFrequency"]]
        assert {tuple(r) for r in rows.itertuples(index=False)} == {charge}, description
    assert df.loc["Welcome credit", "x_FastlyCreditCouponCode"] == "WELCOME25"
    assert df.loc["Sales Tax", "PricingQuantity"] is None and df.loc["Sales Tax", "ContractedUnitPrice"] is None
    assert df.loc["Dedicated TLS Setup", "ServiceName"] == "TLS Certificates"
    image = df.loc["Image Optimizer Requests"]
    assert (image["ServiceCategory"], image["ServiceSubcategory"], image["RegionId"]) == (
        "Media",
        "Other (Media)",
        "europe",
    )
    unknown = df.loc["Quantum Widgets"]
    assert (unknown["ServiceCategory"], unknown["ServiceSubcategory"], unknown["ServiceName"]) == (
        "Other",
        "Other (Other)",
        "Quantum Widgets",
    )
    assert (unknown["x_FastlyProductLine"], unknown["x_FastlyProductGroup"]) == ("Labs", "Labs")
    assert unknown["x_FastlyStatementNumber"].startswith("FSTL")


def test_mapping_tables_use_only_allowed_values() -> None:
    categories = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
    assert {rule.category for rule in CHARGES} <= categories
    assert {rule.frequency for rule in CHARGES} <= {"One-Time", "Recurring", "Usage-Based"}
    for rule in PRODUCTS:
        assert rule.subcategory.startswith("Other (") or rule.category in {
            "Networking",
            "Security",
            "Compute",
            "Storage",
            "Databases",
            "Management and Governance",
            "Media",
        }
        assert rule.why


def test_the_readme_shows_the_mapping_of_the_code() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for rule in PRODUCTS:
        pattern = rule.pattern.replace("|", "\\|")
        assert f"| `{pattern}` | {rule.service_name} | {rule.category} | {rule.subcategory} |" in readme, rule
    for rule in CHARGES:
        assert f"| {rule.when} | {rule.category} | {rule.frequency} |" in readme, rule


def test_account_names_and_the_default_name() -> None:
    frames = invoices_to_frames([invoices.v2_invoice(month(0)), invoices.v2_invoice(month(1))])
    df = to_focus(frames, account_names={invoices.base62("customer:0"): "Acme Media"})
    names = dict(zip(df["BillingAccountId"], df["BillingAccountName"], strict=True))
    assert names == {invoices.base62("customer:0"): "Acme Media", CUSTOMER: CUSTOMER}


def test_estimates_only_on_request() -> None:
    charges = month()
    fetched = datetime(2025, 3, 14, 6, tzinfo=UTC)
    frames = estimates_to_frames([invoices.v2_estimate(charges)], fetched)
    assert to_focus(frames).empty
    df = to_focus(frames, include_estimates=True)
    assert len(df) == len(invoices.billable(charges))
    assert df["x_FastlyEstimate"].all() and df["InvoiceId"].isna().all()
    assert sum(df["BilledCost"], Decimal(0)) == charges.cost
    assert set(df["x_FastlyRate"]) >= {Decimal("0.12")}  # the estimate's per_unit_cost
    period = to_focus_billing_period(frames)
    assert period["BillingPeriodStatus"].tolist() == ["Open"]
    v3 = to_focus(estimates_to_frames([invoices.v3_month_to_date(charges)], fetched), include_estimates=True)
    assert sum(v3["BilledCost"], Decimal(0)) == charges.cost and v3["InvoiceId"].isna().all()


def test_the_warehouse_table_is_keyed_like_the_others() -> None:
    charges = month()
    fetched = datetime(2025, 3, 14, 6, tzinfo=UTC)
    frames = InvoiceFrames.concat(
        [
            invoices_to_frames([invoices.v3_invoice(charges)]),
            estimates_to_frames([invoices.v2_estimate(charges)], fetched),
        ]
    )
    table = to_focus_table(frames)
    assert list(table.columns) == list(TABLE_SCHEMA)
    assert set(table["load_key"]) == set(frames.invoices["load_key"])
    assert table.groupby("load_key")["BilledCost"].sum().to_dict() == {
        key: charges.cost for key in frames.invoices["load_key"]
    }
    assert TABLE_SCHEMA["BilledCost"] == "numeric" and TABLE_SCHEMA["ChargePeriodEnd"] == "timestamp"
    assert TABLE_SCHEMA["x_FastlyEstimate"] == "bool" and TABLE_SCHEMA["InvoiceId"] == "string"


def test_focus_1_4_columns_and_datasets() -> None:
    invoice = invoices.v3_invoice(month())
    frames = invoices_to_frames([invoice])
    cau = to_focus(frames, version="1.4")
    assert {"ServiceProviderName", "HostProviderName", "InvoiceDetailId"} <= set(cau.columns)
    assert not {"ProviderName", "PublisherName"} & set(cau.columns)
    detail = to_focus_invoice_detail(frames)
    assert list(detail["InvoiceDetailId"]) == list(cau["InvoiceDetailId"])
    assert len(set(detail["InvoiceDetailId"])) == len(detail)
    assert set(detail["InvoiceIssueDate"]) == {datetime(2025, 4, 3, 7, tzinfo=UTC)}
    assert set(detail["InvoiceIssueStatus"]) == {"Issued"} and set(detail["PaymentTerms"]) == {"Unknown"}
    v2_detail = to_focus_invoice_detail(invoices_to_frames([invoices.v2_invoice(month(1, 2025, 4))]))
    assert set(v2_detail["PaymentTerms"]) == {"Net15"}
    assert set(v2_detail["PaymentDueDate"]) == {datetime(2025, 5, 16, tzinfo=UTC)}
    period = to_focus_billing_period(frames)
    assert period.to_dict("records") == [
        {
            "BillingPeriodCreated": datetime(2025, 3, 1, tzinfo=UTC),
            "BillingPeriodEnd": datetime(2025, 4, 1, tzinfo=UTC),
            "BillingPeriodLastUpdated": datetime(2025, 4, 3, 7, tzinfo=UTC),
            "BillingPeriodStart": datetime(2025, 3, 1, tzinfo=UTC),
            "BillingPeriodStatus": "Closed",
            "InvoiceIssuerName": "Fastly",
        }
    ]
    with pytest.raises(ValueError, match=r"FOCUS version must be one of 1\.2, 1\.4"):
        to_focus(frames, version="1.3")


def test_parquet_has_explicit_types_and_exact_values(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames = invoices_to_frames([meltano_invoice()])
    df = to_focus(frames)
    write_focus(df, tmp_path / "f.parquet")
    table = pq.read_table(tmp_path / "f.parquet")
    schema = table.schema
    assert schema.field("BilledCost").type == pa.decimal128(38, 18)
    assert schema.field("PricingQuantity").type == pa.decimal128(38, 18)
    assert schema.field("BillingPeriodEnd").type == pa.timestamp("us", tz="UTC")
    assert schema.field("InvoiceId").type == pa.string() and schema.field("ChargeClass").type == pa.string()
    assert schema.field("x_FastlyEstimate").type == pa.bool_()
    assert sum(table.column("BilledCost").to_pylist()) == Decimal("575.26")
    assert table.column("ContractedCost").to_pylist() == [
        Decimal(v).quantize(Decimal("1e-18")) for v in df["ContractedCost"]
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]  # no temporary file left


def test_csv_is_plain(tmp_path: Path) -> None:
    import csv

    write_focus(to_focus(invoices_to_frames([meltano_invoice()])), tmp_path / "f.csv", fmt="csv")
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert rows[0]["InvoiceId"] == "2433860" and rows[0]["BillingPeriodEnd"] == "2018-03-01T00:00:00Z"
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("575.26")
    assert {r["ChargeClass"] for r in rows} == {""}
    with pytest.raises(ValueError, match="fmt must be 'parquet' or 'csv'"):
        write_focus(to_focus(invoices_to_frames([meltano_invoice()])), tmp_path / "f.xlsx", fmt="xlsx")


def test_write_to_an_object_store_url_and_a_failure_leaves_the_old_file(tmp_path: Path) -> None:
    df = to_focus(invoices_to_frames([meltano_invoice()]))
    target = write_focus(df, f"file://{tmp_path}/bucket/fastly.parquet")
    assert target.exists() and (tmp_path / "bucket" / "fastly.parquet").stat().st_size > 1000
    before = (tmp_path / "bucket" / "fastly.parquet").read_bytes()
    broken = df.copy()
    broken.loc[0, "BilledCost"] = Decimal("1e-20")
    with pytest.raises(FocusError, match="BilledCost value 1E-20 has more than 18 decimals"):
        write_focus(broken, f"file://{tmp_path}/bucket/fastly.parquet")
    assert (tmp_path / "bucket" / "fastly.parquet").read_bytes() == before
    assert [p.name for p in (tmp_path / "bucket").iterdir()] == ["fastly.parquet"]


def export_dag(destination: str, arguments: str = "") -> str:
    return f"""
    from airflow_provider_fastly_billing.operators.focus import FocusExportOperator
    with DAG(DAG_ID, schedule=None, start_date=START) as dag:
        FocusExportOperator(
            task_id="export", year="{{{{ logical_date.year }}}}", month="{{{{ logical_date.month }}}}",
            destination="{destination}", {arguments}
        )
    """


@pytest.mark.parametrize("api_version", ["v2", "v3"])
def test_export_operator_writes_the_month(fastly_connection: FastlySimulator, tmp_path: Path, api_version) -> None:
    import pyarrow.parquet as pq

    sim = fastly_connection
    destination = f"file://{tmp_path}/focus/{{{{ ds }}}}.parquet"
    run = run_dag(
        f"focus_export_{api_version}",
        export_dag(destination, f"api_version={api_version!r}, account_names={{'{sim.customer_id}': 'Acme'}}"),
        pendulum.datetime(2025, 4, 1, tz="UTC"),
    )
    assert run.state == "success"
    assert run.rendered["export"]["destination"] == f"file://{tmp_path}/focus/2025-04-01.parquet"
    table = pq.read_table(tmp_path / "focus" / "2025-04-01.parquet").to_pandas()
    if api_version == "v2":
        expected = [sim.invoice(sim.customer_id, 2025, 4)]
    else:
        expected = [invoices.v3_invoice(sim.charges(c, 2025, 4)) for c in sim.customers]
    total = sum(Decimal(str(i.get("monthly_transaction_amount", i.get("total", {}).get("cost")))) for i in expected)
    assert sum(table["BilledCost"]) == total
    assert Decimal(run.xcom["export"]["billed_cost"]) == total and run.xcom["export"]["rows"] == len(table)
    assert sorted(run.xcom["export"]["invoice_ids"]) == sorted(str(i["invoice_id"]) for i in expected)
    assert set(table.loc[table["BillingAccountId"] == sim.customer_id, "BillingAccountName"]) == {"Acme"}


def test_export_operator_reads_account_names_from_the_customer_api(
    fastly_connection: FastlySimulator, tmp_path
) -> None:
    import pyarrow.parquet as pq

    sim = fastly_connection
    run = run_dag(
        "focus_export_names",
        export_dag(f"{tmp_path}/f.parquet", 'api_version="v3"'),
        pendulum.datetime(2025, 4, 1, tz="UTC"),
    )
    assert run.state == "success"
    table = pq.read_table(tmp_path / "f.parquet").to_pandas()
    names = dict(zip(table["BillingAccountId"], table["BillingAccountName"], strict=True))
    assert names == {c: sim.account_name(c) for c in sim.customers}
    assert sorted(r.path for r in sim.requests if r.path.startswith("/customer/")) == sorted(
        f"/customer/{c}" for c in sim.customers
    )


def test_export_operator_refuses_bad_input_before_any_request(fastly_connection: FastlySimulator, tmp_path) -> None:
    run = run_dag("focus_export_bad", export_dag(f"{tmp_path}/f.csv", 'fmt="xlsx"'))
    assert run.state == "failed"
    assert fastly_connection.billing_requests() == []
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize("warehouse", ["duckdb"], indirect=True)  # the export reads Fastly, not the warehouse
def test_example_dag_loads_then_exports(sim: FastlySimulator, connect, warehouse: Warehouse, monkeypatch, tmp_path):
    connect("fastly_default", sim.connection())
    connect("fastly_warehouse", json.loads(os.environ[f"AIRFLOW_CONN_{warehouse.conn_id.upper()}"]))
    warehouse.schema = None  # the example DAGs write to the connection's default schema
    monkeypatch.setenv("AIRFLOW_VAR_FASTLY_FOCUS_DESTINATION", str(tmp_path / "focus"))
    name = "fastly_focus_monthly"
    target = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{name}.py"
    shutil.copy(Path(__file__).resolve().parent.parent / "dags_examples" / f"{name}.py", target)
    run = run_dag_file(target, pendulum.datetime(2025, 3, 1, tz="UTC"))
    assert run.state == "success"
    assert run.states == {"load_invoice": "success", "export_focus": "success"}
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "focus" / "fastly-2025-02.parquet").to_pandas()
    (loaded,) = warehouse.rows("SELECT cost FROM {invoices}")[0]
    assert sum(table["BilledCost"]) == Decimal(str(loaded)) == sim.invoice(sim.customer_id, 2025, 2)["total"]["cost"]
