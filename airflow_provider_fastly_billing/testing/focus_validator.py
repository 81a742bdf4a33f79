"""
Run the FinOps Foundation's ``focus-validator`` on a FOCUS 1.2 file and read its verdict, for tests and demos.

The validator (2.2.1) needs Python >= 3.12, so it lives in a venv of its own (``make focus-validator`` builds
``.venv-focus``). Its quirks, handled here: it reads its rules relative to the working directory (so it runs
from a folder holding a ``focus_validator`` symlink), it validates offline only with ``--block-download``,
and it exits 0 even when rules fail, so the verdict is read from its JUnit XML.
"""

from __future__ import annotations

import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

CRITERIA = (
    "REGION_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
    "NEGOTIATED_PRICING_SUPPORTED",
    "ACCOUNT_NAMING_SUPPORTED",
)
"""What Fastly's bill supports: regions, measured usage, negotiated prices, account names."""
KNOWN_FALSE_POSITIVES = frozenset({"InvoiceId-C-004-C"})
"""Rule model 1.2.0.1's ``InvoiceId-C-004-C`` has no condition and fails every non-null InvoiceId."""


@dataclass
class ValidatorResult:
    """The validator's JUnit XML, read: rule counts and the ids of rules that failed or errored."""

    tests: int
    failures: int
    errors: int
    skipped: int
    failed: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def ok(self) -> bool:
        """No error, and no failure but the known false positives."""
        return not self.errored and set(self.failed) <= KNOWN_FALSE_POSITIVES

    def summary(self) -> str:
        return (
            f"{self.tests} rules: {self.passed} pass, {self.failures} fail ({', '.join(self.failed) or 'none'}), "
            f"{self.errors} error, {self.skipped} skipped"
        )


def _read(results: Path) -> ValidatorResult:
    root = ET.parse(results).getroot()
    failed: list[str] = []
    errored: list[str] = []
    for case in root.iter("testcase"):
        for outcome in case:
            if outcome.tag in ("failure", "error"):
                (failed if outcome.tag == "failure" else errored).append(case.get("name", "").split(" ")[0])
    counts = {name: int(root.get(name, "0")) for name in ("tests", "failures", "errors", "skipped")}
    return ValidatorResult(**counts, failed=failed, errored=errored)


def run_focus_validator(parquet: str | Path, venv: str | Path, *, timeout: float = 600) -> ValidatorResult:
    """
    Validate a FOCUS 1.2 Parquet file with the ``focus-validator`` installed in ``venv``, offline.

    :param parquet: the file (write it with :func:`~airflow_provider_fastly_billing.focus.write_focus`).
    :param venv: the virtualenv holding ``focus-validator`` 2.2.1 (Python 3.12).
    :param timeout: seconds before the run is abandoned.
    """
    venv = Path(venv)
    (package,) = venv.glob("lib/python3*/site-packages/focus_validator")
    with tempfile.TemporaryDirectory(prefix="focus-validator-") as folder:
        work = Path(folder)
        (work / "focus_validator").symlink_to(package)
        command = [str(venv / "bin" / "focus-validator"), "--data-file", str(Path(parquet).resolve())]
        command += ["--validate-version", "1.2", "--block-download", "--applicability-criteria", ",".join(CRITERIA)]
        command += ["--output-type", "unittest", "--output-destination", "results.xml"]
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout, check=False)
        if not (work / "results.xml").exists():
            raise RuntimeError(f"focus-validator wrote no results (exit {done.returncode}): {done.stderr[-2000:]}")
        return _read(work / "results.xml")
