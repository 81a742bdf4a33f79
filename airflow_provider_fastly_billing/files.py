"""Writing result files atomically to a local path or any Airflow object store."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, cast

from airflow.sdk import ObjectStoragePath

if TYPE_CHECKING:
    from collections.abc import Iterable


def storage_path(destination: str | Path | ObjectStoragePath) -> Path | ObjectStoragePath:
    """A local ``Path`` for a plain path, an ``ObjectStoragePath`` for a URL such as ``s3://b/k``."""
    if isinstance(destination, ObjectStoragePath):
        return destination
    if isinstance(destination, str) and "://" in destination:
        return ObjectStoragePath(destination)
    return Path(destination)


def write_atomically(target: Path | ObjectStoragePath, chunks: Iterable[bytes]) -> int:
    """
    Write ``chunks`` to a temporary sibling of ``target``, rename it into place when complete.

    A failure part-way removes the temporary file, so ``target`` is either whole or untouched.
    Returns the number of bytes written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
    size = 0
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
        if isinstance(target, Path):
            partial.replace(target)
        else:
            # A sibling of an object-store target is an ObjectStoragePath too.
            cast("ObjectStoragePath", partial).rename(target)
    except BaseException:
        if partial.exists():
            partial.unlink()
        raise
    return size
