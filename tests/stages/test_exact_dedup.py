"""Exact image dedup: hashes per batch, one keeper (smallest id) per hash from the global summary."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from pipeline.routing import with_routing
from pipeline.schema import DUPLICATE_OF, MEDIA, REJECT_REASON
from stages.dedup.exact_image import HASH, ExactImageDedup, ExactImageParams


def test_prepare_then_apply_keeps_smallest_id():
    blobs = {"b": b"same", "a": b"same", "c": b"other", "d": b"same"}
    table = with_routing(
        pa.table(
            {
                "id": list(blobs),
                "images": pa.array([[{"bytes": v, "path": None}] for v in blobs.values()], pa.list_(MEDIA)),
            }
        )
    )
    stage = ExactImageDedup(ExactImageParams())
    prepared = stage.prepare(table)
    same = hashlib.sha256(b"same").hexdigest()
    assert prepared[HASH].to_pylist()[0] == same
    summary = pa.table({HASH: [same], "keeper": ["a"], "count": [3]})
    rows = {r["id"]: r for r in stage.apply(prepared, summary).to_pylist()}
    assert rows["a"][REJECT_REASON] is None and rows["a"]["dup_cluster"] == "a"
    assert rows["b"][REJECT_REASON] == "duplicate:exact_image" and rows["b"][DUPLICATE_OF] == "a"
    assert rows["d"][DUPLICATE_OF] == "a"
    assert (
        rows["c"][REJECT_REASON] is None
        and rows["c"]["dup_cluster"] is None
        and rows["c"][DUPLICATE_OF] is None
    )
