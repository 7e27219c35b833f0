"""Atomic writes: an output is complete or absent, and a killed writer's temporary file goes on the rerun."""

from __future__ import annotations

import pandas as pd
import pytest

from dlatoms.core.io import atomic_write, write_parquet_atomic


def test_a_failed_write_leaves_neither_output_nor_temporary_file(tmp_path):
    target = tmp_path / "table.parquet"
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_bytes(b"PAR1 half a table")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_the_rerun_removes_the_temporary_file_of_a_killed_writer(tmp_path):
    target = tmp_path / "table.parquet"
    left = tmp_path / ".table.parquet.abc123.tmp"  # what SIGKILL during a write leaves
    left.write_bytes(b"PAR1 half a table")
    other = tmp_path / ".other.parquet.abc123.tmp"  # another output's: not ours to remove
    other.write_bytes(b"x")
    frame = pd.DataFrame({"a": [1, 2]})
    write_parquet_atomic(frame, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.parquet.abc123.tmp", "table.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)
