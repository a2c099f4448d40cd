"""Pairs/s through `filter.clip_score` inside `pipeline run`, against the model's bare forward rate.

The bar (issue 3): the stage reaches at least 85% of the bare rate, i.e. decoding, preprocessing and
tokenising are overlapped with inference rather than added to it. Both are measured in this command,
alternating, per model:

- bare: `encode_image` + `encode_text` + normalise + dot on already preprocessed tensors and tokens of
  the stage's batch size, in this process, with the same torch thread count as the stage's actor;
- stage: a fresh `pipeline run` of ingest.webdataset -> filter.clip_score over JPEGs of `--side`
  (640: 640x480 photos; 256: 256x256, img2dataset's default output size). The stage rate is rows / the seconds the actor spent in the
  stage (stats.json `funnel[].seconds`: decode, preprocess, tokenise, forward); the end-to-end rate
  divides by the whole execution instead (it adds the model load in the actor and the ingest).

    .venv/bin/python -m bench.clip_throughput [--models tiny ViT-B-32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from bench.ingest_throughput import REPO, build_corpus, busy_fraction, load_images, machine, run_pipeline
from stages.clip.model import load_clip
from stages.fixtures.tiny_clip import TINY_CLIP_CONFIG, TINY_CLIP_WEIGHTS

TARGET_RATIO = 0.85
THREADS = 2
MODELS = {  # name -> (model, pretrained, pairs in the corpus, batch size)
    "tiny": (str(TINY_CLIP_CONFIG), str(TINY_CLIP_WEIGHTS), 6000, 64),
    "ViT-B-32": ("ViT-B-32", "random", 480, 32),  # random weights: timing only
}


def bare_rate(model: str, pretrained: str, images: list[bytes], captions: list[str], batch: int) -> float:
    """Pairs/s of the model alone on one preprocessed batch, repeated to cover about as many pairs."""
    torch.set_num_threads(THREADS)
    loaded = load_clip(model, pretrained)
    pixels = torch.stack(
        [loaded.preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images[:batch]]
    )
    tokens = loaded.tokenizer(captions[:batch])
    repeats = max(2, len(images) // batch)
    with torch.inference_mode():
        loaded.model.encode_image(pixels), loaded.model.encode_text(tokens)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            image = torch.nn.functional.normalize(loaded.model.encode_image(pixels), dim=-1)
            text = torch.nn.functional.normalize(loaded.model.encode_text(tokens), dim=-1)
            (image * text).sum(-1)
        return repeats * batch / (time.perf_counter() - started)


def write_manifest(workdir: Path, corpus: Path, model: str, pretrained: str, batch: int) -> Path:
    manifest = workdir / "clip_throughput.yaml"
    manifest.write_text(
        f"""# Written by bench/clip_throughput.py
name: bench-clip-throughput
ray:
  num_cpus: {THREADS}
stages:
  - stage: ingest.webdataset
    path: {corpus}
  - stage: filter.clip_score
    model: {model}
    pretrained: {pretrained}
    batch_size: {batch}
    threads: {THREADS}
"""
    )
    return manifest


def captions_of(tars: list[Path]) -> list[str]:
    import tarfile

    captions = []
    for path in tars:
        with tarfile.open(path) as archive:
            captions += [
                archive.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in archive
                if m.name.endswith(".txt")
            ]
    return captions


def bench_model(name: str, workdir: Path, rounds: int, side: int) -> dict:
    model, pretrained, pairs, batch = MODELS[name]
    width, height = (640, 480) if side == 640 else (side, side)
    tars = build_corpus(workdir / f"corpus-{pairs}-{side}", pairs, max(1, pairs // 500), width, height)
    images, captions = load_images(tars), captions_of(tars)
    manifest = write_manifest(workdir, tars[0].parent, model, pretrained, batch)
    runs = []
    for round_ in range(rounds):
        for kind in ("bare", "stage") if round_ % 2 == 0 else ("stage", "bare"):
            run: dict = {"model": name, "kind": kind, "round": round_, "busy_before": busy_fraction()}
            if kind == "bare":
                run["pairs_per_s"] = round(bare_rate(model, pretrained, images, captions, batch), 2)
            else:
                timings = run_pipeline(manifest, workdir / "out", pairs)
                stats = json.loads((workdir / "out" / "stats.json").read_text())
                seconds = next(s["seconds"] for s in stats["funnel"] if s["stage"] == "filter.clip_score")
                run.update(
                    stage_seconds=seconds,
                    execute_seconds=timings["execute_seconds"],
                    pairs_per_s=round(pairs / seconds, 2),
                    end_to_end_pairs_per_s=round(pairs / timings["execute_seconds"], 2),
                )
            print(f"{name} round {round_} {kind}: {run['pairs_per_s']:.1f} pairs/s")
            runs.append(run)
    bare = statistics.mean(r["pairs_per_s"] for r in runs if r["kind"] == "bare")
    stage = statistics.mean(r["pairs_per_s"] for r in runs if r["kind"] == "stage")
    end_to_end = statistics.mean(r["end_to_end_pairs_per_s"] for r in runs if r["kind"] == "stage")
    return {
        "model": name,
        "image_size": f"{width}x{height}",
        "pairs": pairs,
        "batch_size": batch,
        "bare_pairs_per_s": round(bare, 2),
        "stage_pairs_per_s": round(stage, 2),
        "end_to_end_pairs_per_s": round(end_to_end, 2),
        "ratio_stage": round(stage / bare, 3),
        "ratio_end_to_end": round(end_to_end / bare, 3),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--side", type=int, default=640, choices=[640, 256], help="640x480 or 256x256 JPEGs")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench_out" / "clip")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    results = [bench_model(name, workdir, args.rounds, args.side) for name in args.models]
    print(f"\n{'model':<10}{'batch':>6}{'bare':>10}{'stage':>10}{'ratio':>8}{'end-to-end':>12}{'ratio':>8}")
    for r in results:
        verdict = "PASS" if r["ratio_stage"] >= TARGET_RATIO else "FAIL"
        print(
            f"{r['model']:<10}{r['batch_size']:>6}{r['bare_pairs_per_s']:>10.1f}{r['stage_pairs_per_s']:>10.1f}"
            f"{r['ratio_stage']:>8.2f}{r['end_to_end_pairs_per_s']:>12.1f}{r['ratio_end_to_end']:>8.2f}  {verdict}"
        )
    out = workdir / f"clip_throughput-{args.side}.json"
    command = " ".join([".venv/bin/python -m bench.clip_throughput", *(argv or sys.argv[1:])])
    out.write_text(json.dumps({"command": command, "machine": machine(), "results": results}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
