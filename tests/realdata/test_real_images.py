"""Real images from ../shared/realdata through `pipeline run` on Ray: which are kept, which rejected, and why.

Data-Juicer's byte-identical copies must collapse to one keeper each; img2dataset's extreme aspect ratios
must go; RGBA screenshots and 1-bit TIFF pages must be accepted as RGB.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.query import connect

DUPLICATE_GROUPS = [{"img1.png", "img4.png"}, {"img2.jpg", "img5.jpg"}, {"img3.jpg", "img6.jpg", "img7.jpg"}]
CAPTION = "a real photograph used as a test fixture"


def _records(root: Path, folders: list[str]) -> list[dict]:
    return [
        {"image": f"{folder}/{p.name}", "text": CAPTION, "key": p.name}
        for folder in folders
        for p in sorted((root / folder).iterdir())
    ]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, ray_session, realdata):
    from pipeline.cli import main

    work = tmp_path_factory.mktemp("real")
    (work / "dj").mkdir()
    (work / "i2d").mkdir()
    (work / "misc").mkdir()
    dj = realdata / "data-juicer"
    (work / "dj" / "pairs.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _records(dj, ["images", "images_exact_dups"]))
    )
    i2d = realdata / "img2dataset"
    (work / "i2d" / "pairs.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _records(i2d, ["images"]))
    )
    misc = [
        {"image": str(realdata / "ocr-easyocr/images/english.png"), "text": CAPTION, "key": "english.png"},
        {
            "image": str(realdata / "ocr-tesseract/images/phototest.tif"),
            "text": CAPTION,
            "key": "phototest.tif",
        },
    ]
    (work / "misc" / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in misc))
    (work / "m.yaml").write_text(
        f"""
output: out
stages:
  - stage: ingest.jsonl
    path: dj
    source: data-juicer
    key_field: key
    image_root: {dj}
  - stage: ingest.jsonl
    path: i2d
    source: img2dataset
    key_field: key
    image_root: {i2d}
  - stage: ingest.jsonl
    path: misc
    source: misc
    key_field: key
  - stage: filter.decode
  - stage: filter.image_size
    min_side: 100
  - stage: filter.aspect_ratio
  - stage: dedup.exact_image
"""
    )
    assert main(["run", str(work / "m.yaml")]) == 0
    return connect(work / "out")


def test_exact_duplicates_collapse_to_one_keeper(real_run):
    kept = {
        k: i
        for k, i in real_run.execute(
            "SELECT source_key, id FROM samples WHERE source = 'data-juicer'"
        ).fetchall()
    }
    dups = {
        k: d
        for k, d in real_run.execute(
            "SELECT source_key, duplicate_of FROM rejects WHERE reason = 'duplicate:exact_image'"
        ).fetchall()
    }
    for group in DUPLICATE_GROUPS:
        keepers = group & kept.keys()
        assert len(keepers) == 1, group
        [keeper] = keepers
        assert {dups[name] for name in group - keepers} == {kept[keeper]}
    assert set(kept) == {"blip.jpg", "cat.jpg", "img8.jpg", "img9.jpg", "img10.jpg"} | {
        next(iter(g & kept.keys())) for g in DUPLICATE_GROUPS
    }


def test_extreme_aspect_ratios_are_rejected(real_run):
    rejected = dict(
        real_run.execute("SELECT source_key, reason FROM rejects WHERE source = 'img2dataset'").fetchall()
    )
    assert rejected == {
        "123_456.jpg": "aspect_ratio_out_of_range",
        "456_123.jpg": "aspect_ratio_out_of_range",
    }
    kept = {
        k: (w, h)
        for k, w, h in real_run.execute(
            "SELECT source_key, width, height FROM samples WHERE source = 'img2dataset'"
        ).fetchall()
    }
    assert kept["208_495.jpg"] == (208, 495)  # ratio 0.42 is inside [1/3, 3]
    assert set(kept) == {
        "208_495.jpg",
        "321_421.jpg",
        "389_535.jpg",
        "416_264.jpg",
        "524_316.jpg",
        "blur_original.png",
    }


def test_rgba_and_one_bit_images_are_accepted_as_rgb(real_run):
    rows = real_run.execute(
        "SELECT source_key, image_mode, images[1].bytes FROM samples WHERE source = 'misc'"
    ).fetchall()
    modes = {k: m for k, m, _ in rows}
    assert modes == {"english.png": "RGBA", "phototest.tif": "1"}
    for _, _, data in rows:
        assert Image.open(io.BytesIO(data)).mode == "RGB"


def test_real_run_conserves_rows(real_run):
    kept = real_run.execute("SELECT count(*) FROM samples").fetchone()[0]
    rejected = real_run.execute("SELECT count(*) FROM rejects").fetchone()[0]
    assert kept + rejected == 12 + 8 + 2
