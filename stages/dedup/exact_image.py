"""`dedup.exact_image`: one keeper per set of byte-identical images across the whole dataset.

The hash is taken per batch, duplicate hashes are found with a distributed Ray aggregation (count and
smallest id per hash), and only the duplicated hashes travel back to the batches. The keeper is the
smallest id, so the result does not depend on block order or cluster size.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipeline.registry import register
from pipeline.schema import DUPLICATE_OF, MEDIA, first_image, set_column
from pipeline.stage import Column, GlobalStage, Params
from stages.filter.columns import reject_where

HASH = "image_sha256"
REASON = "duplicate:exact_image"


class ExactImageParams(Params):
    num_partitions: int = Field(8, ge=1, description="hash partitions of the Ray aggregation")


@register
class ExactImageDedup(GlobalStage):
    name = "dedup.exact_image"
    Params = ExactImageParams
    requires = (Column("images", pa.list_(MEDIA)),)
    produces = (Column(HASH, pa.string()), Column("dup_cluster", pa.string()))

    def prepare(self, table: pa.Table) -> pa.Table:
        hashes = [
            hashlib.sha256(blob).hexdigest() if blob is not None else None
            for blob in first_image(table["images"])
        ]
        return set_column(table, HASH, pa.array(hashes, pa.string()))

    def summarize(self, dataset) -> pa.Table:
        from ray.data.aggregate import Count, Min

        grouped = dataset.select_columns([HASH, "id"]).groupby(
            HASH, num_partitions=self.params.num_partitions
        )
        counted = grouped.aggregate(Count(), Min("id"))
        parts = counted.map_batches(
            lambda t: t.filter(pc.greater(t["count()"], 1)), batch_format="pyarrow"
        ).take_all()
        rows = [{HASH: r[HASH], "keeper": r["min(id)"], "count": r["count()"]} for r in parts]
        return pa.Table.from_pylist(
            rows, schema=pa.schema([(HASH, pa.string()), ("keeper", pa.string()), ("count", pa.int64())])
        )

    def apply(self, table: pa.Table, summary: pa.Table) -> pa.Table:
        position = pc.index_in(table[HASH], value_set=summary[HASH])
        keeper = pc.take(summary["keeper"], position)
        table = set_column(table, "dup_cluster", keeper, pa.string())
        loser = pc.and_(pc.is_valid(keeper), pc.not_equal(keeper, table["id"]))
        table = reject_where(table, loser, REASON, pc.binary_join_element_wise("same sha256 as", keeper, " "))
        return set_column(
            table, DUPLICATE_OF, pc.if_else(loser, keeper, pa.nulls(table.num_rows, pa.string())), pa.string()
        )
