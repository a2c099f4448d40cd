"""The shipped tiny CLIP model and the pairs it learns from: captions true to the pixels, scores that separate."""

from __future__ import annotations

import re

import numpy as np
import open_clip

from stages.clip import train_tiny
from stages.clip.train_tiny import MODEL_NAME, WEIGHTS_PATH, heldout_auc, register, roc_auc
from stages.fixtures.clip_pairs import PLACES, pair, pairs
from stages.fixtures.images import COLOURS

NUMBERS = {"a": 1, "an": 1, "two": 2, "three": 3, "four": 4}
COUNT = re.compile(r"^(an?|two|three|four) (\w+) (circle|square|triangle)s? on an? (\w+) background$")
PLACED = re.compile(rf"^an? (\w+) (circle|square|triangle) ({'|'.join(PLACES)}) an? (\w+) background$")
WORD = re.compile(r'^the word "(\w+)" in (\w+) on an? (\w+) background$')


def _mask(image, colour: str) -> np.ndarray:
    """Pixels drawn in `colour` exactly: the noisy background never lands on another palette colour."""
    return (np.asarray(image) == COLOURS[colour]).all(axis=-1)


def test_pair_is_deterministic_for_a_seed():
    first, again, other = pair(7), pair(7), pair(8)
    assert first.caption == again.caption
    assert first.image.tobytes() == again.image.tobytes()
    assert (other.caption, other.image.tobytes()) != (first.caption, first.image.tobytes())
    assert [s.caption for s in pairs(7, 2)] == [first.caption, other.caption]


def test_captions_state_what_is_drawn():
    seen = set()
    for scene in pairs(0, 300):
        image, caption = scene.image, scene.caption
        assert image.size == (64, 64)
        background = caption.split()[-2]  # noise of at most 12 levels around the named colour
        plain = (abs(np.asarray(image, dtype=int) - COLOURS[background]) <= 12).all(axis=-1)
        if match := COUNT.match(caption):
            number, colour = NUMBERS[match[1]], match[2]
            mask = _mask(image, colour)
            assert (plain | mask).all(), caption  # nothing else is drawn
            quadrants = [mask[y : y + 32, x : x + 32].any() for y in (0, 32) for x in (0, 32)]
            assert sum(quadrants) == number, caption
            seen.add("count")
        elif match := PLACED.match(caption):
            mask = _mask(image, match[1])
            assert (plain | mask).all(), caption
            ys, xs = np.nonzero(mask)
            x, y = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2  # centre of the drawn box
            centre = {"left": x, "right": 63 - x, "top": y, "bottom": 63 - y}
            assert min(centre, key=centre.get) in match[3], caption
            seen.add("position")
        else:
            match = WORD.match(caption)
            assert match, caption
            assert _mask(image, match[2]).sum() > 10 and plain.mean() > 0.5, caption
            seen.add("word")
    assert seen == {"count", "position", "word"}


def test_roc_auc_counts_ties_as_half():
    assert roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert roc_auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5
    assert roc_auc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5


def test_shipped_model_separates_matched_from_shuffled_captions():
    assert train_tiny.HELDOUT_START >= train_tiny.TRAIN_SEEDS_END  # never scored on what it trained on
    assert WEIGHTS_PATH.is_file(), f"missing {WEIGHTS_PATH}: run python -m stages.clip.train_tiny"
    register()
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=str(WEIGHTS_PATH))
    auc = heldout_auc(model, preprocess, open_clip.get_tokenizer(MODEL_NAME), count=300)
    assert auc >= 0.95
