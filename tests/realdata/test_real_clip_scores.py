"""The tiny CLIP model on Data-Juicer's real captioned photos, through `pipeline run` on Ray.

The tiny model knows only generated shapes, so nothing is asserted about which pairs it prefers: only
that every real photo gets a finite cosine in [-1, 1], and the same one on a second run.
"""

from __future__ import annotations

import json
import math

import pytest

from pipeline.query import connect
from stages.fixtures.tiny_clip import TINY_CLIP_CONFIG, TINY_CLIP_WEIGHTS


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, realdata):
    work = tmp_path_factory.mktemp("real-clip")
    source = realdata / "data-juicer" / "captions_images.jsonl"
    path = work / "clip.yaml"
    path.write_text(
        f"""name: real-clip
stages:
  - stage: ingest.jsonl
    path: {source}
    image_root: {source.parent}
  - stage: filter.clip_score
    model: {TINY_CLIP_CONFIG}
    pretrained: {TINY_CLIP_WEIGHTS}
    batch_size: 4
"""
    )
    return path


def _scores(run_cli, manifest, out) -> dict[str, float]:
    code, stdout, stderr = run_cli("run", manifest, "--output", out)
    assert code == 0, stdout + stderr
    return dict(connect(out).execute("SELECT source_key, clip_score FROM samples").fetchall())


def test_real_photos_get_finite_stable_scores(manifest, run_cli, realdata, tmp_path):
    lines = (realdata / "data-juicer" / "captions_images.jsonl").read_text().splitlines()
    first = _scores(run_cli, manifest, tmp_path / "a")
    second = _scores(run_cli, manifest, tmp_path / "b")
    assert len(first) == len([json.loads(line) for line in lines if line.strip()])
    assert all(math.isfinite(v) and -1 <= v <= 1 for v in first.values())
    assert first == second
    print("tiny CLIP scores on data-juicer captions_images.jsonl:", json.dumps(first, indent=1))
