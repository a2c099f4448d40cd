"""A 64-bit perceptual hash (pHash): equal or close for resized, recompressed or lightly cropped copies.

The classic DCT pHash (as in the `imagehash` package): greyscale, 32x32, 2-D DCT-II, keep the 8x8
lowest frequencies, one bit per coefficient above their median. Recompression and resizing barely move
low frequencies, so copies stay within a few bits of Hamming distance while distinct photos differ in
about half of the 64.
"""

from __future__ import annotations

import itertools

import numpy as np
from PIL import Image
from scipy.fft import dct

SIDE, LOW = 32, 8
_BIT_VALUES = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def phash(image: Image.Image) -> int:
    """The 64-bit pHash of `image`, most significant bit first (row-major over the 8x8 block)."""
    grey = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    frequencies = dct(dct(grey, axis=0, type=2), axis=1, type=2)[:LOW, :LOW]
    bits = (frequencies > np.median(frequencies)).ravel()
    return int(np.bitwise_or.reduce(_BIT_VALUES[bits], initial=np.uint64(0)))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of uint64 arrays, element-wise."""
    x = np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)


def band_values(hashes: np.ndarray, bands: int) -> np.ndarray:
    """(n, bands) uint64: the hash cut into `bands` bit ranges, tagged with the band index.

    By the pigeonhole principle, two hashes within Hamming distance `bands - 1` agree exactly on at
    least one band, so bucketing by band finds every such pair without comparing all pairs.
    """
    edges = np.linspace(0, 64, bands + 1).round().astype(int)
    out = np.empty((len(hashes), bands), np.uint64)
    for band, (start, stop) in enumerate(itertools.pairwise(edges)):
        width = np.uint64(stop - start)
        mask = (np.uint64(1) << width) - np.uint64(1) if width < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
        values = (hashes.astype(np.uint64) >> np.uint64(64 - stop)) & mask
        out[:, band] = values | (np.uint64(band) << np.uint64(56))  # band index in the top byte
    return out
