"""`dedup.exact_caption`: one keeper per set of captions equal after normalisation.

Normalised as the MinHash shingles are (lowercase, punctuation to spaces, whitespace collapsed), so
"A Red Car." and "a red car" are one caption; empty captions have no key and are never merged.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from pipeline.registry import register
from pipeline.stage import Column, Params
from stages.dedup.exact_key import ExactKeyDedup
from stages.dedup.minhash_signature import normalise_text

HASH = "caption_sha256"


@register
class ExactCaptionDedup(ExactKeyDedup):
    name = "dedup.exact_caption"
    Params = Params
    requires = (Column("caption", pa.string()),)
    produces = (Column(HASH, pa.string()), Column("caption_exact_cluster", pa.string()))
    key_column, cluster_column = HASH, "caption_exact_cluster"
    reason, detail = "duplicate:exact_caption", "same normalised caption as"

    def keys(self, table: pa.Table) -> pa.Array:
        normalised = [normalise_text(c) if c is not None else "" for c in table["caption"].to_pylist()]
        return pa.array(
            [hashlib.sha256(n.encode()).hexdigest() if n else None for n in normalised], pa.string()
        )
