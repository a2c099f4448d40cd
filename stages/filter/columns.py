"""Helpers every filter uses to report its verdict as columns (the routing contract)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import REJECT_DETAIL, REJECT_REASON, REJECT_SCORE, set_column


def reject_where(
    table: pa.Table,
    mask: pa.Array | pa.ChunkedArray,
    reason: str,
    detail: pa.Array | pa.ChunkedArray | None = None,
    score: pa.Array | pa.ChunkedArray | None = None,
) -> pa.Table:
    """Reject rows where `mask` is true and no earlier rule of this stage rejected them."""
    current = (
        table[REJECT_REASON] if REJECT_REASON in table.column_names else pa.nulls(table.num_rows, pa.string())
    )
    fresh = pc.and_(pc.fill_null(mask, False), pc.is_null(current))
    table = set_column(table, REJECT_REASON, pc.if_else(fresh, reason, current), pa.string())
    for name, values, typ in ((REJECT_DETAIL, detail, pa.string()), (REJECT_SCORE, score, pa.float64())):
        if values is None:
            continue
        existing = table[name] if name in table.column_names else pa.nulls(table.num_rows, typ)
        table = set_column(table, name, pc.if_else(fresh, values.cast(typ), existing.cast(typ)), typ)
    return table
