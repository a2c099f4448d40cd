"""`filter.clip_score` on pyarrow tables: scores equal open_clip's own computation, rejects say why."""

from __future__ import annotations

import io

import numpy as np
import open_clip
import pyarrow as pa
import pytest
import torch
from PIL import Image

from pipeline.schema import REJECT_REASON, media_list
from stages.clip.model import ClipLoadError, load_clip
from stages.filter.clip_score import EMBEDDING, SCORE, ClipScore, ClipScoreParams
from stages.fixtures import clip_pairs
from stages.fixtures import images as fx
from stages.fixtures.tiny_clip import TINY_CLIP_CONFIG, TINY_CLIP_WEIGHTS

LONG_CAPTION = "a red circle on a blue background " * 20  # far past the 16-token context


def _stage(**params) -> ClipScore:
    stage = ClipScore(
        ClipScoreParams(
            model=str(TINY_CLIP_CONFIG), pretrained=str(TINY_CLIP_WEIGHTS), batch_size=4, **params
        )
    )
    stage.setup()
    return stage


def _table(blobs: list[bytes | None], captions: list[str]) -> pa.Table:
    return pa.table(
        {
            "id": [f"row{i}" for i in range(len(blobs))],
            "images": media_list(blobs, [None] * len(blobs)),
            "caption": captions,
        }
    )


def _pairs(count: int, start: int = 20_000_000) -> tuple[list[bytes], list[str]]:
    scenes = list(clip_pairs.pairs(start, count, size=96))
    return [fx.encode(s.image, "JPEG", quality=90) for s in scenes], [s.caption for s in scenes]


def _direct_scores(blobs: list[bytes], captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """What a user would compute by hand with open_clip: encode, normalise, dot."""
    open_clip.add_model_config(TINY_CLIP_CONFIG)
    model, _, preprocess = open_clip.create_model_and_transforms(
        TINY_CLIP_CONFIG.stem, pretrained=str(TINY_CLIP_WEIGHTS)
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_CLIP_CONFIG.stem)
    pixels = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
    with torch.inference_mode():
        image = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        text = torch.nn.functional.normalize(model.encode_text(tokenizer(captions)), dim=-1)
    return (image * text).sum(-1).numpy(), image.numpy()


def test_scores_equal_a_direct_open_clip_computation():
    blobs, captions = _pairs(10)
    captions[3] = LONG_CAPTION
    out = _stage(store_embedding=True, jpeg_draft=False).process(_table(blobs, captions))
    expected, embeddings = _direct_scores(blobs, captions)
    np.testing.assert_allclose(out[SCORE].to_numpy(), expected, atol=1e-5)
    assert REJECT_REASON not in out.column_names or out[REJECT_REASON].null_count == len(blobs)
    stored = np.stack([np.frombuffer(v, "<f2") for v in out[EMBEDDING].to_pylist()]).astype(np.float32)
    np.testing.assert_allclose(stored, embeddings, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=2e-3)


def test_jpeg_draft_decoding_barely_moves_scores_of_large_images():
    scenes = list(clip_pairs.pairs(20_000_100, 8, size=640))
    blobs = [fx.encode(s.image, "JPEG", quality=90) for s in scenes]
    table = _table(blobs, [s.caption for s in scenes])
    exact = _stage(jpeg_draft=False).process(table)[SCORE].to_numpy()
    drafted = _stage(jpeg_draft=True).process(table)[SCORE].to_numpy()
    np.testing.assert_allclose(drafted, _direct_scores(blobs, [s.caption for s in scenes])[0], atol=0.02)
    np.testing.assert_allclose(exact, _direct_scores(blobs, [s.caption for s in scenes])[0], atol=1e-5)
    assert not np.allclose(drafted, exact, atol=1e-7)  # the draft path really decoded at a smaller scale


def test_undecodable_images_are_rejected_and_not_scored():
    blobs, captions = _pairs(5)
    blobs[1], blobs[4] = fx.non_image_bytes(), fx.truncated_jpeg()
    out = _stage().process(_table(blobs, captions))
    assert out[REJECT_REASON].to_pylist() == [None, "error:not_an_image", None, None, "error:truncated"]
    scores = out[SCORE].to_pylist()
    assert scores[1] is None and scores[4] is None
    assert all(isinstance(scores[i], float) for i in (0, 2, 3))


def test_min_score_rejects_pairs_below_it_with_their_score():
    blobs, captions = _pairs(12)
    scores = _stage().process(_table(blobs, captions))[SCORE].to_numpy()
    threshold = float(np.median(scores))
    out = _stage(min_score=threshold).process(_table(blobs, captions))
    reasons = out[REJECT_REASON].to_pylist()
    assert [r == "clip_score_below_min" for r in reasons] == list(scores < threshold)
    assert out["reject_score"].to_pylist()[int(np.argmin(scores))] == pytest.approx(
        float(scores.min()), abs=1e-6
    )


def test_embedding_column_type_follows_the_model():
    stage = ClipScore(ClipScoreParams(model=str(TINY_CLIP_CONFIG), pretrained="random", store_embedding=True))
    assert {c.name: c.type for c in stage.produces}[EMBEDDING] == pa.binary(2 * 128)


@pytest.mark.parametrize(
    ("model", "pretrained", "says"),
    [
        ("No-Such-Model", "random", "unknown open_clip model 'No-Such-Model'"),
        (str(TINY_CLIP_CONFIG), "missing/weights.pt", "checkpoint file"),
        ("ViT-B-32", "laion2b_s34b_b79k", "is not in the cache"),
        ("ViT-B-32", "no_such_tag", "neither a checkpoint file nor a pretrained tag"),
    ],
)
def test_unloadable_models_are_reported_before_any_work(model, pretrained, says, tmp_path):
    stage = ClipScore(ClipScoreParams(model=model, pretrained=pretrained, cache_dir=str(tmp_path)))
    problems = stage.check()
    assert len(problems) == 1 and problems[0].startswith("model: ") and says in problems[0]
    if "No-Such" not in model:
        assert "set `pretrained:` to its local path" in problems[0]


def test_a_corrupt_checkpoint_is_a_load_error(tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipLoadError, match="curate-tiny-clip"):
        load_clip(str(TINY_CLIP_CONFIG), str(bad))
