"""Interleaved provider-versus-floor timing, child processes for memory, and the environment of every benchmark."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
"""Rounds of every timed comparison (the median is reported); ``BENCH_ROUNDS=1`` for a quick look."""
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow" / "bench"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def compare(
    provider: Callable[[], Any],
    baseline: Callable[[], Any],
    rounds: int = ROUNDS,
    prepare: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """
    Run provider and floor (or peer) alternately (the order flips each round) and return the median ratio.

    :param prepare: run before every single timing, untimed (a fresh table, say).
    """
    provider_times, baseline_times = [], []
    for n in range(rounds):
        pair = [(provider, provider_times), (baseline, baseline_times)]
        for action, times in pair if n % 2 == 0 else reversed(pair):
            if prepare:
                prepare()
            times.append(timed(action))
    ratios = [p / b for p, b in zip(provider_times, baseline_times, strict=True)]
    return {
        "ratio": statistics.median(ratios),
        "provider_s": statistics.median(provider_times),
        "baseline_s": statistics.median(baseline_times),
        "rounds": rounds,
    }


def median_time(action: Callable[[], Any], rounds: int = ROUNDS) -> float:
    return statistics.median(timed(action) for _ in range(rounds))


PEAK_RSS = """
def peak_mb():
    # VmHWM, not getrusage: Linux keeps ru_maxrss across exec, so a child of a large parent would report the parent's.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
"""
"""Code for a child process: ``peak_mb()``, its own peak resident memory so far."""


def child(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh Python process; its last line of output is the JSON it reports."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def save(results: dict[str, Any]) -> Path:
    """Merge ``results`` into benchmarks/results.json (a run of some benchmarks keeps the others')."""
    path = ROOT / "benchmarks" / "results.json"
    merged = {**(json.loads(path.read_text()) if path.exists() else {}), **results}
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return path
