"""`dedup.exact_image`: one keeper per set of byte-identical images across the whole dataset.

The key is the sha256 of the image bytes; the keeper is the row with the highest `clip_score` when the
rows have one, then the smallest id (`clusters`), so the result does not depend on block order or
cluster size.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from pipeline.registry import register
from pipeline.schema import MEDIA, first_image
from pipeline.stage import Column, Params
from stages.dedup.exact_key import ExactKeyDedup

HASH = "image_sha256"


@register
class ExactImageDedup(ExactKeyDedup):
    name = "dedup.exact_image"
    Params = Params
    requires = (Column("images", pa.list_(MEDIA)),)
    produces = (Column(HASH, pa.string()), Column("dup_cluster", pa.string()))
    key_column, cluster_column = HASH, "dup_cluster"
    reason, detail = "duplicate:exact_image", "same sha256 as"

    def keys(self, table: pa.Table) -> pa.Array:
        blobs = first_image(table["images"])
        return pa.array(
            [hashlib.sha256(b).hexdigest() if b is not None else None for b in blobs], pa.string()
        )
