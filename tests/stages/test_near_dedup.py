"""Near-duplicate stages on small tables through Ray: what they merge, what they leave, and the
keeper rule (highest clip_score, then smallest id)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.routing import with_routing
from pipeline.schema import DUPLICATE_OF, MEDIA, REJECT_REASON
from stages.dedup.minhash_caption import CLUSTER, MinHashCaptionDedup, MinHashCaptionParams
from stages.dedup.phash_image import PhashImageDedup, PhashParams
from stages.fixtures import clip_pairs
from stages.fixtures import images as fx


def _run(stage, table: pa.Table, blocks: int = 2) -> dict[str, dict]:
    import ray.data

    prepared = stage.prepare(with_routing(table))
    size = -(-prepared.num_rows // blocks)
    dataset = ray.data.from_arrow([prepared.slice(i, size) for i in range(0, prepared.num_rows, size)])
    return {r["id"]: r for r in stage.apply(prepared, stage.summarize(dataset)).to_pylist()}


def test_minhash_merges_near_duplicate_captions_and_keeps_the_best_scored(ray_session):
    captions = [
        "a red circle on the left of a blue background in the morning",
        "a red circle on the left of a blue background in the morning light",
        "A red circle, on the left of a blue background in the morning!",
        "three green squares on a yellow background",
        None,
        "",
    ]
    table = pa.table(
        {
            "id": list("abcdef"),
            "caption": captions,
            "clip_score": pa.array([0.1, 0.9, 0.5, 0.3, 0.2, 0.2], pa.float32()),
        }
    )
    rows = _run(MinHashCaptionDedup(MinHashCaptionParams(threshold=0.6, ngram=3)), table)
    assert rows["b"][REJECT_REASON] is None and rows["b"][CLUSTER] == "b"  # best clip_score keeps
    assert rows["a"][DUPLICATE_OF] == rows["c"][DUPLICATE_OF] == "b"
    assert {rows[i][REJECT_REASON] for i in "ac"} == {"duplicate:minhash_caption"}
    assert all(rows[i][REJECT_REASON] is None and rows[i][CLUSTER] is None for i in "def")


@pytest.mark.parametrize("stage", ["minhash", "phash"])
def test_nothing_to_merge_rejects_nothing(ray_session, stage):
    scenes = [clip_pairs.pair(seed, 96) for seed in range(5)]
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(5)],
            "caption": [f"caption number {i} about something else entirely {i * 7}" for i in range(5)],
            "images": pa.array(
                [[{"bytes": fx.encode(s.image, "JPEG"), "path": None}] for s in scenes], pa.list_(MEDIA)
            ),
        }
    )
    built = (
        MinHashCaptionDedup(MinHashCaptionParams(ngram=2))
        if stage == "minhash"
        else PhashImageDedup(PhashParams(max_distance=4))
    )
    rows = _run(built, table)
    assert all(r[REJECT_REASON] is None for r in rows.values())


def test_phash_finds_a_recompressed_copy_but_not_an_undecodable_file(ray_session):
    image = clip_pairs.pair(3, 256).image
    blobs = [fx.encode(image, "JPEG", quality=90), fx.encode(image, "JPEG", quality=40), fx.non_image_bytes()]
    table = pa.table(
        {
            "id": ["x", "y", "z"],
            "images": pa.array([[{"bytes": b, "path": None}] for b in blobs], pa.list_(MEDIA)),
        }
    )
    rows = _run(PhashImageDedup(PhashParams()), table, blocks=3)
    assert rows["y"][REJECT_REASON] == "duplicate:perceptual_image" and rows["y"][DUPLICATE_OF] == "x"
    assert rows["z"][REJECT_REASON] is None and rows["z"]["image_phash"] is None
