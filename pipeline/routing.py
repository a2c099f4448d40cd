"""Routing of rows through a stage: only active rows reach a stage, rejected rows carry on light.

Pure over pyarrow tables (no Ray) so the rules that guarantee "every input row ends kept or rejected"
are unit-tested directly. A rejected row keeps its id, source pointer and reason and loses its media.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import (
    FAILED,
    MEDIA_COLUMNS,
    REJECT_DETAIL,
    REJECT_REASON,
    REJECT_STAGE,
    ROUTING_COLUMNS,
    set_column,
)

STAGE_RETRIES = 1
FAILED_REASON = "failed:exception"


def with_routing(table: pa.Table) -> pa.Table:
    """Add the routing columns a table lacks, as nulls."""
    for field in ROUTING_COLUMNS:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


def active_mask(table: pa.Table) -> pa.ChunkedArray:
    return pc.is_null(table[REJECT_REASON])


def count_active(table: pa.Table) -> int:
    return (
        table.num_rows - table[REJECT_REASON].null_count
        if REJECT_REASON in table.column_names
        else table.num_rows
    )


def _partition(table: pa.Table, keep: pa.ChunkedArray) -> tuple[pa.Table, pa.Table]:
    """(rows where `keep`, the others); no copy when one side is empty, the usual case for a batch."""
    kept = keep.true_count if isinstance(keep, pa.Array) else sum(c.true_count for c in keep.chunks)
    if kept == table.num_rows:
        return table, table.slice(0, 0)
    if kept == 0:
        return table.slice(0, 0), table
    return table.filter(keep), table.filter(pc.invert(keep))


def split_active(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(rows still in play, rows rejected by an earlier stage)."""
    return _partition(table, active_mask(table))


def _strip_media(table: pa.Table) -> pa.Table:
    for name in MEDIA_COLUMNS:
        if name in table.column_names:
            table = set_column(table, name, pa.nulls(table.num_rows, table[name].type))
    return table


def _stamp_stage(table: pa.Table, stage_name: str) -> pa.Table:
    return set_column(table, REJECT_STAGE, pa.array([stage_name] * table.num_rows, pa.string()))


def settle(result: pa.Table, stage_name: str) -> pa.Table:
    """Stamp newly rejected rows of `result` with the stage and drop their media."""
    kept, rejected = split_active(with_routing(result))
    if rejected.num_rows == 0:
        return kept
    return concat([kept, _strip_media(_stamp_stage(rejected, stage_name))])


def concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="permissive")


def mark_failed(table: pa.Table, stage_name: str, cause: str) -> pa.Table:
    """Every row of a batch that kept failing: recorded as failed with the cause, never dropped."""
    n = table.num_rows
    table = with_routing(table)
    for name, value, typ in (
        (REJECT_REASON, FAILED_REASON, pa.string()),
        (REJECT_DETAIL, cause[-2000:], pa.string()),
        (FAILED, True, pa.bool_()),
    ):
        table = set_column(table, name, pa.array([value] * n, typ))
    return _strip_media(_stamp_stage(table, stage_name))


def run_on_active(table: pa.Table, stage_name: str, fn: Callable[[pa.Table], pa.Table]) -> pa.Table:
    """Apply `fn` to the active rows; a batch that raises is retried, then recorded as failed."""
    table = with_routing(table)
    active, done = split_active(table)
    # Even with no active rows the stage runs (on zero rows) so every block gains the stage's columns.
    cause = ""
    for _ in range(1 + STAGE_RETRIES):
        try:
            result = fn(active)
            if result.num_rows != active.num_rows:
                raise RuntimeError(
                    f"stage {stage_name} returned {result.num_rows} rows for {active.num_rows}: "
                    "stages must mark rows with reject_reason, not drop them"
                )
        except Exception:  # noqa: BLE001 - a broken batch must not take the run down
            cause = traceback.format_exc()
            continue
        return concat([settle(result, stage_name), done])
    return concat([mark_failed(active, stage_name, cause), done])
