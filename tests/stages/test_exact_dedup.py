"""Exact dedup by key (image bytes, normalised caption): one keeper per key across the dataset, chosen
by highest clip_score, then smallest id, whatever the blocks."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from pipeline.routing import with_routing
from pipeline.schema import DUPLICATE_OF, MEDIA, REJECT_REASON
from pipeline.stage import Params
from stages.dedup.exact_caption import ExactCaptionDedup
from stages.dedup.exact_image import HASH, ExactImageDedup


def _run(stage, table: pa.Table, blocks: int) -> dict[str, dict]:
    import ray.data

    prepared = stage.prepare(with_routing(table))
    size = -(-prepared.num_rows // blocks)
    dataset = ray.data.from_arrow([prepared.slice(i, size) for i in range(0, prepared.num_rows, size)])
    return {r["id"]: r for r in stage.apply(prepared, stage.summarize(dataset)).to_pylist()}


def _images(blobs: dict[str, bytes], scores: list[float] | None = None) -> pa.Table:
    columns = {
        "id": list(blobs),
        "images": pa.array([[{"bytes": v, "path": None}] for v in blobs.values()], pa.list_(MEDIA)),
    }
    if scores is not None:
        columns["clip_score"] = pa.array(scores, pa.float32())
    return pa.table(columns)


@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_smallest_id_keeps_without_scores(ray_session, blocks):
    rows = _run(
        ExactImageDedup(Params()), _images({"b": b"same", "a": b"same", "c": b"other", "d": b"same"}), blocks
    )
    assert rows["a"][HASH] == hashlib.sha256(b"same").hexdigest()
    assert rows["a"][REJECT_REASON] is None and rows["a"]["dup_cluster"] == "a"
    assert rows["b"][REJECT_REASON] == "duplicate:exact_image" and rows["b"][DUPLICATE_OF] == "a"
    assert rows["d"][DUPLICATE_OF] == "a" and "same sha256 as a" in rows["d"]["reject_detail"]
    assert (
        rows["c"][REJECT_REASON] is None
        and rows["c"]["dup_cluster"] is None
        and rows["c"][DUPLICATE_OF] is None
    )


def test_highest_clip_score_keeps(ray_session):
    table = _images({"a": b"x", "b": b"x", "c": b"x"}, scores=[0.2, 0.9, 0.9])
    rows = _run(ExactImageDedup(Params()), table, 2)
    assert [rows[i][REJECT_REASON] is None for i in "abc"] == [False, True, False]  # b: best score, then id
    assert rows["a"][DUPLICATE_OF] == rows["c"][DUPLICATE_OF] == "b"


def test_captions_equal_after_normalisation_are_duplicates(ray_session):
    captions = ["A Red Car.", "a red   car", "a red car!!", "a blue car", "", None]
    table = pa.table({"id": list("abcdef"), "caption": captions})
    rows = _run(ExactCaptionDedup(Params()), table, 3)
    assert [rows[i][REJECT_REASON] for i in "abcdef"] == [
        None,
        "duplicate:exact_caption",
        "duplicate:exact_caption",
        None,
        None,
        None,
    ]
    assert rows["b"][DUPLICATE_OF] == "a" and rows["a"]["caption_exact_cluster"] == "a"
