"""Filters on pyarrow tables: the right rows rejected with the right reason, scores kept on every row."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.routing import run_on_active, with_routing
from pipeline.schema import MEDIA, REJECT_REASON, REJECT_SCORE
from stages.filter.aspect_ratio import AspectRatioFilter, AspectRatioParams
from stages.filter.caption_length import CaptionLengthFilter, CaptionLengthParams
from stages.filter.decode import DecodeFilter, DecodeParams
from stages.filter.image_size import ImageSizeFilter, ImageSizeParams
from stages.fixtures import images as fx


def _sizes(pairs: list[tuple[int, int]]) -> pa.Table:
    return with_routing(
        pa.table(
            {
                "id": [f"r{i}" for i in range(len(pairs))],
                "width": pa.array([w for w, _ in pairs], pa.int32()),
                "height": pa.array([h for _, h in pairs], pa.int32()),
            }
        )
    )


def test_aspect_ratio_bounds_are_inclusive_and_scored():
    stage = AspectRatioFilter(AspectRatioParams(min_aspect_ratio=0.5, max_aspect_ratio=3.0))
    out = stage.process(_sizes([(300, 100), (301, 100), (100, 200), (100, 201), (456, 123)]))
    assert out[REJECT_REASON].to_pylist() == [
        None,
        "aspect_ratio_out_of_range",
        None,
        "aspect_ratio_out_of_range",
        "aspect_ratio_out_of_range",
    ]
    assert out["aspect_ratio"].to_pylist()[0] == pytest.approx(3.0)
    assert out[REJECT_SCORE].to_pylist()[4] == pytest.approx(456 / 123)
    assert out["reject_detail"][4].as_py() == "3.707 outside [0.500, 3.000]"


def test_image_size_min_and_max_side():
    stage = ImageSizeFilter(ImageSizeParams(min_side=200, max_side=1000))
    out = stage.process(_sizes([(200, 200), (199, 500), (1001, 300), (1000, 999)]))
    assert out[REJECT_REASON].to_pylist() == [None, "image_too_small", "image_too_large", None]
    assert out["reject_detail"][1].as_py() == "199x500 shorter side < 200"


def test_image_size_default_follows_datacomp():
    assert ImageSizeParams().min_side == 200


def test_caption_length_rules():
    captions = ["a red circle", "", "   \n\t", None, "cat", "two words", "word " * 1000, "ab cd e"]
    table = with_routing(
        pa.table({"id": [str(i) for i in range(len(captions))], "caption": pa.array(captions, pa.string())})
    )
    out = CaptionLengthFilter(CaptionLengthParams()).process(table)
    assert out[REJECT_REASON].to_pylist() == [
        None,
        "empty_caption",
        "empty_caption",
        "empty_caption",
        "caption_too_short",
        "caption_too_short",
        "caption_too_long",
        None,
    ]
    assert out["caption_words"].to_pylist()[0] == 3 and out["caption_chars"].to_pylist()[6] == 4999


def test_decode_filter_sets_dimensions_and_normalises():
    blobs = [fx.encode(fx.scene(1).image, "JPEG"), b"", fx.exif_rotated_jpeg(320, 200), None]
    images = [None if b is None else [{"bytes": b, "path": "p"}] for b in blobs]
    table = with_routing(pa.table({"id": ["a", "b", "c", "d"], "images": pa.array(images, pa.list_(MEDIA))}))
    out = run_on_active(table, "filter.decode", DecodeFilter(DecodeParams()).process)
    rows = {r["id"]: r for r in out.to_pylist()}
    assert (rows["a"]["width"], rows["a"]["height"], rows["a"][REJECT_REASON]) == (320, 240, None)
    assert rows["a"]["images"][0]["bytes"] == blobs[0]
    assert rows["b"][REJECT_REASON] == "error:empty_file" and rows["b"]["images"] is None
    assert (rows["c"]["width"], rows["c"]["height"]) == (200, 320)
    assert rows["c"]["images"][0]["bytes"] != blobs[2] and rows["c"]["images"][0]["path"] == "p"
    assert rows["d"][REJECT_REASON] == "error:empty_file"
