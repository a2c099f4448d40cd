"""Real photos through `pipeline run` with exact and perceptual dedup: copies found, distinct kept.

img2dataset's `blur_original.png` is a lossless PNG of `389_535.jpg` (different bytes, same pixels);
half-size, JPEG q30 and 2%-cropped copies of every real photo are made here. Each copy must land in its
original's cluster, byte-identical copies must go to the exact stage first, and no two distinct photos
may be merged.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from pipeline.query import connect

CAPTION = "a real photograph used as a test fixture"
VARIANTS = ("half", "q30", "crop2")


def _variants(image: Image.Image) -> dict[str, bytes]:
    w, h = image.size
    out = {}
    for name, variant, quality in (
        ("half", image.resize((max(16, w // 2), max(16, h // 2)), Image.Resampling.LANCZOS), 90),
        ("q30", image, 30),
        ("crop2", image.crop((w // 50, h // 50, w - w // 50, h - h // 50)), 90),
    ):
        buffer = io.BytesIO()
        variant.save(buffer, "JPEG", quality=quality)
        out[name] = buffer.getvalue()
    return out


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory, ray_session, realdata):
    from pipeline.cli import main

    work = tmp_path_factory.mktemp("real-dedup")
    photos = sorted((realdata / "img2dataset" / "images").iterdir())
    originals = photos + sorted((realdata / "data-juicer" / "images").iterdir())
    records = [{"image": str(p), "text": CAPTION, "key": p.name} for p in originals]
    records += [
        {"image": str(p), "text": CAPTION, "key": f"exact/{p.name}"}
        for p in sorted((realdata / "data-juicer" / "images_exact_dups").iterdir())
    ]
    for path in photos:
        for name, data in _variants(Image.open(path).convert("RGB")).items():
            target = work / f"{path.stem}.{name}.jpg"
            target.write_bytes(data)
            records.append({"image": str(target), "text": CAPTION, "key": f"{name}/{path.name}"})
    (work / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (work / "dedup.yaml").write_text(
        """name: real-dedup
output: out
stages:
  - stage: ingest.jsonl
    path: pairs.jsonl
    key_field: key
  - stage: filter.decode
  - stage: dedup.exact_image
  - stage: dedup.phash_image
"""
    )
    assert main(["run", str(work / "dedup.yaml")]) == 0
    con = connect(work / "out")
    rows = con.execute(
        "SELECT source_key, phash_cluster, NULL, NULL FROM samples "
        "UNION ALL SELECT r.source_key, NULL, r.reason, k.source_key FROM rejects r "
        "LEFT JOIN (SELECT id, source_key FROM samples UNION ALL SELECT id, source_key FROM rejects) k "
        "ON r.duplicate_of = k.id"
    ).fetchall()
    return {key: {"cluster": c, "reason": r, "keeper": k} for key, c, r, k in rows}


def _keeper(run: dict, key: str) -> str:
    """The kept row a row was folded into, following exact-then-perceptual chains."""
    while run[key]["reason"] is not None:
        key = run[key]["keeper"]
    return key


def test_blur_original_is_a_perceptual_duplicate_of_its_jpeg(dedup_run):
    assert _keeper(dedup_run, "389_535.jpg") == _keeper(dedup_run, "blur_original.png")
    assert "duplicate:perceptual_image" in {
        dedup_run["389_535.jpg"]["reason"],
        dedup_run["blur_original.png"]["reason"],
    }


def test_resized_recompressed_and_cropped_copies_join_their_original(dedup_run, realdata):
    for path in sorted((realdata / "img2dataset" / "images").iterdir()):
        family = [path.name] + [f"{v}/{path.name}" for v in VARIANTS]
        if path.name in ("389_535.jpg", "blur_original.png"):
            family += [f"{v}/{n}" for n in ("389_535.jpg", "blur_original.png") for v in VARIANTS]
            family += ["389_535.jpg", "blur_original.png"]
        rows = {key: dedup_run[key] for key in family}
        kept = [key for key, r in rows.items() if r["reason"] is None]
        assert len(kept) == 1, (path.name, rows)
        assert {_keeper(dedup_run, key) for key in family} == set(kept)
        assert (
            {r["reason"] for key, r in rows.items() if key != kept[0]}
            <= {
                "duplicate:perceptual_image",
                "duplicate:exact_image",  # 389_535.jpg and blur_original.png have the same pixels: so do their copies
            }
        )


def test_exact_copies_go_to_the_exact_stage(dedup_run):
    copies = [k for k in dedup_run if k.startswith("exact/")]
    exact_rejects = {k: v for k, v in dedup_run.items() if v["reason"] == "duplicate:exact_image"}
    keepers = {v["keeper"] for v in exact_rejects.values()}
    assert copies and all(k in exact_rejects or k in keepers for k in copies)
    # byte-identical files of data-juicer plus the same-pixel copies of 389_535.jpg / blur_original.png
    assert len([k for k in exact_rejects if not k.endswith(("389_535.jpg", "blur_original.png"))]) == len(
        copies
    )


def test_distinct_photos_are_not_merged(dedup_run, realdata):
    distinct = [p.name for p in sorted((realdata / "data-juicer" / "images").iterdir())]
    distinct += [
        p.name
        for p in sorted((realdata / "img2dataset" / "images").iterdir())
        if p.name != "blur_original.png"
    ]
    perceptual = [n for n in distinct if dedup_run[n]["reason"] == "duplicate:perceptual_image"]
    for name in perceptual:  # only ever folded into one of its own copies
        assert _keeper(dedup_run, name).endswith(name) or {name, _keeper(dedup_run, name).split("/")[-1]} == {
            "389_535.jpg",
            "blur_original.png",
        }, (name, dedup_run[name])
    clusters = [
        dedup_run[n]["cluster"]
        for n in distinct
        if dedup_run[n]["reason"] is None and dedup_run[n]["cluster"]
    ]
    assert len(clusters) == len(set(clusters))
