"""Train `curate-tiny-clip`, the project's own open_clip model, from a seed, on CPU, in minutes.

Hubs are unreachable in tests and CI, yet the CLIP stage must be tested with a real model whose scores
mean something. This script reproduces the shipped checkpoint from `--seed`: it trains open_clip's own
architecture, loss, preprocess and tokenizer on `stages.fixtures.clip_pairs`, then reports the held-out
ROC AUC of matched against shuffled captions.

    python -m stages.clip.train_tiny --out models/curate-tiny-clip/weights.pt --seed 0
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch

from stages.fixtures.clip_pairs import PLACES, WORDS, pair

MODEL_NAME = "curate-tiny-clip"
MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / MODEL_NAME
CONFIG_PATH = MODEL_DIR / f"{MODEL_NAME}.json"
WEIGHTS_PATH = MODEL_DIR / "weights.pt"
TRAIN_SEEDS_END = 10_000_000  # training draws seeds below this ...
HELDOUT_START = 10_000_000  # ... and evaluation starts here, so no held-out pair is ever trained on
CHUNK = 1024  # pairs rendered per worker task
PLURALS = ("two ", "three ", "four ")  # "a" is left out: swapping it would need a singular noun


def register() -> None:
    """Make open_clip know `curate-tiny-clip` by name; open_clip keys configs by the file stem."""
    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half: the Mann-Whitney U over average ranks."""
    scores = np.concatenate([positive, negative])
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]  # tied scores share their average rank
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def match_scores(
    model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, seeds: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of each image with its own caption and with the next pair's caption (a derangement).

    Mismatches whose caption happens to be the same text are left out: they are not mismatches.
    """
    model.eval()
    scenes = [pair(seed) for seed in seeds]
    captions = [scene.caption for scene in scenes]
    images = model.encode_image(torch.stack([preprocess(scene.image) for scene in scenes]), normalize=True)
    texts = model.encode_text(tokenizer(captions), normalize=True)
    matched = (images * texts).sum(-1).numpy()
    shuffled = (images * texts.roll(-1, dims=0)).sum(-1).numpy()
    distinct = np.array([a != b for a, b in zip(captions, captions[1:] + captions[:1], strict=True)])
    return matched, shuffled[distinct]


def heldout_auc(model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, count: int) -> float:
    """ROC AUC of matched vs shuffled captions on the first `count` held-out seeds."""
    return roc_auc(*match_scores(model, preprocess, tokenizer, range(HELDOUT_START, HELDOUT_START + count)))


def _variants(caption: str) -> tuple[str, list[str]] | None:
    """The caption with its position, word or plural count swapped for each other value, or None."""
    for detail, values in (("position", PLACES), ("word", [f'"{w}"' for w in WORDS]), ("count", PLURALS)):
        for value in values:
            if value in caption:
                return detail, [caption.replace(value, other) for other in values if other != value]
    return None


@torch.no_grad()
def near_miss_accuracy(
    model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, count: int
) -> dict[str, float]:
    """How often the true caption beats every caption that differs only in its position, word or count.

    Shuffled captions almost always differ in colours too, so the AUC alone would not show whether these
    finer details were learned. Chance is 1/4 for positions, 1/12 for words and 1/3 for counts.
    """
    model.eval()
    wins: dict[str, list[bool]] = {}
    for seed in range(HELDOUT_START, HELDOUT_START + count):
        scene = pair(seed)
        if (found := _variants(scene.caption)) is None:
            continue
        detail, others = found
        image = model.encode_image(preprocess(scene.image)[None], normalize=True)
        scores = (model.encode_text(tokenizer([scene.caption, *others]), normalize=True) @ image.T)[:, 0]
        wins.setdefault(detail, []).append(bool(scores[0] > scores[1:].max()))
    return {detail: float(np.mean(won)) for detail, won in sorted(wins.items())}


_worker: dict = {}


def _init_worker(preprocess: Callable) -> None:
    torch.set_num_threads(1)
    register()
    _worker["preprocess"] = preprocess
    _worker["tokenizer"] = open_clip.get_tokenizer(MODEL_NAME)


def _render(seeds: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk, preprocessed by the model's own transform; fp16 halves the memory of the whole set."""
    scenes = [pair(int(seed)) for seed in seeds]
    images = torch.stack([_worker["preprocess"](scene.image) for scene in scenes]).half()
    return images, _worker["tokenizer"]([scene.caption for scene in scenes])


def render_all(seeds: np.ndarray, preprocess: Callable, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render every training pair once, up front, in a worker pool (spawned: no fork after torch threads)."""
    chunks = [seeds[i : i + CHUNK] for i in range(0, len(seeds), CHUNK)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(preprocess,)) as pool:
        # imap keeps chunk order, so the set does not depend on scheduling; filling preallocated
        # tensors keeps the peak at one copy of the set
        for i, (images, texts) in enumerate(pool.imap(_render, chunks)):
            if i == 0:
                all_images = images.new_empty((len(seeds), *images.shape[1:]))
                all_texts = texts.new_empty((len(seeds), *texts.shape[1:]))
            all_images[i * CHUNK : i * CHUNK + len(images)] = images
            all_texts[i * CHUNK : i * CHUNK + len(texts)] = texts
    return all_images, all_texts


def _optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW as open_clip trains: no weight decay on gains, biases, embeddings or the logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        plain = param.ndim < 2 or "embedding" in name or "logit_scale" in name
        (no_decay if plain else decay).append(param)
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def train(seed: int, steps: int, batch: int, lr: float, warmup: int, threads: int) -> torch.nn.Module:
    """Train from scratch; every random choice (init, data, order) follows from `seed`."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    register()
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME)

    started = time.perf_counter()
    seeds = np.random.default_rng(seed).integers(0, TRAIN_SEEDS_END, size=steps * batch)
    images, texts = render_all(seeds, preprocess, workers=threads)
    print(f"rendered {len(seeds)} training pairs in {time.perf_counter() - started:.0f} s", flush=True)

    loss_fn = open_clip.ClipLoss()
    optimizer = _optimizer(model, lr)
    model.train()
    for step in range(steps):
        scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * step / steps))
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr * scale
        window = slice(step * batch, (step + 1) * batch)
        image_features, text_features, logit_scale = model(images[window].float(), texts[window])
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # as open_clip's trainer does
        if step % 100 == 0 or step == steps - 1:
            elapsed = time.perf_counter() - started
            print(f"step {step:5d}  loss {loss.item():.4f}  {elapsed:6.0f} s", flush=True)
    print(f"trained {steps} steps of {batch} in {time.perf_counter() - started:.0f} s", flush=True)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--heldout", type=int, default=2000, help="held-out pairs scored at the end")
    args = parser.parse_args(argv)

    model = train(args.seed, args.steps, args.batch, args.lr, args.warmup, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    # Score the file, not the object in memory: this proves open_clip loads what was written.
    loaded, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=str(args.out))
    auc = heldout_auc(loaded, preprocess, open_clip.get_tokenizer(MODEL_NAME), args.heldout)
    near = near_miss_accuracy(loaded, preprocess, open_clip.get_tokenizer(MODEL_NAME), args.heldout)
    size_mb = args.out.stat().st_size / 1e6
    print(f"held-out ROC AUC {auc:.4f} on {args.heldout} pairs; wrote {args.out} ({size_mb:.1f} MB)")
    print("near misses won: " + ", ".join(f"{detail} {won:.3f}" for detail, won in near.items()))


if __name__ == "__main__":
    main()
