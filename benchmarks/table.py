"""The README's benchmark table from benchmarks/results.json (and before.json): ``python -m benchmarks.table``."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import ROOT


def _s(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _met(result: dict[str, Any]) -> str:
    return {True: "met", False: "**missed**", None: "not run"}[result.get("met")]


def rows(results: dict[str, Any]) -> list[str]:
    out = ["| # | measure | provider | floor / peer | ratio | target | |", "|---|---|---|---|---|---|---|"]
    if http := results.get("http"):
        out.append(f"| 1 | {http['calls']:,} `get_invoice` over loopback vs a bare `requests.Session` loop "
                   f"| {_s(http['provider_s'])} | {_s(http['baseline_s'])} | **{http['ratio']:.2f}** "
                   f"| {http['target']} | {_met(http)} |")  # fmt: skip
    if frames := results.get("frames"):
        out.append(f"| 2 | {frames['line_items']:,} line items → exact frames vs `pa.Table.from_pylist` "
                   f"(explicit decimal128 schema) | {_s(frames['provider_s'])} | {_s(frames['baseline_s'])} "
                   f"| **{frames['ratio']:.2f}** | {frames['target']} | {_met(frames)} |")  # fmt: skip
    if load := results.get("load"):
        floors = (("postgres", "raw `COPY FROM STDIN` of pre-encoded CSV"),
                  ("duckdb", "`INSERT INTO t SELECT * FROM` an Arrow table"))  # fmt: skip
        for n, (name, floor) in enumerate(floors, 3):
            r = load[name]
            out.append(f"| {n} | {r['rows']:,} line items → {name} (`load_frames`, {r['rows_per_s']:,.0f} rows/s) vs "
                       f"{floor} | {_s(r['provider_s'])} | {_s(r['baseline_s'])} | **{r['ratio']:.2f}** "
                       f"| {r['target']} | {_met(r)} |")  # fmt: skip
    if fan := results.get("fanout"):
        for name in [n for n in ("postgres", "duckdb") if n in fan]:
            r = fan[name]
            low, high = r["invoices_1000"]["peak_mb"], r["invoices_10000"]["peak_mb"]
            out.append(f"| 5 | fan-out peak RSS into {name}, 1,000 → 10,000 invoices | {low:.0f} → {high:.0f} MB "
                       f"| flat | **+{r['growth']:.0%}** | {fan['target']} | {_met(r)} |")  # fmt: skip
    if mem := results.get("memory"):
        out.append(f"| 6 | a {mem['body_mb']:.0f} MB JSON answer ({mem['line_items']:,} line items): fetch + frames "
                   f"+ load into DuckDB, peak RSS growth | {mem['growth_mb']:.0f} MB | {mem['body_mb']:.0f} MB "
                   f"| **{mem['ratio']:.2f}x** | {mem['target']} | {_met(mem)} |")  # fmt: skip
    if peer := results.get("peer"):
        if "ratio" in peer:
            out.append(f"| 7 | the simulator's {peer['invoices']} v3 invoices into DuckDB vs dlt 1.31 "
                       f"`rest_api_source`; invoices whose lines miss the total: {peer['provider_misses']} vs "
                       f"dlt {peer['dlt_misses']}/{peer['dlt_invoices']} | {_s(peer['provider_s'])} "
                       f"| {_s(peer['baseline_s'])} | **{peer['ratio']:.2f}** | {peer['target']} "
                       f"| {_met(peer)} |")  # fmt: skip
        else:
            out.append(f"| 7 | v3 invoices vs dlt `rest_api_source` | | | | {peer['status']} | not run |")
    if parse := results.get("parse"):
        dags = {k: v for k, v in parse.items() if isinstance(v, dict)}
        worst = max(v["ms_over_airflow_sdk"] for v in dags.values())
        best = min(v["ms_over_airflow_sdk"] for v in dags.values())
        met = all(v["met"] for v in dags.values())
        out.append(f"| 8 | parse cost of each example DAG over `import airflow.sdk` (median of 7 processes) "
                   f"| {best:.0f}-{worst:.0f} ms | plain one-task DAG {parse['plain_dag_ms']:.0f} ms, with one "
                   f"`Asset` outlet {parse.get('asset_dag_ms', 0):.0f} ms | | ≤ 50 ms "
                   f"| {'met' if met else '**missed**'} |")  # fmt: skip
    if pdf := results.get("download"):
        out.append(f"| 9 | a {pdf['file_mb']:.0f} MB PDF through `download_invoice` (streamed to disk), peak RSS "
                   f"growth | {pdf['provider_growth_mb']:.0f} MB | `requests` reading it whole: "
                   f"{pdf['baseline_growth_mb']:.0f} MB | | {pdf['target']} | {_met(pdf)} |")  # fmt: skip
    return out


def stages(results: dict[str, Any], before: dict[str, Any]) -> list[str]:
    out = ["| 1,000,000 line items | parse | frames | load PostgreSQL | load DuckDB |", "|---|---|---|---|---|"]
    for label, r in (("before (main)", before), ("after", results.get("load", {}))):
        if r:
            out.append(f"| {label} | {_s(r['stages']['parse_s'])} | {_s(r['stages']['frames_s'])} "
                       f"| {_s(r['postgres']['provider_s'])} (floor {_s(r['postgres']['baseline_s'])}) "
                       f"| {_s(r['duckdb']['provider_s'])} (floor {_s(r['duckdb']['baseline_s'])}) |")  # fmt: skip
    return out


def main() -> None:
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    before_path = ROOT / "benchmarks" / "before.json"
    before = json.loads(before_path.read_text()) if before_path.exists() else {}
    print("\n".join([*rows(results), "", *stages(results, before)]))


if __name__ == "__main__":
    main()
