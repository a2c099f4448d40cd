"""MinHash signatures for a whole batch of captions at once, bit-identical to datasketch 2.0.0.

datasketch builds one `MinHash` object per text, which costs a few Python calls and small numpy calls
per caption. Here the shingles of a whole batch are found with numpy as byte spans of one buffer,
hashed into one uint32 array (the only per-shingle Python is the xxh32 call), and the affine
permutations and per-text minima run as whole-batch numpy over memory-bounded chunks of texts (see
`MinHasher.signatures_of_hashes`). Parameters and arithmetic are datasketch's default "affine32"
scheme (same `RandomState(seed)` draws, MurmurHash3 `fmix32` pre-mix, wrap-around uint32 `a * h + b`)
and the shingle hash is `hash32` (xxh32, seed 0), so these signatures can be compared with, or put
into, datasketch objects built with `hashfunc=hash32`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Literal

import numpy as np
import xxhash
from datasketch.lsh import _optimal_param

EMPTY_VALUE = np.uint32(0xFFFFFFFF)  # datasketch's initial (no shingle seen) value for "affine32"
CHUNK_BYTES = 1 << 20  # per (texts, num_perm) product chunk: stays in L2, yet amortises numpy call overhead

Unit = Literal["word", "char"]


class _PunctuationToSpace(dict):
    """`str.translate` table that maps every unicode punctuation character (category P*) to a space.

    Filled lazily on first sight of each character, so there is no 1.1M-codepoint scan at import, and
    hits after the first are a C-level dict lookup. Other characters map to themselves (None would
    delete them).
    """

    def __missing__(self, char: int) -> int:
        value = 32 if unicodedata.category(chr(char)).startswith("P") else char
        self[char] = value
        return value


_PUNCTUATION = _PunctuationToSpace()

# ASCII fast path (most captions): one `bytes.translate` does lowercase, punctuation -> space, and maps
# the separators that `str.split()` treats as whitespace but `bytes.split()` does not (0x1c-0x1f).
_ASCII_TABLE = bytes(
    32 if (unicodedata.category(chr(c)).startswith("P") or chr(c).isspace()) else ord(chr(c).lower())
    for c in range(256)
)


def _normalised_bytes(text: str) -> bytes:
    """`normalise_text(text)` as utf-8. For ASCII, bytes.translate is ~8x faster than str.translate."""
    if text.isascii():
        return b" ".join(text.encode().translate(_ASCII_TABLE).split())
    return " ".join(text.lower().translate(_PUNCTUATION).split()).encode()


def normalise_text(text: str) -> str:
    """Lowercase, punctuation to spaces, whitespace collapsed: "Red-Car!" and "red car" shingle alike."""
    return _normalised_bytes(text).decode()


def _shingles_of_normalised(norm: bytes, ngram: int, unit: Unit) -> list[bytes]:
    if not norm:
        return []
    if unit == "char":
        text = norm.decode()
        if len(text) <= ngram:
            return [norm]
        if len(text) == len(norm):  # ASCII: character n-grams are byte slices
            grams = [norm[i : i + ngram] for i in range(len(norm) - ngram + 1)]
        else:
            grams = [text[i : i + ngram].encode() for i in range(len(text) - ngram + 1)]
        return list(dict.fromkeys(grams))
    if unit != "word":
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    words = norm.split(b" ")
    if len(words) <= ngram:
        return [norm]
    # Byte offset of each word start (plus one past the end): an n-gram is then a single bytes slice
    # of the normalised text, cheaper than joining n words per shingle.
    starts = [0, *accumulate(len(w) + 1 for w in words)]
    return list(dict.fromkeys([norm[s : e - 1] for s, e in zip(starts, starts[ngram:])]))


def shingles(text: str, ngram: int, unit: Unit) -> list[bytes]:
    """Distinct n-grams of the normalised text, in first-occurrence order.

    A text shorter than one n-gram is a single shingle of itself, so a two-word caption still gets a
    signature (and matches only the same two words); an empty normalised text gives [] (no signature).
    """
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, not {ngram}")
    return _shingles_of_normalised(_normalised_bytes(text), ngram, unit)


def _shingle_spans(
    norms: Sequence[bytes], ngram: int, unit: Unit
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """Every shingle of a batch as a byte span of one joined buffer: (buffer, starts, ends, counts).

    The same n-grams as `shingles()`, found with numpy over the whole batch instead of per text, so the
    only per-shingle Python left is the hash call. Not deduplicated (a repeated shingle cannot change a
    minimum); shingles are grouped by text in text order, `counts[i]` for text i. Tokens are words
    (runs between spaces) or characters (utf-8 lead bytes); texts are joined with b"\n", which no
    normalised text contains.
    """
    n = len(norms)
    buffer = b"\n".join(norms)
    data = np.frombuffer(buffer, dtype=np.uint8)
    lengths = np.fromiter(map(len, norms), dtype=np.int64, count=n)
    text_start = np.cumsum(lengths + 1) - (lengths + 1)
    if unit == "word":
        cuts = np.flatnonzero((data == 32) | (data == 10))
        tok_start, tok_end = np.concatenate(([0], cuts + 1)), np.append(cuts, len(data))
        keep = tok_end > tok_start  # an empty text is an empty token between two separators
    elif unit == "char":
        lead = np.flatnonzero((data & 0xC0) != 0x80)  # utf-8: continuation bytes are 10xxxxxx
        tok_start, tok_end = lead, np.append(lead[1:], len(data))
        keep = data[lead] != 10
    else:
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    tok_start, tok_end = tok_start[keep], tok_end[keep]
    tok_text = np.searchsorted(text_start, tok_start, side="right") - 1
    tokens_per_text = np.bincount(tok_text, minlength=n)
    # An n-gram starting at token i is one of text t's if its last token, i + ngram - 1, is too.
    last = max(len(tok_start) - ngram + 1, 0)
    whole = tok_text[:last] == tok_text[ngram - 1 : ngram - 1 + last]
    # Texts shorter than one n-gram are one shingle: the whole text.
    short = np.flatnonzero((tokens_per_text > 0) & (tokens_per_text < ngram))
    owner = np.concatenate((tok_text[:last][whole], short))
    starts = np.concatenate((tok_start[:last][whole], text_start[short]))
    ends = np.concatenate((tok_end[ngram - 1 : ngram - 1 + last][whole], text_start[short] + lengths[short]))
    order = np.argsort(owner, kind="stable")
    return buffer, starts[order], ends[order], np.bincount(owner, minlength=n)


def hash32(b: bytes) -> int:
    """The shingle hash, shared with datasketch (`hashfunc=hash32`) so both sides agree bit for bit."""
    return xxhash.xxh32_intdigest(b)


def fmix32(hv: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, datasketch's pre-mix before the affine permutations."""
    hv = hv ^ (hv >> np.uint32(16))
    hv *= np.uint32(0x85EBCA6B)
    hv ^= hv >> np.uint32(13)
    hv *= np.uint32(0xC2B2AE35)
    hv ^= hv >> np.uint32(16)
    return hv


@dataclass(frozen=True)
class MinHasher:
    """Permutations `h -> a*h + b (mod 2^32)` drawn exactly as datasketch's `MinHash(num_perm, seed)`."""

    num_perm: int = 256
    seed: int = 1
    chunk_bytes: int = CHUNK_BYTES
    a: np.ndarray = field(init=False, repr=False, compare=False)
    b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_perm < 1:
            raise ValueError("num_perm must be positive")
        gen = np.random.RandomState(self.seed)
        # Same draws, in the same order, as datasketch.MinHash._init_permutations for "affine32".
        a = gen.randint(0, 1 << 31, self.num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = gen.randint(0, 1 << 32, self.num_perm, dtype=np.uint32)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)

    def signatures(
        self, texts: Sequence[str | None], ngram: int, unit: Unit
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, num_perm) uint32 signatures and a `has_signature` mask (False for None or empty texts).

        Rows without a signature hold 2^32-1 everywhere, like an empty datasketch MinHash.
        """
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1, not {ngram}")
        norms = [_normalised_bytes(t) if t is not None else b"" for t in texts]
        buffer, starts, ends, counts = _shingle_spans(norms, ngram, unit)
        digest = xxhash.xxh32_intdigest
        hashes = [digest(buffer[s:e]) for s, e in zip(starts.tolist(), ends.tolist())]
        return self.signatures_of_hashes(np.array(hashes, dtype=np.uint32), counts)

    def signatures_of_hashes(self, hashes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Core: `hashes` holds every text's shingle hashes back to back, `counts[i]` of them for text i.

        The minimum runs over shingle *positions*, not texts: texts sorted longest first, step k
        permutes the k-th shingle of the texts that have one (always a prefix) and folds it into their
        running minimum. The Python loop is as long as the longest text in a chunk (a few hundred at
        most), each step is whole-chunk numpy, and every (shingle, permutation) product is computed
        exactly once. `np.minimum.reduceat` over text boundaries gives the same result but was 3x
        (transposed layout) to 15x (row layout) slower on real captions: segments average ~6 rows.
        """
        counts = np.asarray(counts, dtype=np.int64)
        has_signature = counts > 0
        out = np.full((len(counts), self.num_perm), EMPTY_VALUE, dtype=np.uint32)
        if not has_signature.any():
            return out, has_signature
        mixed = fmix32(np.asarray(hashes, dtype=np.uint32))
        first_shingle = np.cumsum(counts) - counts
        order = np.argsort(-counts, kind="stable")[: np.count_nonzero(has_signature)]
        rows_per_chunk = max(1, self.chunk_bytes // (4 * self.num_perm))
        products = np.empty((min(rows_per_chunk, len(order)), self.num_perm), dtype=np.uint32)
        for lo in range(0, len(order), rows_per_chunk):
            texts = order[lo : lo + rows_per_chunk]
            first, n_shingles = first_shingle[texts], counts[texts]
            mins = self._permute(mixed[first], np.empty((len(texts), self.num_perm), dtype=np.uint32))
            # active[k - 1]: how many texts of the chunk have more than k shingles (counts descend).
            active = np.searchsorted(-n_shingles, -np.arange(1, n_shingles[0]), side="left")
            for k, m in enumerate(active.tolist(), start=1):
                step = self._permute(mixed[first[:m] + k], products[:m])
                np.minimum(mins[:m], step, out=mins[:m])
            out[texts] = mins
        return out, has_signature

    def _permute(self, mixed: np.ndarray, out: np.ndarray) -> np.ndarray:
        """`a * h + b` for every (hash, permutation) pair; uint32 wrap-around is the mod 2^32."""
        np.multiply(mixed[:, None], self.a, out=out)
        out += self.b
        return out


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float | np.ndarray:
    """Fraction of equal positions: datasketch's `MinHash.jaccard`, row-wise for 2-D inputs."""
    equal = np.count_nonzero(np.asarray(sig_a) == np.asarray(sig_b), axis=-1)
    num_perm = np.shape(sig_a)[-1]
    return float(equal) / num_perm if np.ndim(equal) == 0 else equal / num_perm


def lsh_params(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) that minimise weighted FP+FN at `threshold`: datasketch's own MinHashLSH choice."""
    bands, rows = _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)
    return int(bands), int(rows)


def _fmix64(hv: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place: a bijection that spreads every input bit over the key."""
    hv ^= hv >> np.uint64(33)
    hv *= np.uint64(0xFF51AFD7ED558CCD)
    hv ^= hv >> np.uint64(33)
    hv *= np.uint64(0xC4CEB9FE1A85EC53)
    hv ^= hv >> np.uint64(33)
    return hv


_GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)  # odd, so multiplying by it is a bijection mod 2^64


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 bucket keys, each a hash of one band's `rows` values and of the band index.

    Vectorised numpy, not xxh64 per band: one Python call per (text, band) took longer (~120 ms per 10k
    captions at 25 bands) than the signatures themselves. The key starts from fmix64 of the band index
    (equal values in different bands get different keys) and folds in each value as
    `key = fmix64((key + value) * golden)`; every step is a bijection of the key for a fixed value and
    of the value for a fixed key, so keys of different bands collide only by 64-bit chance. Columns past
    `bands * rows` (datasketch's optimum often leaves a few) take no part.
    """
    signatures = np.asarray(signatures, dtype=np.uint32)
    n, num_perm = signatures.shape
    if bands * rows > num_perm:
        raise ValueError(f"{bands} bands x {rows} rows exceed the {num_perm} permutations")
    values = signatures[:, : bands * rows].reshape(n, bands, rows)
    seeds = _fmix64(np.arange(1, bands + 1, dtype=np.uint64) * _GOLDEN64)
    keys = np.repeat(seeds[None, :], n, axis=0)
    for j in range(rows):
        keys += values[:, :, j]
        keys *= _GOLDEN64
        _fmix64(keys)
    return keys
