"""Scoring image-text pairs with a loaded open_clip model, decoding the next sub-batch in a thread while
the model runs on the current one (Pillow's decode and resize and torch's kernels release the GIL)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from stages.clip.model import load_clip
from stages.image_decode import DecodeError, open_rgb


@dataclass
class _Prepared:
    """One sub-batch ready for the model; rows that could not be decoded are left out of `pixels`."""

    rows: list[int]
    pixels: torch.Tensor | None
    tokens: torch.Tensor | None
    errors: dict[int, DecodeError]


class ClipScorer:
    """One model replica: what a `filter.clip_score` actor holds."""

    def __init__(
        self,
        model: str,
        pretrained: str,
        cache_dir: str | None,
        device: str,
        batch_size: int,
        threads: int,
        jpeg_draft: bool,
    ):
        torch.set_num_threads(threads)
        self.device = (
            "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
        )
        self.loaded = load_clip(model, pretrained, cache_dir, self.device)
        self.batch_size = batch_size
        self.min_side = self.loaded.image_size if jpeg_draft else None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-prepare")

    def close(self) -> None:
        self.pool.shutdown()

    def _prepare(self, rows: list[int], blobs: list, captions: list) -> _Prepared:
        loaded = self.loaded
        pixels, kept, errors = [], [], {}
        for row in rows:
            try:
                pixels.append(loaded.preprocess(open_rgb(blobs[row], min_side=self.min_side)))
                kept.append(row)
            except DecodeError as exc:
                errors[row] = exc
        if not kept:
            return _Prepared(kept, None, None, errors)
        tokens = loaded.tokenizer([captions[row] or "" for row in kept])
        return _Prepared(kept, torch.stack(pixels), tokens, errors)

    def _forward(self, prepared: _Prepared) -> tuple[np.ndarray, np.ndarray]:
        model = self.loaded.model
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.device == "cuda" else nullcontext()
        with torch.inference_mode(), autocast:
            image = model.encode_image(prepared.pixels.to(self.device))
            text = model.encode_text(prepared.tokens.to(self.device))
        image = torch.nn.functional.normalize(image.float(), dim=-1)
        text = torch.nn.functional.normalize(text.float(), dim=-1)
        return (image * text).sum(-1).cpu().numpy(), image.cpu().numpy()

    def _sub_batches(self, n: int) -> Iterator[list[int]]:
        size = self.batch_size
        for start in range(0, n, size):
            yield list(range(start, min(start + size, n)))

    def score(self, blobs: list, captions: list) -> tuple[np.ndarray, np.ndarray, dict[int, DecodeError]]:
        """Cosine and normalised image embedding per row (NaN where the image did not decode)."""
        n = len(blobs)
        scores = np.full(n, np.nan, np.float32)
        embeddings = np.zeros((n, self.loaded.embed_dim), np.float32)
        errors: dict[int, DecodeError] = {}
        batches = list(self._sub_batches(n))
        pending = self.pool.submit(self._prepare, batches[0], blobs, captions) if batches else None
        for index in range(len(batches)):
            prepared = pending.result()
            if index + 1 < len(batches):  # decode the next sub-batch while the model runs on this one
                pending = self.pool.submit(self._prepare, batches[index + 1], blobs, captions)
            errors.update(prepared.errors)
            if prepared.rows:
                batch_scores, batch_embeddings = self._forward(prepared)
                scores[prepared.rows] = batch_scores
                embeddings[prepared.rows] = batch_embeddings
        return scores, embeddings, errors
