"""Every kind of bad input ends as a reject with a specific reason, or (an unreadable file) as a failed shard;
the run never crashes, completes the other shards, and never writes outside OUT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.query import connect
from stages.fixtures import images as fx
from stages.fixtures.shards import pair_members, write_caption_parquet, write_jsonl, write_tar

CAPTION = "a red circle on a blue background"

EXPECTED_TAR = {
    "truncated": "error:truncated",
    "zerobyte": "error:empty_file",
    "htmljpg": "error:not_an_image",
    "bomb": "error:decompression_bomb",
    "nocaption": "missing_caption",
    "badutf8": "error:caption_not_utf8",
    "hugecaption": "caption_too_long",
    "../evil.txt": "error:unsafe_member_name",
}
ACCEPTED = ("good", "cmyk", "sixteen", "palette", "alpha", "exif")


def _build(root: Path) -> Path:
    members = []
    for key, image in (
        ("good", fx.encode(fx.scene(1).image, "JPEG")),
        ("cmyk", fx.cmyk_jpeg(2)),
        ("sixteen", fx.sixteen_bit_png()),
        ("palette", fx.palette_png(3)),
        ("alpha", fx.alpha_png()),
        ("exif", fx.exif_rotated_jpeg()),
        ("truncated", fx.truncated_jpeg(4)),
        ("zerobyte", b""),
        ("htmljpg", fx.non_image_bytes()),
        ("bomb", fx.decompression_bomb()),
    ):
        ext = "png" if image[:4] == b"\x89PNG" else "jpg"
        members += pair_members(key, image, CAPTION, ext)
    members += pair_members("nocaption", fx.encode(fx.scene(5).image, "JPEG"), None)
    members += pair_members("badutf8", fx.encode(fx.scene(6).image, "JPEG"), b"\xff\xfe caption")
    members += pair_members("hugecaption", fx.encode(fx.scene(7).image, "JPEG"), "word " * 200_000)
    members += [("../evil.txt", b"escape attempt")]
    write_tar(root / "in" / "tars" / "00000.tar", members)

    good = root / "in" / "parquet" / "good.parquet"
    write_caption_parquet(good, [fx.encode(fx.scene(8 + i).image, "JPEG") for i in range(3)], [CAPTION] * 3)
    broken = root / "in" / "parquet" / "truncated.parquet"
    write_caption_parquet(broken, [fx.encode(fx.scene(20).image, "JPEG")], [CAPTION])
    broken.write_bytes(broken.read_bytes()[:-100])
    write_jsonl(root / "in" / "jsonl" / "a.jsonl", [{"image": "missing.jpg", "text": CAPTION}])

    manifest = root / "m.yaml"
    manifest.write_text(
        """
output: out
stages:
  - stage: ingest.webdataset
    path: in/tars
  - stage: ingest.parquet
    path: in/parquet
  - stage: ingest.jsonl
    path: in/jsonl
  - stage: filter.decode
  - stage: filter.image_size
    min_side: 32
  - stage: filter.caption_length
"""
    )
    return manifest


def _snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if "out" not in p.relative_to(root).parts}


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, ray_session):
    from pipeline.cli import main

    root = tmp_path_factory.mktemp("bad")
    manifest = _build(root)
    before = _snapshot(root)
    code = main(["run", str(manifest)])
    return root, code, before


def test_run_completes_other_shards_and_exits_nonzero(bad_run):
    root, code, _ = bad_run
    assert code == 1
    stats = json.loads((root / "out" / "stats.json").read_text())
    [failed] = stats["failed_shards"]
    assert failed["uri"].endswith("truncated.parquet") and failed["stage"] == "ingest.parquet"
    assert "Parquet" in failed["cause"] or "magic" in failed["cause"].lower()
    assert not (root / "out" / "_SUCCESS.json").exists()
    con = connect(root / "out")
    kept = {
        k for (k,) in con.execute("SELECT source_key FROM samples WHERE source = 'webdataset'").fetchall()
    }
    assert kept == set(ACCEPTED)
    assert con.execute("SELECT count(*) FROM samples WHERE source = 'parquet'").fetchone()[0] == 3


def test_each_bad_sample_has_its_specific_reason(bad_run):
    root, _, _ = bad_run
    con = connect(root / "out")
    reasons = dict(
        con.execute("SELECT source_key, reason FROM rejects WHERE source = 'webdataset'").fetchall()
    )
    assert reasons == EXPECTED_TAR
    assert con.execute("SELECT reason FROM rejects WHERE source = 'jsonl'").fetchall() == [
        ("error:missing_image_file",)
    ]


def test_awkward_images_are_stored_as_correct_rgb(bad_run):
    import io

    import numpy as np
    from PIL import Image

    root, _, _ = bad_run
    con = connect(root / "out")
    rows = dict(
        con.execute("SELECT source_key, images[1].bytes FROM samples WHERE source = 'webdataset'").fetchall()
    )
    for key in ACCEPTED:
        image = Image.open(io.BytesIO(rows[key]))
        assert image.mode in ("RGB", "L"), key
    alpha = np.asarray(Image.open(io.BytesIO(rows["alpha"])))
    assert alpha[5, 5].tolist() == [255, 255, 255]
    assert Image.open(io.BytesIO(rows["exif"])).size == (200, 320)


def test_nothing_written_outside_out(bad_run):
    root, _, before = bad_run
    assert _snapshot(root) == before
    assert not (root.parent / "evil.txt").exists() and not (root / "evil.txt").exists()


def test_incomplete_output_can_be_rerun_without_overwrite(bad_run, run_cli):
    root, _, _ = bad_run
    (root / "in" / "parquet" / "truncated.parquet").unlink()
    code, out, _ = run_cli("run", root / "m.yaml")
    assert code == 0 and "complete" in out
    assert (root / "out" / "_SUCCESS.json").exists()


def test_address_joins_an_existing_cluster(bad_run, ray_session, tmp_path):
    """A separate `pipeline` process joins this session's Ray cluster through --address."""
    root, _, _ = bad_run
    address = ray_session.get_runtime_context().gcs_address
    pipeline = Path(sys.executable).with_name("pipeline")
    result = subprocess.run(
        [
            str(pipeline),
            "run",
            str(root / "m.yaml"),
            "--address",
            address,
            "--output",
            str(tmp_path / "joined"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "joined" / "stats.json").read_text())
    assert stats["ray"]["address"] == address
    assert stats["kept"] == len(ACCEPTED) + 3
