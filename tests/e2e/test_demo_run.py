"""`pipeline run manifests/demo.yaml` on Ray: the funnel adds up, the output is queryable and verifiable."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from pipeline.commit import verify_success
from pipeline.query import connect
from stages.fixtures.demo_corpus import PAIRS_PER_TAR, TAR_SHARDS, build_demo_inputs

REPO = Path(__file__).resolve().parents[2]
INPUT_ROWS = TAR_SHARDS * PAIRS_PER_TAR + 30 + 20  # tars + parquet + jsonl, as the corpus builder writes them


@pytest.fixture(scope="module")
def demo(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("demo")
    (root / "manifests").mkdir()
    shutil.copy(REPO / "manifests" / "demo.yaml", root / "manifests" / "demo.yaml")
    (root / "models").symlink_to(REPO / "models")  # the demo's CLIP model, by the manifest's relative path
    expected = build_demo_inputs(root / ".demo" / "inputs")
    return root, expected


@pytest.fixture(scope="module")
def demo_run(demo):
    from pipeline.cli import main

    root, expected = demo
    code = main(["run", str(root / "manifests" / "demo.yaml")])
    return root, expected, code


def test_demo_completes_and_rejects_what_the_corpus_plants(demo_run):
    root, expected, code = demo_run
    assert code == 0
    stats = json.loads((root / "demo_out" / "stats.json").read_text())
    assert stats["rows_in"] == INPUT_ROWS
    found = {}
    for stage in stats["funnel"]:
        found.update(stage["reasons"])
    assert found == dict(expected)
    assert stats["kept"] == INPUT_ROWS - sum(expected.values())
    assert stats["failed_shards"] == []


def test_every_stage_conserves_rows(demo_run):
    root, _, _ = demo_run
    funnel = json.loads((root / "demo_out" / "stats.json").read_text())["funnel"]
    for stage in funnel:
        assert stage["rows_in"] == stage["kept"] + stage["rejected"], stage
        assert stage["rejected"] == sum(stage["reasons"].values())
    steps = funnel[3:]  # after the three sources
    assert steps[0]["rows_in"] == sum(s["kept"] for s in funnel[:3])
    for before, after in itertools.pairwise(steps):
        assert after["rows_in"] == before["kept"]
    assert all(s["rejected"] > 0 for s in steps), "every demo stage must show visible work"


def test_output_is_queryable_and_consistent(demo_run):
    root, expected, _ = demo_run
    con = connect(root / "demo_out")
    kept, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM samples").fetchone()
    rejected = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
    assert kept == distinct and kept + rejected == INPUT_ROWS
    assert con.execute("SELECT count(*) FROM samples s JOIN rejects r USING (id)").fetchone()[0] == 0
    assert (
        con.execute("SELECT count(*) FROM rejects WHERE stage IS NULL OR reason IS NULL").fetchone()[0] == 0
    )
    dangling = con.execute(
        "SELECT count(*) FROM rejects WHERE reason = 'duplicate:exact_image' AND duplicate_of NOT IN (SELECT id FROM samples)"
    ).fetchone()[0]
    assert dangling == 0
    assert (
        con.execute("SELECT min(width), min(least(aspect_ratio, 1 / aspect_ratio)) FROM samples").fetchone()[
            0
        ]
        >= 64
    )
    assert (
        con.execute(
            "SELECT count(*) FROM samples WHERE len(images) != 1 OR images[1].bytes IS NULL"
        ).fetchone()[0]
        == 0
    )
    by_reason = dict(con.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall())
    assert by_reason == dict(expected)
    assert verify_success(root / "demo_out") == []


def test_query_cli_formats(demo_run, run_cli):
    root, _, _ = demo_run
    code, out, _ = run_cli(
        "query",
        root / "demo_out",
        "SELECT reason, count(*) AS n FROM rejects GROUP BY 1 ORDER BY 1",
        "--format",
        "json",
    )
    assert code == 0 and {"reason": "empty_caption", "n": 12} in json.loads(out)
    code, out, _ = run_cli("query", root / "demo_out", "SELECT count(*) AS n FROM samples", "--format", "csv")
    assert out.splitlines()[0] == "n" and int(out.splitlines()[1]) > 0
    code, _, err = run_cli("query", root / "demo_out", "SELECT nope FROM samples")
    assert code == 1 and "query failed" in err


def test_rerun_refuses_then_overwrites_identically(demo_run, run_cli):
    root, _, _ = demo_run
    manifest = root / "manifests" / "demo.yaml"
    before = json.loads((root / "demo_out" / "_SUCCESS.json").read_text())
    code, _, err = run_cli("run", manifest)
    assert code == 2 and "--overwrite" in err
    code, out, _ = run_cli("run", manifest, "--overwrite")
    assert code == 0 and "Funnel" in out and "pipeline query" in out
    after = json.loads((root / "demo_out" / "_SUCCESS.json").read_text())
    assert [(f["path"], f["rows"], f["sha256"]) for f in after["files"]] == [
        (f["path"], f["rows"], f["sha256"]) for f in before["files"]
    ]
    assert after["manifest_fingerprint"] == before["manifest_fingerprint"]


def test_same_rows_whatever_the_batch_size(demo_run, run_cli):
    """Kept ids and reject reasons do not depend on how rows are batched and blocked."""
    root, _, _ = demo_run
    text = (root / "manifests" / "demo.yaml").read_text()
    variant = text.replace(
        "path: ../.demo/inputs/webdataset", "path: ../.demo/inputs/webdataset\n    batch_rows: 7"
    )
    variant = variant.replace(
        "path: ../.demo/inputs/parquet", "path: ../.demo/inputs/parquet\n    batch_rows: 4"
    )
    assert variant != text
    (root / "manifests" / "small_batches.yaml").write_text(variant)
    code, _, err = run_cli("run", root / "manifests" / "small_batches.yaml", "--output", root / "small_out")
    assert code == 0, err

    def outcome(out: Path) -> tuple[set, set]:
        con = connect(out)
        kept = {r for (r,) in con.execute("SELECT id FROM samples").fetchall()}
        rejected = set(con.execute("SELECT id, stage, reason, duplicate_of FROM rejects").fetchall())
        return kept, rejected

    assert outcome(root / "small_out") == outcome(root / "demo_out")
