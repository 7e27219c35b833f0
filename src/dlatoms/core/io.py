"""Writing results so that a killed job never leaves a readable partial file, and finding ones cut short."""

from __future__ import annotations

import glob
import json
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
    # A job killed while writing `path` left its temporary file; the job's rerun removes it. (Snakemake
    # runs one job per output at a time, so no other writer of `path` can own one.)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
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


class IncompleteFileError(ValueError):
    """A result file that is cut short or corrupted; the message names it and says to delete it."""


PARQUET_MAGIC = b"PAR1"
MAX_SAFETENSORS_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def _parquet_is_complete(path: Path) -> bool:
    """'PAR1' at both ends and a footer that fits in the file: what a cut-short write never leaves."""
    size = path.stat().st_size
    if size < 12:
        return False
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(-8, os.SEEK_END)
        tail = handle.read(8)
    footer = int.from_bytes(tail[:4], "little")
    return head == PARQUET_MAGIC and tail[4:] == PARQUET_MAGIC and footer + 12 <= size


def _safetensors_is_complete(path: Path) -> bool:
    """A readable JSON header whose last tensor ends exactly at the end of the file."""
    size = path.stat().st_size
    if size < 8:
        return False
    with path.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length > min(size - 8, MAX_SAFETENSORS_HEADER):
            return False
        try:
            header = json.loads(handle.read(length))
            end = max(
                (int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"),
                default=0,
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return False
    return 8 + length + end == size


CHECKS = {
    ".parquet": ("parquet", _parquet_is_complete),
    ".safetensors": ("safetensors", _safetensors_is_complete),
}


def incomplete_files(root: str | Path) -> list[tuple[Path, str]]:
    """(path, format) of every .parquet and .safetensors file under `root` that is cut short or corrupted.

    Reads a few bytes per file (the parquet magic and footer length, the safetensors header), so it is
    cheap enough to run on every Snakemake start.
    """
    found = []
    for directory, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = Path(directory) / name
            check = CHECKS.get(path.suffix)
            if check and not name.startswith(".") and not check[1](path):
                found.append((path, check[0]))
    return found


def check_complete_files(root: str | Path) -> None:
    """Raise IncompleteFileError naming the first incomplete result file (and how many more there are)."""
    found = incomplete_files(root)
    if not found:
        return
    (path, kind), rest = found[0], found[1:]
    more = ""
    if rest:
        shown = ", ".join(str(p) for p, _ in rest[:3]) + (", ..." if len(rest) > 3 else "")
        files, them = ("file", "it") if len(rest) == 1 else ("files", "them")
        more = f" ({len(rest)} more such {files}, delete {them} too: {shown})"
    raise IncompleteFileError(
        f"{path}: not a complete {kind} file (truncated or corrupted); delete it and rerun — Snakemake will "
        f"rebuild it{more}"
    )
