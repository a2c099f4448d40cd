"""`filter.clip_score` through `pipeline run` on Ray, with the project's tiny CLIP model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.query import connect
from stages.fixtures import clip_pairs
from stages.fixtures import images as fx
from stages.fixtures.demo_corpus import mismatched_caption
from stages.fixtures.shards import pair_members, write_tar
from stages.fixtures.tiny_clip import TINY_CLIP_CONFIG, TINY_CLIP_WEIGHTS

PAIRS = 120
MISMATCHED = set(range(3, PAIRS, 6))  # 20 of 120


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clip")
    for shard in range(3):
        members = []
        for i in range(shard * PAIRS // 3, (shard + 1) * PAIRS // 3):
            seed = 30_000_000 + i
            scene = clip_pairs.pair(seed, 128)
            caption = mismatched_caption(seed) if i in MISMATCHED else scene.caption
            members += pair_members(f"{i:06d}", fx.encode(scene.image, "JPEG", quality=90), caption)
        write_tar(root / "tars" / f"{shard:05d}.tar", members)
    return root


def _manifest(root: Path, name: str, clip: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(
        f"""name: {name}
output: out-{name}
stages:
  - stage: ingest.webdataset
    path: tars
    batch_rows: 16
  - stage: filter.clip_score
    model: {TINY_CLIP_CONFIG}
    pretrained: {TINY_CLIP_WEIGHTS}
    batch_size: 8
{clip}"""
    )
    return path


def test_mismatched_pairs_are_rejected_and_matched_kept(corpus, run_cli):
    code, out, err = run_cli("run", _manifest(corpus, "absolute", "    min_score: 0.7\n"))
    assert code == 0, out + err
    con = connect(corpus / "out-absolute")
    rejected = con.execute("SELECT source_key, stage, reason, score FROM rejects").fetchall()
    assert {int(key) for key, *_ in rejected} == MISMATCHED
    assert {(stage, reason) for _, stage, reason, _ in rejected} == {
        ("filter.clip_score", "clip_score_below_min")
    }
    assert all(score < 0.7 for *_, score in rejected)
    kept = con.execute("SELECT min(clip_score), count(*) FROM samples").fetchone()
    assert kept[0] >= 0.7 and kept[1] == PAIRS - len(MISMATCHED)


@pytest.mark.parametrize("actors", [1, 2])
def test_keep_top_fraction_keeps_thirty_percent_of_the_dataset(corpus, run_cli, actors):
    name = f"top-{actors}"
    code, out, err = run_cli(
        "run", _manifest(corpus, name, f"    keep_top_fraction: 0.3\n    num_actors: {actors}\n")
    )
    assert code == 0, out + err
    con = connect(corpus / f"out-{name}")
    kept = con.execute("SELECT count(*), min(clip_score) FROM samples").fetchone()
    worst_kept = kept[1]
    assert abs(kept[0] - 0.3 * PAIRS) <= 1
    reasons = con.execute("SELECT reason, max(score) FROM rejects GROUP BY reason").fetchall()
    assert len(reasons) == 1 and reasons[0][0] == "clip_score_not_in_top_fraction"
    assert reasons[0][1] <= worst_kept  # every reject scored no better than the worst kept pair
    stats = json.loads((corpus / f"out-{name}" / "stats.json").read_text())
    clip = next(s for s in stats["funnel"] if s["stage"] == "filter.clip_score")
    assert clip["rows_in"] == PAIRS and clip["kept"] == kept[0]


def test_an_unloadable_model_stops_the_run_before_any_work(corpus, run_cli):
    manifest = corpus / "bad.yaml"
    manifest.write_text(
        f"""name: bad
output: out-bad
stages:
  - stage: ingest.webdataset
    path: tars
  - stage: filter.clip_score
    model: ViT-B-32
    pretrained: laion2b_s34b_b79k
    cache_dir: {corpus / "empty-cache"}
"""
    )
    code, out, err = run_cli("run", manifest)
    assert code == 2
    assert "stages[1].model: ViT-B-32: pretrained tag 'laion2b_s34b_b79k'" in out + err
    assert "set `pretrained:` to its local path" in out + err
    assert not (corpus / "out-bad").exists()


def test_plan_shows_the_top_fraction_step_under_the_clip_stage(corpus, run_cli):
    code, out, _ = run_cli(
        "plan", _manifest(corpus, "plan", "    keep_top_fraction: 0.3\n"), "--format", "json"
    )
    assert code == 0
    steps = [(s["stage"], s["runs"], s["companion"]) for s in json.loads(out)["stages"]]
    assert steps[1:] == [
        ("filter.clip_score", "filter.clip_score", False),
        ("filter.clip_score", "filter.top_fraction", True),
    ]
