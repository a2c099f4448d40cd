"""Vectorised MinHash: bit-identical to datasketch 2.0.0 ("affine32", hashfunc=hash32) on real captions."""

from __future__ import annotations

import unicodedata
from itertools import pairwise

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash, MinHashLSH

from stages.dedup.minhash_signature import (
    EMPTY_VALUE,
    MinHasher,
    _shingle_spans,
    band_keys,
    estimated_jaccard,
    hash32,
    lsh_params,
    normalise_text,
    shingles,
)

EDGE_CASES = [
    "",
    None,
    "   ",
    "word",
    "Two words",
    "!!! ... ???",
    "«Ünïcödé» — Straße, 東京タワー と 富士山!",
    "İstanbul ΣΊΣΥΦΟΣ café",
    "tab\tsep\x1cfile-sep\nnew line",
    "repeat repeat repeat repeat repeat repeat repeat repeat",
    "a b c d e",
    "emoji 😀 caption with 🐱 cats, dogs & birds",
]
SCHEMES = [(p, s, n, u) for p in (64, 128, 256) for s in (1, 42) for n, u in ((5, "word"), (3, "char"))]


@pytest.fixture(scope="module")
def captions(realdata) -> list[str | None]:
    table = pq.read_table(realdata / "img2dataset" / "captions" / "test_10000.parquet", columns=["TEXT"])
    return table["TEXT"].to_pylist()[:300]


def datasketch_signature(text: str | None, num_perm: int, seed: int, ngram: int, unit: str) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=hash32)
    m.update_batch(shingles(text, ngram, unit) if text is not None else [])
    return m


def assert_same_as_datasketch(texts: list[str | None], num_perm: int, seed: int, ngram: int, unit: str):
    sigs, has_signature = MinHasher(num_perm, seed).signatures(texts, ngram, unit)
    assert sigs.shape == (len(texts), num_perm) and sigs.dtype == np.uint32
    expected = np.array([datasketch_signature(t, num_perm, seed, ngram, unit).hashvalues for t in texts])
    np.testing.assert_array_equal(sigs, expected)
    np.testing.assert_array_equal(has_signature, [bool(t and normalise_text(t)) for t in texts])


@pytest.mark.parametrize(("num_perm", "seed"), [(64, 1), (256, 42), (7, 0)])
def test_permutations_are_datasketchs(num_perm, seed):
    hasher = MinHasher(num_perm, seed)
    a, b = MinHash(num_perm=num_perm, seed=seed, hashfunc=hash32).permutations
    np.testing.assert_array_equal(hasher.a, a)
    np.testing.assert_array_equal(hasher.b, b)
    assert hasher.a.dtype == hasher.b.dtype == np.uint32


@pytest.mark.parametrize(("num_perm", "seed", "ngram", "unit"), SCHEMES)
def test_real_captions_equal_datasketch(captions, num_perm, seed, ngram, unit):
    assert sum(len(shingles(t, ngram, unit)) for t in captions if t) > len(captions)  # not all empty
    assert_same_as_datasketch(captions, num_perm, seed, ngram, unit)


@pytest.mark.parametrize(("num_perm", "seed", "ngram", "unit"), SCHEMES)
def test_edge_cases_equal_datasketch(num_perm, seed, ngram, unit):
    assert_same_as_datasketch(EDGE_CASES, num_perm, seed, ngram, unit)


def test_texts_without_shingles_have_no_signature():
    sigs, has_signature = MinHasher(64, 1).signatures(["", None, " ?! ", "ok"], 5, "word")
    assert has_signature.tolist() == [False, False, False, True]
    assert (sigs[:3] == EMPTY_VALUE).all() and (sigs[3] != EMPTY_VALUE).any()
    sigs, has_signature = MinHasher(64, 1).signatures([], 5, "word")
    assert sigs.shape == (0, 64) and has_signature.shape == (0,)


def test_chunking_does_not_change_signatures(captions):
    """Chunks of one text per step and of the whole batch must agree (chunk boundaries are arbitrary)."""
    texts = [*captions[:50], None, "", *EDGE_CASES]
    tiny, _ = MinHasher(128, 7, chunk_bytes=1).signatures(texts, 5, "word")
    large, _ = MinHasher(128, 7, chunk_bytes=1 << 30).signatures(texts, 5, "word")
    np.testing.assert_array_equal(tiny, large)


def reference_normalise(text: str) -> str:
    """The definition, one character at a time (the module has a faster ASCII path that must agree)."""
    chars = (" " if unicodedata.category(c).startswith("P") else c for c in text.lower())
    return " ".join("".join(chars).split())


def test_normalise_matches_definition(captions):
    every_ascii = "".join(map(chr, range(128)))
    for text in [every_ascii, every_ascii.upper(), *[t for t in [*captions, *EDGE_CASES] if t is not None]]:
        assert normalise_text(text) == reference_normalise(text)


def test_normalise_and_shingles():
    assert normalise_text("  Red-Car!!  on\tthe   ROAD. ") == "red car on the road"
    assert normalise_text("«Straße»—Ünï") == "straße ünï"
    assert normalise_text("file\x1cseparator") == "file separator"  # str.split() whitespace, ASCII path too
    assert shingles("a b c d", 5, "word") == [b"a b c d"]  # shorter than one n-gram: the whole text
    assert shingles("A b. c d e f", 5, "word") == [b"a b c d e", b"b c d e f"]
    assert shingles("x y x y x y", 2, "word") == [b"x y", b"y x"]  # distinct, first-occurrence order
    assert shingles("abab", 2, "char") == [b"ab", b"ba"]
    assert shingles("é!", 3, "char") == ["é".encode()]
    assert shingles("ééa", 2, "char") == ["éé".encode(), "éa".encode()]
    assert shingles("?!", 5, "word") == [] and shingles("", 3, "char") == []


@pytest.mark.parametrize(
    ("ngram", "unit"), [(5, "word"), (3, "char"), (1, "word"), (1, "char"), (40, "char")]
)
def test_batch_shingling_finds_the_same_shingles(captions, ngram, unit):
    """`signatures` shingles a batch with numpy; deduplicated, each text's spans must be `shingles()`."""
    texts = [t for t in [*captions[:100], *EDGE_CASES] if t is not None]
    buffer, starts, ends, counts = _shingle_spans([normalise_text(t).encode() for t in texts], ngram, unit)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    for i, text in enumerate(texts):
        spans = [
            buffer[s:e] for s, e in zip(starts[bounds[i] : bounds[i + 1]], ends[bounds[i] : bounds[i + 1]])
        ]
        assert list(dict.fromkeys(spans)) == shingles(text, ngram, unit), text


def test_estimated_jaccard_equals_datasketch(captions):
    """Pairs of a caption and a near copy, so the estimates spread over (0, 1) rather than all 0."""
    texts = [t for t in captions if t][:30]
    pairs = [(t, f"{t} photo") for t in texts] + list(pairwise(texts))
    left, _ = MinHasher(128, 1).signatures([a for a, _ in pairs], 3, "char")
    right, _ = MinHasher(128, 1).signatures([b for _, b in pairs], 3, "char")
    expected = [
        datasketch_signature(a, 128, 1, 3, "char").jaccard(datasketch_signature(b, 128, 1, 3, "char"))
        for a, b in pairs
    ]
    assert [estimated_jaccard(x, y) for x, y in zip(left, right)] == expected
    assert estimated_jaccard(left, right).tolist() == expected
    assert len(set(expected)) > 10


def test_lsh_params_equal_datasketch():
    lsh = MinHashLSH(threshold=0.7, num_perm=256)
    assert lsh_params(0.7, 256) == (lsh.b, lsh.r)
    lsh = MinHashLSH(threshold=0.5, num_perm=128, weights=(0.3, 0.7))
    assert lsh_params(0.5, 128, 0.3, 0.7) == (lsh.b, lsh.r)


def test_band_keys_depend_only_on_their_band():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(3, 64), dtype=np.uint32)
    sigs[1] = sigs[0]
    sigs[2] = sigs[0]
    sigs[2, 10] ^= 1  # band 1 of 8 rows
    keys = band_keys(sigs, bands=8, rows=8)
    assert keys.shape == (3, 8) and keys.dtype == np.uint64
    np.testing.assert_array_equal(keys[0], keys[1])
    assert (keys[0] != keys[2]).tolist() == [j == 1 for j in range(8)]
    assert len(set(keys[0].tolist())) == 8  # the band index seeds the hash


def test_band_keys_ignore_unused_tail():
    """bands * rows may be below num_perm (datasketch's optimum often is): the tail takes no part."""
    sigs = np.zeros((2, 10), dtype=np.uint32)
    sigs[1, 9] = 5
    keys = band_keys(sigs, bands=3, rows=3)
    np.testing.assert_array_equal(keys[0], keys[1])
    with pytest.raises(ValueError):
        band_keys(sigs, bands=4, rows=3)
