"""`filter.top_fraction`: keep the best-scoring fraction of the whole dataset, as DataComp's "top 30%".

A fraction is a global quantile: deciding it per batch would keep 30% of every batch, not the best 30%
of the dataset. The summary pulls only the score column (4 bytes per row) to the driver, finds the exact
k-th best score, and breaks ties at that score by smallest id, so exactly round(fraction * rows) rows
survive whatever the number of blocks or workers.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipeline.registry import register
from pipeline.stage import Column, GlobalStage, Params, StageContext
from stages.filter.columns import reject_where

THRESHOLD_KEY = b"threshold"


class TopFractionParams(Params):
    column: str = Field(description="float32 score column; higher is better")
    keep_top_fraction: float = Field(gt=0, le=1, description="share of the scored rows kept")
    reason: str | None = Field(None, description="reject reason; default `<column>_not_in_top_fraction`")


def _scores(dataset, column: str) -> np.ndarray:
    parts = [
        batch[column].to_numpy(zero_copy_only=False)
        for batch in dataset.select_columns([column]).iter_batches(batch_format="pyarrow", batch_size=None)
    ]
    scores = np.concatenate(parts).astype(np.float64) if parts else np.empty(0)
    return np.where(np.isfinite(scores), scores, -np.inf)  # unscored rows rank last


@register
class TopFraction(GlobalStage):
    name = "filter.top_fraction"
    Params = TopFractionParams

    def __init__(self, params: TopFractionParams, context: StageContext | None = None):
        super().__init__(params, context)
        self.requires = (Column(params.column, pa.float32()),)
        self.reason = params.reason or f"{params.column}_not_in_top_fraction"

    def summarize(self, dataset) -> pa.Table:
        """The k-th best score, and the ids kept among rows tied at exactly that score."""
        column = self.params.column
        scores = _scores(dataset, column)
        keep = round(self.params.keep_top_fraction * len(scores))
        if keep == 0:
            return pa.table({"id": pa.array([], pa.string())}).replace_schema_metadata(
                {THRESHOLD_KEY: b"inf"}
            )
        threshold = float(np.partition(scores, len(scores) - keep)[len(scores) - keep])
        need = keep - int(np.count_nonzero(scores > threshold))
        tied = (
            dataset.select_columns(["id", column])
            .map_batches(
                lambda t: t.filter(pc.equal(pc.cast(t[column], pa.float64()), threshold)).select(["id"]),
                batch_format="pyarrow",
            )
            .take_all()
        )
        kept_ties = sorted(row["id"] for row in tied)[:need]
        return pa.table({"id": pa.array(kept_ties, pa.string())}).replace_schema_metadata(
            {THRESHOLD_KEY: repr(threshold).encode()}
        )

    def apply(self, table: pa.Table, summary: pa.Table) -> pa.Table:
        threshold = float(summary.schema.metadata[THRESHOLD_KEY].decode())
        score = pc.cast(table[self.params.column], pa.float64())
        above = pc.fill_null(pc.greater(score, threshold), False)
        tie_kept = pc.and_(
            pc.fill_null(pc.equal(score, threshold), False), pc.is_in(table["id"], summary["id"])
        )
        detail = pc.binary_join_element_wise(
            pc.cast(pc.round(score, 4), pa.string()),
            f"below the top {self.params.keep_top_fraction:.4g} threshold {threshold:.4f}",
            " ",
        )
        return reject_where(table, pc.invert(pc.or_(above, tie_kept)), self.reason, detail, score)
