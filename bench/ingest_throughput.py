"""Throughput of ingest + decode + size/aspect filters + write through `pipeline run`, against bare Pillow.

The bar: on a corpus of real-sized JPEGs the pipeline must reach at least 70% of the images/s that a plain
`multiprocessing.Pool` of the same number of processes gets by only decoding the same images. Both are
measured in this one command, alternating, so that they see the same machine state.

Baseline: the parent reads every image's bytes out of the tars *before* the clock starts; the pool is
forked afterwards (workers inherit the bytes) and warmed up, so the timed part is Image.open + load() and
nothing else: no tar reading, no IPC of image bytes, no pool start-up. It is the bare decode rate.

Pipeline: a fresh `pipeline run` subprocess per round, so every round pays Ray start-up like a user does.
stats.json gives execute_seconds (Ray Data work: read tars, decode, filter, write Parquet, commit) and
total_seconds (also plan, output preparation and Ray start); the subprocess wall clock adds interpreter
start, imports and Ray shutdown.

    .venv/bin/python -m bench.ingest_throughput [--images N] [--shards S] [--workdir DIR] [--rounds R]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from PIL import Image

from stages.fixtures.images import encode, scene
from stages.fixtures.shards import pair_members, write_tar
from stages.image_decode import decode_image

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, QUALITY = 640, 480, 85
TARGET_RATIO = 0.70
BUSY_WARNING = 0.15  # CPU share used by other processes, just before a run, that makes it suspect
CHUNK = 50  # images per baseline task: small enough to balance, large enough that IPC is noise

_IMAGES: list[bytes] = []  # the baseline corpus, set in the parent before the pool forks


# ---------------------------------------------------------------- corpus


def _build_shard(task: tuple[str, int, int, int, int]) -> int:
    """One tar of images start..stop-1; seeds are the image index, so every image is distinct."""
    path, start, stop, width, height = task
    members: list[tuple[str, bytes]] = []
    for i in range(start, stop):
        drawn = scene(i, width, height)
        members += pair_members(f"{i:09d}", encode(drawn.image, "JPEG", quality=QUALITY), drawn.caption)
    write_tar(Path(path), members)
    return stop - start


def build_corpus(
    corpus: Path, images: int, shards: int, width: int = WIDTH, height: int = HEIGHT
) -> list[Path]:
    """Build the tars, or reuse them when corpus.json (written last) matches the request."""
    meta = {"images": images, "shards": shards, "width": width, "height": height, "quality": QUALITY}
    meta_path = corpus / "corpus.json"
    tars = [corpus / f"{i:05d}.tar" for i in range(shards)]
    if meta_path.is_file() and json.loads(meta_path.read_text()) == meta and all(t.is_file() for t in tars):
        print(f"corpus: reusing {images} images in {shards} shards under {corpus}")
        return tars
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True)
    bounds = [images * i // shards for i in range(shards + 1)]
    tasks = [(str(t), bounds[i], bounds[i + 1], width, height) for i, t in enumerate(tars)]
    started = time.perf_counter()
    with mp.get_context("fork").Pool(os.cpu_count()) as pool:
        built = sum(pool.imap_unordered(_build_shard, tasks))
    meta_path.write_text(json.dumps(meta))
    size = sum(t.stat().st_size for t in tars) / 1e6
    print(f"corpus: built {built} images, {size:.0f} MB, in {time.perf_counter() - started:.1f}s")
    return tars


def load_images(tars: list[Path]) -> list[bytes]:
    """Every .jpg member's bytes, in shard order."""
    images = []
    for path in tars:
        with tarfile.open(path) as archive:
            for member in archive:
                if member.name.endswith(".jpg"):
                    images.append(archive.extractfile(member).read())  # type: ignore[union-attr]
    return images


# ---------------------------------------------------------------- baseline


def _noop(_: int) -> None:
    return None


def _pillow_load(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


DECODERS = {"baseline": _pillow_load, "decoder": decode_image}


def _decode_range(task: tuple[str, int, int]) -> int:
    decode, start, stop = DECODERS[task[0]], task[1], task[2]
    for data in _IMAGES[start:stop]:
        decode(data)
    return stop - start


def run_baseline(images: list[bytes], processes: int, kind: str = "baseline") -> float:
    """Seconds for a warm Pool(processes) to fully decode `images` (already in the workers' memory) with
    Pillow (`baseline`) or with the pipeline's own decode helper (`decoder`, a reference, not the bar)."""
    global _IMAGES
    _IMAGES = images
    chunks = [(kind, i, min(i + CHUNK, len(images))) for i in range(0, len(images), CHUNK)]
    with mp.get_context("fork").Pool(processes) as pool:
        pool.map(_noop, range(processes * 4))
        started = time.perf_counter()
        decoded = sum(pool.imap_unordered(_decode_range, chunks))
        seconds = time.perf_counter() - started
    if decoded != len(images):
        raise SystemExit(f"baseline decoded {decoded} of {len(images)} images")
    return seconds


# ---------------------------------------------------------------- pipeline


def write_manifest(workdir: Path, processes: int) -> Path:
    """ingest.webdataset -> filter.decode -> filter.image_size -> filter.aspect_ratio, on `processes` CPUs."""
    manifest = workdir / "ingest_throughput.yaml"
    manifest.write_text(
        "# Written by bench/ingest_throughput.py; paths are relative to this file.\n"
        "name: bench-ingest-throughput\n"
        "output: pipeline_out\n"
        f"ray:\n  num_cpus: {processes}\n"
        "stages:\n"
        "  - stage: ingest.webdataset\n    path: corpus\n"
        "  - stage: filter.decode\n"
        "  - stage: filter.image_size\n    min_side: 64\n"
        "  - stage: filter.aspect_ratio\n"
    )
    return manifest


def run_pipeline(manifest: Path, output: Path, images: int) -> dict[str, float]:
    """One `pipeline run` in a fresh process; checks that every image was kept; returns its timings."""
    command = [
        str(Path(sys.executable).with_name("pipeline")),
        "run",
        str(manifest),
        "--output",
        str(output),
        "--overwrite",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"pipeline run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    stats = json.loads((output / "stats.json").read_text())
    if stats["kept"] != images or stats["rejected"] != 0:
        raise SystemExit(f"pipeline kept {stats['kept']} and rejected {stats['rejected']} of {images} images")
    return {"wall_seconds": round(wall, 3), **stats["timings"]}


# ---------------------------------------------------------------- report


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over `seconds` while this benchmark is idle: others' load skews both sides."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return round((busy1 - busy0) / max(1, total1 - total0), 3)


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?"
    )
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").is_file() else ""
    mem_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def summarize(runs: list[dict], images: int) -> dict[str, float]:
    """Mean images/s per measure over the rounds, and each pipeline measure as a fraction of the baseline."""
    baseline = statistics.mean(images / r["seconds"] for r in runs if r["kind"] == "baseline")
    decoder = statistics.mean(images / r["seconds"] for r in runs if r["kind"] == "decoder")
    pipeline = [r for r in runs if r["kind"] == "pipeline"]
    summary = {
        "baseline_images_per_s": round(baseline, 1),
        "decoder_images_per_s": round(decoder, 1),
        "ratio_decoder": round(decoder / baseline, 3),
    }
    for measure in ("execute", "total", "wall"):
        rate = statistics.mean(images / r[f"{measure}_seconds"] for r in pipeline)
        summary[f"pipeline_{measure}_images_per_s"] = round(rate, 1)
        summary[f"ratio_{measure}"] = round(rate / baseline, 3)
        summary[f"of_decoder_{measure}"] = round(rate / decoder, 3)
    summary["ray_start_seconds_mean"] = round(statistics.mean(r["ray_start_seconds"] for r in pipeline), 3)
    summary["max_busy_before"] = max(r["busy_before"] for r in runs)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30000, help="JPEGs in the corpus (640x480, quality 85)")
    parser.add_argument("--shards", type=int, default=30, help="WebDataset tar shards")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench_out", help="corpus, manifest, outputs")
    parser.add_argument("--rounds", type=int, default=2, help="baseline+pipeline pairs, order alternated")
    parser.add_argument("--processes", type=int, default=2, help="baseline pool size and Ray num_cpus")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['ram_gib']} GiB RAM")
    tars = build_corpus(workdir / "corpus", args.images, args.shards)
    images = load_images(tars)
    if len(images) != args.images:
        raise SystemExit(f"corpus holds {len(images)} images, expected {args.images}")
    manifest = write_manifest(workdir, args.processes)

    runs: list[dict] = []
    for round_ in range(args.rounds):
        order = (
            ("baseline", "decoder", "pipeline") if round_ % 2 == 0 else ("pipeline", "decoder", "baseline")
        )
        for kind in order:
            run: dict = {"kind": kind, "round": round_, "busy_before": busy_fraction()}
            if run["busy_before"] > BUSY_WARNING:
                print(f"warning: CPUs {run['busy_before']:.0%} busy before this run: figures are skewed")
            if kind != "pipeline":
                run["seconds"] = round(run_baseline(images, args.processes, kind), 3)
                print(
                    f"round {round_} {kind}: {run['seconds']:.2f}s, {args.images / run['seconds']:.0f} images/s"
                )
            else:
                run.update(run_pipeline(manifest, workdir / "pipeline_out", args.images))
                print(
                    f"round {round_} pipeline: execute {run['execute_seconds']:.2f}s, total {run['total_seconds']:.2f}s "
                    f"(Ray start {run['ray_start_seconds']:.2f}s), wall {run['wall_seconds']:.2f}s"
                )
            runs.append(run)

    summary = summarize(runs, args.images)
    baseline = summary["baseline_images_per_s"]
    print(
        f"\n{args.images} JPEGs {WIDTH}x{HEIGHT} q{QUALITY}, {args.shards} shards, {args.processes} processes, "
        f"mean of {args.rounds} rounds"
    )
    print(f"{'measure':<44}{'images/s':>10}{'ratio':>8}{'of decoder':>12}")
    print(f"{'baseline: Pool decode only (Pillow)':<44}{baseline:>10.0f}{1:>8.2f}")
    print(
        f"{'reference: Pool, the pipeline decode helper':<44}{summary['decoder_images_per_s']:>10.0f}"
        f"{summary['ratio_decoder']:>8.2f}{1:>12.2f}"
    )
    labels = {
        "execute": "pipeline: execute (Ray Data work only)",
        "total": "pipeline: total (plus plan, Ray start)",
        "wall": "pipeline: wall (plus interpreter, shutdown)",
    }
    for measure, label in labels.items():
        ratio = summary[f"ratio_{measure}"]
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        print(
            f"{label:<44}{summary[f'pipeline_{measure}_images_per_s']:>10.0f}{ratio:>8.2f}"
            f"{summary[f'of_decoder_{measure}']:>12.2f}  {verdict}"
        )

    if summary["max_busy_before"] > BUSY_WARNING:
        print(
            f"warning: other processes used up to {summary['max_busy_before']:.0%} of the CPUs: rerun when idle"
        )
    result = {
        "command": " ".join(
            [".venv/bin/python -m bench.ingest_throughput", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": info,
        "corpus": {
            "images": args.images,
            "shards": args.shards,
            "width": WIDTH,
            "height": HEIGHT,
            "quality": QUALITY,
            "megabytes": round(sum(len(b) for b in images) / 1e6, 1),
        },
        "processes": args.processes,
        "target_ratio": TARGET_RATIO,
        "runs": runs,
        "summary": summary,
    }
    out = workdir / "ingest_throughput.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
