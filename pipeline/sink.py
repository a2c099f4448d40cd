"""The sink: splits each block into kept rows and rejects and commits both as Parquet files.

A block may hold rows of several shards (Ray merges small outputs), so files are named by shard and by the
first row ordinal they hold: names never collide and are the same on every rerun of the same input.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.commit import OutputLayout, commit_parquet
from pipeline.routing import split_active
from pipeline.schema import (
    DUPLICATE_OF,
    FAILED,
    ORDINAL,
    REJECT_DETAIL,
    REJECT_REASON,
    REJECT_SCHEMA,
    REJECT_SCORE,
    REJECT_STAGE,
    SHARD,
)

RECORD_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # data | rejects | failed_shard
        ("shard", pa.string()),
        ("path", pa.string()),
        ("rows", pa.int64()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("reject_counts", pa.string()),  # JSON {"stage\treason": n}
        ("stage", pa.string()),
        ("detail", pa.string()),
    ]
)
SHARD_MARKER_ORDINAL = -1


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast to `schema`, filling columns a block never received with nulls."""
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            arrays.append(table[field.name].cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


REJECT_COLUMN_SOURCES = {
    "stage": REJECT_STAGE,
    "reason": REJECT_REASON,
    "detail": REJECT_DETAIL,
    "score": REJECT_SCORE,
    "duplicate_of": DUPLICATE_OF,
}


def rejects_view(table: pa.Table) -> pa.Table:
    """Rejected rows in the rejects layout: routing columns renamed, media and stage outputs left out."""
    present = {}
    for field in REJECT_SCHEMA:
        source = REJECT_COLUMN_SOURCES.get(field.name, field.name)
        if source in table.column_names:
            present[field.name] = table[source]
    return conform(pa.table(present), REJECT_SCHEMA)


def _reject_counts(rejects: pa.Table) -> str:
    counts = Counter(zip(rejects[REJECT_STAGE].to_pylist(), rejects[REJECT_REASON].to_pylist()))
    return json.dumps({f"{stage}\t{reason}": n for (stage, reason), n in counts.items()})


def _record(kind: str, shard: str, **fields) -> dict:
    record = {name: None for name in RECORD_SCHEMA.names}
    record.update(kind=kind, shard=shard, **fields)
    return record


def _ascending(ordinals: pa.ChunkedArray) -> bool:
    values = ordinals.to_numpy()
    return bool((values[1:] >= values[:-1]).all())


def write_block(table: pa.Table, schema: pa.Schema, layout: OutputLayout, run_id: str) -> pa.Table:
    """Commit one block's kept rows and rejects, one file of each per shard; returns ledger records."""
    records: list[dict] = []
    staging = layout.staging_dir(run_id)
    shards = pc.unique(table[SHARD]).to_pylist()
    for shard in shards:
        rows = table if len(shards) == 1 else table.filter(pc.equal(table[SHARD], shard))
        if not _ascending(rows[ORDINAL]):
            rows = rows.sort_by(ORDINAL)
        if pc.min(rows[ORDINAL]).as_py() == SHARD_MARKER_ORDINAL:  # markers sort first
            markers = rows.filter(pc.equal(rows[ORDINAL], SHARD_MARKER_ORDINAL))
            for marker in markers.to_pylist():
                records.append(
                    _record("failed_shard", shard, stage=marker[REJECT_STAGE], detail=marker[REJECT_DETAIL])
                )
            rows = rows.filter(pc.not_equal(rows[ORDINAL], SHARD_MARKER_ORDINAL))
        if rows.num_rows == 0:
            continue
        name = f"part-{shard}-{rows[ORDINAL][0].as_py():09d}.parquet"
        kept, rejected = split_active(rows)
        if kept.num_rows:
            info = commit_parquet(conform(kept, schema), staging, layout.data_dir / name)
            records.append(_record("data", shard, path=f"data/{name}", **info))
        if rejected.num_rows:
            info = commit_parquet(rejects_view(rejected), staging, layout.rejects_dir / name)
            records.append(
                _record(
                    "rejects", shard, path=f"rejects/{name}", reject_counts=_reject_counts(rejected), **info
                )
            )
            failed = rejected.filter(pc.fill_null(rejected[FAILED], False))
            if failed.num_rows:
                first = failed.slice(0, 1).to_pylist()[0]
                records.append(
                    _record("failed_shard", shard, stage=first[REJECT_STAGE], detail=first[REJECT_DETAIL])
                )
    return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)


def empty_file(schema: pa.Schema, layout: OutputLayout, run_id: str, directory: Path) -> dict:
    """A zero-row file so that readers and DuckDB see the schema even when nothing was kept."""
    name = "part-empty.parquet"
    info = commit_parquet(schema.empty_table(), layout.staging_dir(run_id), directory / name)
    return _record(directory.name, "", path=f"{directory.name}/{name}", **info)
