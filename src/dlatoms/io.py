"""Writing results so that a killed job never leaves a readable partial file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it into place, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parquet_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write `frame` as parquet to `path` atomically."""
    with atomic_write(path) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow")


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_tsv_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write `frame` as tab-separated text to `path` atomically."""
    write_text_atomic(frame.to_csv(sep="\t", index=False), path)
