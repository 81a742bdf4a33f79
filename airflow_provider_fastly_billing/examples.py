"""
Copy the example DAGs into a DAGs folder: ``python -m airflow_provider_fastly_billing.examples DIR``.

The wheel carries them as ``example_dags/``; from a source checkout they are the repository's
``dags_examples/``. Existing files are not overwritten unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def source() -> Path:
    """The folder holding the example DAGs: in the installed wheel, else in the source checkout."""
    for folder in (PACKAGE / "example_dags", PACKAGE.parent / "dags_examples"):
        if folder.is_dir():
            return folder
    raise FileNotFoundError("no example DAGs next to this package (neither example_dags/ nor ../dags_examples/)")


def copy(target: Path, *, force: bool = False) -> list[Path]:
    """Copy every example DAG file (the demo script excluded) into ``target``; return the files written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source().glob("fastly_*.py")):
        destination = target / path.name
        if destination.exists() and not force:
            raise FileExistsError(f"{destination} exists: pass --force to overwrite it")
        shutil.copyfile(path, destination)
        written.append(destination)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_fastly_billing.examples", description=__doc__)
    parser.add_argument("folder", type=Path, help="the DAGs folder to copy the examples into")
    parser.add_argument("--force", action="store_true", help="overwrite files of the same name")
    args = parser.parse_args(argv)
    for path in copy(args.folder, force=args.force):
        print(path)


if __name__ == "__main__":
    main()
