"""DuckDB over a committed output: `samples` (kept rows) and `rejects`, each a view over its Parquet files.

Views read the files the ledger lists when `_SUCCESS.json` exists, so staging files are never matched;
an incomplete run falls back to the committed `data/` and `rejects/` files.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from pipeline.commit import OutputLayout
from pipeline.errors import PipelineError


def _files(layout: OutputLayout, kind: str) -> list[str]:
    if layout.is_complete():
        ledger = json.loads(layout.success_path.read_text())
        return [str(layout.root / f["path"]) for f in ledger["files"] if f["path"].startswith(kind + "/")]
    return sorted(str(p) for p in (layout.root / kind).glob("*.parquet"))


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def connect(output_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views `samples` and `rejects` over `output_dir`."""
    layout = OutputLayout(Path(output_dir).resolve())
    if not layout.root.is_dir():
        raise PipelineError(f"no output at {layout.root}")
    con = duckdb.connect()
    for view, kind in (("samples", "data"), ("rejects", "rejects")):
        files = _files(layout, kind)
        if not files:
            raise PipelineError(f"{layout.root}/{kind} holds no committed Parquet files")
        con.execute(
            f"CREATE VIEW {view} AS SELECT * FROM read_parquet({_sql_list(files)}, union_by_name = true)"
        )
    return con
