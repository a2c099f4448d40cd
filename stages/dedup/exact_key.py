"""Exact duplicates by a per-row key (an image hash, a normalised-caption hash), across the dataset.

`prepare` computes the key per batch; the summary shuffles only (key, id, clip_score) between Ray tasks
(`exchange`), so each key's rows meet in one task, which picks the keeper (`clusters`); only rows of
keys shared by two or more rows come back.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.schema import set_column
from pipeline.stage import GlobalStage
from stages.dedup.clusters import SCORE, apply_keepers, keepers_by_key
from stages.dedup.exchange import cluster_parts


class ExactKeyDedup(GlobalStage):
    """Subclasses set `key_column`, `cluster_column`, `reason`, `detail` and implement `keys`."""

    key_column: str
    cluster_column: str
    reason: str
    detail: str

    def keys(self, table: pa.Table) -> pa.Array:
        raise NotImplementedError

    def prepare(self, table: pa.Table) -> pa.Table:
        return set_column(table, self.key_column, self.keys(table), pa.string())

    def summarize(self, dataset) -> pa.Table:
        import ray

        columns = [self.key_column, "id"] + ([SCORE] if SCORE in dataset.schema().names else [])
        key = self.key_column

        def keyed(table: pa.Table) -> pa.Table:
            return table.select(columns).filter(table[key].is_valid())

        refs = [ray.remote(keyed).remote(ref) for ref in dataset.to_arrow_refs()]
        return keepers_by_key(refs, key, cluster_parts())

    def apply(self, table: pa.Table, summary: pa.Table) -> pa.Table:
        return apply_keepers(table, summary, self.cluster_column, self.reason, self.detail)
