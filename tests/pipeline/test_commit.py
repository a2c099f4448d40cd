"""The commit protocol: files are absent or complete, the ledger is written last and verifiable."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.commit import OutputLayout, commit_parquet, verify_success, write_json_atomic
from pipeline.errors import OutputExistsError


def test_commit_leaves_no_staging_file_and_records_hash(tmp_path):
    layout = OutputLayout(tmp_path / "out")
    layout.prepare("run1", overwrite=False)
    info = commit_parquet(
        pa.table({"id": ["a", "b"]}), layout.staging_dir("run1"), layout.data_dir / "part-x.parquet"
    )
    assert info["rows"] == 2 and len(info["sha256"]) == 64
    assert list(layout.staging_dir("run1").iterdir()) == []
    assert pq.read_table(layout.data_dir / "part-x.parquet")["id"].to_pylist() == ["a", "b"]
    assert (
        pq.ParquetFile(layout.data_dir / "part-x.parquet").metadata.row_group(0).column(0).compression
        == "ZSTD"
    )


def test_complete_output_is_not_overwritten_without_flag(tmp_path):
    layout = OutputLayout(tmp_path / "out")
    layout.prepare("run1", overwrite=False)
    write_json_atomic(layout.success_path, {"files": []})
    with pytest.raises(OutputExistsError, match="--overwrite"):
        layout.prepare("run2", overwrite=False)
    layout.prepare("run2", overwrite=True)
    assert not layout.success_path.exists()


def test_foreign_files_are_never_deleted(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match="thesis.tex"):
        OutputLayout(tmp_path / "out").prepare("run", overwrite=True)
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"


def test_verify_detects_tampering(tmp_path):
    layout = OutputLayout(tmp_path / "out")
    layout.prepare("run", overwrite=False)
    info = commit_parquet(
        pa.table({"id": ["a"]}), layout.staging_dir("run"), layout.data_dir / "part-a.parquet"
    )
    write_json_atomic(layout.success_path, {"files": [{"path": "data/part-a.parquet", **info}]})
    assert verify_success(layout.root) == []
    pq.write_table(pa.table({"id": ["b"]}), layout.data_dir / "part-a.parquet")
    assert verify_success(layout.root) == ["data/part-a.parquet: sha256 differs from the ledger"]
    assert json.loads(layout.success_path.read_text())["files"][0]["rows"] == 1
