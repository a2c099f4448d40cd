"""`dedup.minhash_caption` against Data-Juicer's `document_minhash_deduplicator`: time, memory, recall.

Corpus: img2dataset's 10,000 real captions (test_10000.parquet, TEXT) and, per caption, `k` variants with
one word replaced by a word drawn uniformly from the corpus vocabulary (seeded), so 100k = 9 variants
per caption, 300k = 29, 1M = 99. Rows are shuffled (seeded) and get ids in row order, so "smallest id"
(our keeper) and "smallest index" (Data-Juicer's keeper) are the same row.

Both sides run in a fresh subprocess (alternating, `--repeats` each at the first size; medians reported)
whose whole process tree (Ray's GCS, raylet, agents and workers; Data-Juicer's `datasets.map` workers)
is sampled from /proc every `--interval` s: summed RSS (what `ps` shows; counts a shared page once per
process that maps it, e.g. Ray's object store or forked copy-on-write pages) and summed PSS (shared pages
split between their users: the tree's real footprint). Peaks are taken up to the end of the dedup step
(the subprocess touches a marker file), start-up included; `process_peak_*` cover the whole subprocess.
`end_to_end_s` runs from the subprocess's exec to the end of the dedup step (interpreter, imports, data
loading, Ray start: everything a one-off run pays).

- ours: a fresh local Ray (`init_ray(None, 2)`, start timed apart), then timed (`dedup_s`): blocks of
  `--block` rows -> `map_batches(prepare)`, materialized -> `summarize` -> `map_batches(apply)`,
  materialized, as the executor runs a global stage. `--profile` adds one run per size with a barrier
  after each summary step (bucket rows, shuffles, candidates, verification, components...) for a
  breakdown of time and memory.
- Data-Juicer: its own venv, Python API, in the way its executor runs a deduplicator: the JSONL loaded
  with `datasets.load_dataset` (timed apart), then timed (`dedup_s`) `op.run(dataset)`: compute_hash via
  `datasets.map(num_proc=2)`, band tables, union-find, filter. `free_models()` at the end of `op.run`
  is stubbed out (it only imports torch to empty a CUDA cache). Its clusters are rebuilt after timing
  from the op's own band tables (the same union-find, same min-index root).
  Install: `python -m venv bench_out/minhash/dj-venv && dj-venv/bin/pip install py-data-juicer==1.6.1
  aiohttp scipy` (the normal resolution is ~80 packages and no torch; aiohttp is imported but not
  declared, scipy is needed by `optimal_param`). Data-Juicer's lazy loader then installs ray by itself
  (with `uv`) on first import, and torch (~5 GB with CUDA wheels) on a first `op.run` without the stub.

    .venv/bin/python -m bench.minhash_dedup [--sizes 100000 300000 1000000] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.ingest_throughput import REPO, busy_fraction, machine
from stages.dedup.minhash_signature import normalise_text, shingles

CAPTIONS = REPO.parent / "shared" / "realdata" / "img2dataset" / "captions" / "test_10000.parquet"
OUT = REPO / "bench_out" / "minhash"
DJ_VENV = OUT / "dj-venv"
THRESHOLD, NUM_PERM, NGRAM, PROCESSES = 0.7, 256, 5, 2
TARGETS = {"speedup_min": 5.0, "memory_ratio_max": 0.5}

# Runs inside Data-Juicer's venv (argv: corpus.jsonl result.json cache_dir); stdout is its log.
DJ_RUNNER = r"""
import json, os, sys, time
corpus, result, cache = sys.argv[1:4]
os.environ["HF_DATASETS_CACHE"] = cache
t0 = time.perf_counter()
def since_exec():  # seconds since this process was exec'd (interpreter start included)
    ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
    return float(open("/proc/uptime").read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
from datasets import load_dataset
from data_juicer.core.data import NestedDataset
from data_juicer.ops.common.helper_func import UnionFind
from data_juicer.ops.deduplicator.document_minhash_deduplicator import DocumentMinhashDeduplicator
import data_juicer.ops.base_op as base_op
# op.run ends in free_models(), which imports torch for torch.cuda.empty_cache(): seconds and memory that
# this op does not need. Left out, so the figures are Data-Juicer's dedup work alone (in its favour).
base_op.free_models = lambda *args, **kwargs: None
t1 = time.perf_counter()
dataset = NestedDataset(load_dataset("json", data_files=corpus, split="train", cache_dir=cache))
t2 = time.perf_counter()
op = DocumentMinhashDeduplicator(
    tokenization="space", window_size=5, lowercase=True, ignore_pattern=r"\p{P}",
    num_permutations=256, jaccard_threshold=0.7, text_key="text",
    num_proc=2, auto_op_parallelism=False,
)
t3 = time.perf_counter()
kept = op.run(dataset)
kept_ids = kept["id"]
t4 = time.perf_counter()
end_to_end = since_exec()
open(result + ".ran", "w").close()  # the memory sampler's mark: the dedup step ends here
union_find = UnionFind()  # the op's own clustering, replayed from its band tables (not timed)
for table in op.hash_tables:
    for members in table.values():
        if len(members) > 1:
            root = min(members)
            for x in members:
                union_find.union(x, root)
ids = dataset["id"]
cluster = [ids[union_find.find(i)] if i in union_find.parent else None for i in range(len(ids))]
roots = {ids[i] for i in range(len(ids)) if cluster[i] is None or cluster[i] == ids[i]}
json.dump({
    "import_s": t1 - t0, "load_s": t2 - t1, "init_s": t3 - t2, "run_s": t4 - t3, "end_to_end_s": end_to_end,
    "bands": op.num_bands, "rows": op.num_rows_per_band,
    "kept": len(kept_ids), "consistent": set(kept_ids) == roots, "torch_imported": "torch" in sys.modules,
    "cluster": cluster,
}, open(result, "w"))
"""


# ----------------------------------------------------------------------------------------------- corpus


def base_captions(path: Path = CAPTIONS) -> list[str]:
    return [t or "" for t in pq.read_table(path, columns=["TEXT"])["TEXT"].to_pylist()]


def build_corpus(captions: list[str], size: int, seed: int = 0) -> pa.Table:
    """`size // len(captions) - 1` one-word variants of every caption, all shuffled; ids in row order."""
    per = size // len(captions) - 1
    if per < 0 or size % len(captions):
        raise ValueError(f"size {size} is not a multiple of {len(captions)}")
    rng = np.random.default_rng(seed)
    vocabulary = sorted({w for c in captions for w in c.split()})
    texts = list(captions)
    for caption in captions:
        words = caption.split()
        if not words:
            texts.extend([caption] * per)
            continue
        positions = rng.integers(len(words), size=per).tolist()
        replacements = rng.integers(len(vocabulary), size=per).tolist()
        for position, replacement in zip(positions, replacements, strict=True):
            variant = list(words)
            variant[position] = vocabulary[replacement]
            texts.append(" ".join(variant))
    order = rng.permutation(len(texts))
    width = len(str(size))
    ids = [f"c{i:0{width}d}" for i in range(len(texts))]
    return pa.table({"id": ids, "caption": pa.array(texts, pa.string()).take(pa.array(order))})


def corpus_files(captions: list[str], size: int) -> tuple[Path, Path]:
    """Parquet (ours) and JSONL (Data-Juicer, `text` field) of the corpus; built once, reused after."""
    stem = OUT / f"corpus_{size}" if len(captions) == 10_000 else OUT / f"corpus_{size}_of_{len(captions)}"
    parquet, jsonl = stem.with_suffix(".parquet"), stem.with_suffix(".jsonl")
    if not (parquet.is_file() and jsonl.is_file()):
        table = build_corpus(captions, size)
        OUT.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, parquet)
        with jsonl.open("w") as f:
            for i, text in zip(table["id"].to_pylist(), table["caption"].to_pylist(), strict=True):
                f.write(json.dumps({"id": i, "text": text}) + "\n")
    return parquet, jsonl


# ----------------------------------------------------------------------------------------------- memory


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_pss_kib(pid: int) -> tuple[int, int]:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    fields = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:] if ":" in line}
    return fields.get("Rss", 0), fields.get("Pss", 0)


class TreeMemory:
    """Peak summed RSS and PSS of a process and all its descendants, sampled on a thread."""

    def __init__(self, root: int, interval: float, marker: Path | None = None) -> None:
        self.root, self.interval, self.marker = root, interval, marker
        self.peak_rss = self.peak_pss = self.max_processes = self.samples = 0
        self.at_marker: tuple[int, int] | None = (
            None  # peaks when `marker` appeared: end of the measured step
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        tree, pids, stack = _children(), [], [self.root]
        while stack:
            pid = stack.pop()
            pids.append(pid)
            stack.extend(tree.get(pid, []))
        rss = pss = 0
        for pid in pids:
            r, p = _rss_pss_kib(pid)
            rss, pss = rss + r, pss + p
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.max_processes = max(self.max_processes, len(pids))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.marker and self.at_marker is None and self.marker.exists():
                self.at_marker = (self.peak_rss, self.peak_pss)
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        """Peaks up to the marker (the dedup step, start-up included) and over the whole process."""
        rss, pss = self.at_marker or (self.peak_rss, self.peak_pss)
        return {
            "peak_rss_mib": round(rss / 1024, 1),
            "peak_pss_mib": round(pss / 1024, 1),
            "process_peak_rss_mib": round(self.peak_rss / 1024, 1),
            "process_peak_pss_mib": round(self.peak_pss / 1024, 1),
            "marker_seen": self.at_marker is not None,
            "max_processes": self.max_processes,
            "samples": self.samples,
        }


def run_tree(command: list[str], interval: float, log: Path, marker: Path) -> dict:
    """Run `command` with its process tree's memory sampled; wall time of the whole subprocess."""
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        with TreeMemory(process.pid, interval, marker) as memory:
            rc = process.wait()
    if rc:
        raise RuntimeError(f"{command[:3]} failed ({rc}); see {log}")
    return {"process_s": round(time.perf_counter() - start, 2), **memory.summary()}


# ----------------------------------------------------------------------------------------------- ours


class Steps:
    """Wall time, peak tree memory and row counts of each step, split by barriers (profile mode only)."""

    def __init__(self) -> None:
        self.memory = TreeMemory(os.getpid(), 0.1)
        self.records: dict[str, dict] = {}
        self.last = time.perf_counter()

    def done(self, name: str, refs: list | None = None, rows: list | None = None) -> None:
        import ray

        if refs:
            ray.wait(refs, num_returns=len(refs), fetch_local=False)
        now = time.perf_counter()
        self.memory._sample()  # a step shorter than the sampling period still gets a sample
        record = {"s": round(now - self.last, 3), "peak_pss_mib": round(self.memory.peak_pss / 1024, 1)}
        record["peak_rss_mib"] = round(self.memory.peak_rss / 1024, 1)
        if rows is not None:
            record["rows"] = sum(ray.get([ray.remote(lambda t: t.num_rows).remote(r) for r in rows]))
        self.memory.peak_pss = self.memory.peak_rss = 0
        self.records[name] = record
        self.last = time.perf_counter()


def profiled_summarize(stage, dataset, steps: Steps) -> pa.Table:
    """`MinHashCaptionDedup.summarize` step by step, with a barrier after each (so less overlap).

    Mirrors the stage's code as of commit bafeaf1; `same_verdicts_as_timed_run` checks it still does.
    """
    import ray

    from stages.dedup import minhash_caption as m
    from stages.dedup.clusters import choose_keepers
    from stages.dedup.components import connected_components
    from stages.dedup.exchange import cluster_parts, concat, exchange

    parts, p = cluster_parts(), stage.params
    refs = list(dataset.select_columns(["id", m.SIGNATURE, m.BANDS]).to_arrow_refs())
    steps.done("select columns", refs)
    buckets = [ray.remote(m._bucket_rows).remote(ref, stage.bands) for ref in refs]
    steps.done("bucket rows", buckets, rows=buckets)
    by_bucket = exchange(buckets, "bucket", parts)
    steps.done("bucket shuffle", [r for piece in by_bucket for r in piece])
    candidates = [ray.remote(m._candidates).remote(*pieces) for pieces in by_bucket]
    steps.done("candidates", candidates, rows=candidates)
    signature_rows = [ray.remote(m._signatures).remote(ref) for ref in refs]
    merge = ray.remote(concat)
    signatures = [merge.remote(*pieces) for pieces in exchange(signature_rows, "id", parts)]
    steps.done("signature shuffle", signatures)
    by_a = exchange(candidates, "a", parts)
    steps.done("candidate shuffle (a)", [r for piece in by_a for r in piece])
    with_a = [ray.remote(m._attach).remote(signatures[i], "a", *pieces) for i, pieces in enumerate(by_a)]
    steps.done("attach signature a", with_a)
    by_b = exchange(with_a, "b", parts)
    steps.done("candidate shuffle (b)", [r for piece in by_b for r in piece])
    verify = ray.remote(m._verified)
    edges = [verify.remote(signatures[i], p.threshold, *pieces) for i, pieces in enumerate(by_b)]
    steps.done("verification", edges, rows=edges)
    assignment = connected_components(edges, p.local_limit, parts).materialize()
    steps.done("components", rows=list(assignment.to_arrow_refs()))
    keepers = choose_keepers(list(assignment.to_arrow_refs()), [], parts)
    steps.done("keepers")
    return keepers


def since_exec() -> float:
    """Seconds since this process was exec'd (interpreter start and imports included)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    return float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")


def spilled_mib() -> int:
    """The most the raylet reported having spilled to disk (its log lines are running totals)."""
    import re

    import ray

    try:
        session = Path(ray._private.worker._global_node.get_session_dir_path())
        text = (session / "logs" / "raylet.out").read_text(errors="replace")
    except (AttributeError, OSError):
        return -1
    return max((int(m) for m in re.findall(r"Spilled (\d+) MiB", text)), default=0)


def ours_worker(corpus: Path, result: Path, block: int, profile: bool) -> None:
    """One measured run of our stage in this (fresh) process: Ray start, then prepare/summarize/apply."""
    import ray
    import ray.data

    from pipeline.cluster import init_ray
    from pipeline.schema import REJECT_REASON
    from stages.dedup.minhash_caption import CLUSTER, MinHashCaptionDedup, MinHashCaptionParams

    table = pq.read_table(corpus)
    blocks = [table.slice(i, block) for i in range(0, table.num_rows, block)]
    t0 = time.perf_counter()
    init_ray(None, PROCESSES)
    t1 = time.perf_counter()
    idle = TreeMemory(os.getpid(), 0)
    idle._sample()  # the tree once Ray is up, before any work: Ray's own footprint
    steps = Steps() if profile else None
    if steps:
        steps.memory.__enter__()
        steps.last = time.perf_counter()
    stage = MinHashCaptionDedup(MinHashCaptionParams(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM))
    prepared = (
        ray.data.from_arrow(blocks).map_batches(stage.prepare, batch_format="pyarrow", batch_size=None)
    ).materialize()
    t2 = time.perf_counter()
    if steps:
        steps.done("prepare")
        summary = profiled_summarize(stage, prepared, steps)
    else:
        summary = stage.summarize(prepared)
    summary_ref = ray.put(summary)
    t3 = time.perf_counter()

    def apply(batch: pa.Table) -> pa.Table:
        return stage.apply(batch, ray.get(summary_ref))

    out = prepared.map_batches(apply, batch_format="pyarrow", batch_size=None).materialize()
    t4 = time.perf_counter()
    end_to_end = since_exec()
    Path(f"{result}.ran").touch()  # the memory sampler's mark: the dedup step ends here
    if steps:
        steps.done("apply")
        steps.memory.__exit__()
    verdicts = pa.concat_tables(
        [ray.get(ref).select(["id", CLUSTER, REJECT_REASON]) for ref in out.to_arrow_refs()]
    ).sort_by("id")
    pq.write_table(verdicts, result.with_suffix(".parquet"))
    timings = {"ray_start_s": t1 - t0, "prepare_s": t2 - t1, "summarize_s": t3 - t2, "apply_s": t4 - t3}
    record = {
        **timings,
        "dedup_s": t4 - t1,
        "end_to_end_s": end_to_end,
        "bands": stage.bands,
        "rows": stage.rows,
    }
    record["object_store_mib"] = round(ray.cluster_resources().get("object_store_memory", 0) / 2**20)
    record["spilled_mib"] = spilled_mib()
    record.update({f"ray_idle_{k}": v for k, v in idle.summary().items() if k.startswith("peak")})
    if steps:
        record["steps"] = steps.records
    result.write_text(json.dumps(record))
    ray.shutdown()


def run_ours(
    parquet: Path, size: int, block: int, interval: float, profile: bool = False
) -> tuple[dict, pa.Table]:
    result = OUT / f"ours_{size}{'_profile' if profile else ''}.json"
    command = [sys.executable, "-m", "bench.minhash_dedup", "--worker", str(parquet), str(result)]
    command += ["--block", str(block)] + (["--profile"] if profile else [])
    tree = run_tree(command, interval, result.with_suffix(".log"), Path(f"{result}.ran"))
    record = {**json.loads(result.read_text()), **tree}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()}, pq.read_table(
        result.with_suffix(".parquet")
    )


def run_dj(jsonl: Path, size: int, interval: float) -> tuple[dict, list]:
    import shutil

    runner, result, cache = OUT / "dj_runner.py", OUT / f"dj_{size}.json", OUT / "dj-cache"
    runner.write_text(DJ_RUNNER)
    shutil.rmtree(cache, ignore_errors=True)  # a warm `datasets` cache would skip compute_hash
    command = [str(DJ_VENV / "bin" / "python"), str(runner), str(jsonl), str(result), str(cache)]
    tree = run_tree(command, interval, OUT / f"dj_{size}.log", Path(f"{result}.ran"))
    record = json.loads(result.read_text())
    cluster = record.pop("cluster")
    shutil.rmtree(cache, ignore_errors=True)
    return {**{k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()}, **tree}, cluster


# ----------------------------------------------------------------------------------------------- quality


def true_pairs(captions: list[str], threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(i, j, jaccard) with i < j and exact shingle-set Jaccard >= threshold; and rows with shingles."""
    from scipy.sparse import csr_matrix

    vocabulary: dict[bytes, int] = {}
    indptr, indices = [0], []
    for caption in captions:
        indices.extend(vocabulary.setdefault(s, len(vocabulary)) for s in shingles(caption, NGRAM, "word"))
        indptr.append(len(indices))
    matrix = csr_matrix(
        (np.ones(len(indices), np.int32), np.array(indices, np.int64), np.array(indptr, np.int64)),
        shape=(len(captions), len(vocabulary)),
    )
    sizes = np.diff(matrix.indptr)
    inter = (matrix @ matrix.T).tocoo()
    upper = inter.row < inter.col
    i, j, n = inter.row[upper], inter.col[upper], inter.data[upper]
    jaccard = n / (sizes[i] + sizes[j] - n)
    keep = jaccard >= threshold
    return i[keep].astype(np.int64), j[keep].astype(np.int64), jaccard[keep], int(np.count_nonzero(sizes))


def _labels(cluster: list[str | None]) -> np.ndarray:
    """Cluster label per row; rows in no cluster get a label of their own."""
    keys = pa.array(cluster, pa.string())
    codes = pc.fill_null(pc.index_in(keys, value_set=pc.unique(keys.drop_null())), -1)
    codes = codes.to_numpy().astype(np.int64)
    own = np.flatnonzero(codes < 0)
    codes[own] = codes.max(initial=-1) + 1 + np.arange(len(own))
    return codes


def quality(
    cluster: list[str | None], pairs: tuple[np.ndarray, np.ndarray], jaccard: np.ndarray, long: np.ndarray
) -> dict:
    """Recall of true pairs, pair precision of the clusters, and how many rows were removed.

    `long` marks captions of at least NGRAM words: Data-Juicer gives shorter ones no shingles at all (all
    their MinHash values are the maximum), so they all share every band bucket and form one cluster;
    recall over pairs of long captions only leaves out the pairs that cluster finds by accident.
    """
    labels = _labels(cluster)
    i, j = pairs
    same = labels[i] == labels[j]
    found = int(np.count_nonzero(same))
    by_jaccard = {}
    for low, high in ((0.7, 0.8), (0.8, 0.9), (0.9, 1.01)):
        band = (jaccard >= low) & (jaccard < high)
        by_jaccard[f"{low:.1f}-{min(high, 1.0):.1f}"] = [int(band.sum()), round(float(same[band].mean()), 4)]
    both_long = long[i] & long[j]
    sizes = np.bincount(labels)
    same_cluster = int((sizes * (sizes - 1) // 2).sum())
    has_partner = np.zeros(len(labels), bool)
    has_partner[i] = has_partner[j] = True
    kept = np.zeros(len(labels), bool)
    _, first = np.unique(labels, return_index=True)
    kept[first] = True  # ids are in row order: the smallest index is each cluster's keeper, both sides
    removed = ~kept
    return {
        "true_pairs": len(i),
        "found_pairs": found,
        "recall": round(found / max(1, len(i)), 4),
        "recall_by_jaccard": by_jaccard,
        "long_pairs": int(both_long.sum()),
        "recall_long_pairs": round(float(same[both_long].mean()), 4),
        "same_cluster_pairs": same_cluster,
        "pair_precision": round(found / max(1, same_cluster), 4),
        "removed": int(removed.sum()),
        "removed_with_true_partner": round(float(has_partner[removed].mean()) if removed.any() else 1.0, 4),
        "largest_cluster": int(sizes.max()),
    }


def ideal_removed(n: int, pairs: tuple[np.ndarray, np.ndarray]) -> int:
    """Rows a perfect dedup removes: n minus the connected components of the true-pair graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i, j = pairs
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    return n - int(connected_components(graph, directed=False)[0])


# ----------------------------------------------------------------------------------------------- main


STAGE_SOURCES = ("minhash_caption", "minhash_signature", "exchange", "components", "clusters")


def stage_sources() -> dict[str, str]:
    """sha1 of the stage's modules: the code under test changes while others work; the JSON says which."""
    import hashlib

    folder = REPO / "stages" / "dedup"
    return {n: hashlib.sha1((folder / f"{n}.py").read_bytes()).hexdigest()[:12] for n in STAGE_SOURCES}


def _median(records: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in records), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side at the first size")
    parser.add_argument("--block", type=int, default=10_000, help="rows per Ray block")
    parser.add_argument("--interval", type=float, default=0.1, help="memory sampling period, s")
    parser.add_argument("--base", type=int, default=10_000, help="real captions used (smoke tests: fewer)")
    parser.add_argument("--profile", action="store_true", help="then one step-by-step run of ours per size")
    parser.add_argument("--no-dj", action="store_true", help="skip Data-Juicer")
    parser.add_argument("--out", type=Path, default=OUT / "minhash_dedup.json")
    parser.add_argument("--worker", nargs=2, type=Path, metavar=("CORPUS", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        ours_worker(*args.worker, args.block, args.profile)
        return 0
    if not args.no_dj and not (DJ_VENV / "bin" / "python").is_file():
        print(f"no Data-Juicer venv at {DJ_VENV} (see this module's docstring)", file=sys.stderr)
        return 2

    captions = base_captions()[: args.base]
    sources = stage_sources()
    first, results = args.sizes[0], {"ours": {}, "dj": {}}
    busy = busy_fraction()
    for size in args.sizes:
        parquet, jsonl = corpus_files(captions, size)
        runs: dict[str, list] = {"ours": [], "dj": []}
        clusters: dict[str, list] = {}
        for r in range(args.repeats if size == first else 1):
            sides = ["ours"] if args.no_dj or size != first else ["dj", "ours"][:: 1 if r % 2 else -1]
            for side in sides:
                if side == "ours":
                    record, verdicts = run_ours(parquet, size, args.block, args.interval)
                    cluster = verdicts["caption_dup_cluster"].to_pylist()
                    duplicate = pc.equal(verdicts["reject_reason"], "duplicate:minhash_caption")
                    record["removed"] = int(pc.sum(duplicate).as_py() or 0)
                else:
                    record, cluster = run_dj(jsonl, size, args.interval)
                    record["dedup_s"], record["removed"] = record["run_s"], size - record["kept"]
                runs[side].append(record)
                clusters[side] = cluster  # the last run's, for quality (kept ids are deterministic)
                print(f"{size:>9} {side:4} run {r + 1}: {json.dumps(record)}", flush=True)
        for side, records in runs.items():
            if not records:
                continue
            summary = {
                key: _median(records, key)
                for key in (
                    "dedup_s",
                    "end_to_end_s",
                    "peak_rss_mib",
                    "peak_pss_mib",
                    "process_peak_rss_mib",
                    "process_peak_pss_mib",
                    "spilled_mib",
                )
                if key in records[0]
            }
            summary["rows_per_s"] = round(size / summary["dedup_s"])
            results[side][size] = {"summary": summary, "runs": records}
            if size == first:
                results[side][size]["cluster"] = clusters[side]  # replaced by quality below
        if size == first:
            table = pq.read_table(parquet)
            t0 = time.perf_counter()
            texts = table["caption"].to_pylist()
            i, j, jaccard, with_shingles = true_pairs(texts, THRESHOLD)
            long = np.array([len(normalise_text(t).split()) >= NGRAM for t in texts])
            truth = {
                "pairs": len(i),
                "rows_with_shingles": with_shingles,
                "ideal_removed": ideal_removed(size, (i, j)),
                "rows_under_ngram_words": int((~long).sum()),
                "brute_force_s": round(time.perf_counter() - t0, 1),
            }
            results["truth"] = truth
            for side in ("ours", "dj"):
                if size in results[side]:
                    cluster = results[side][size].pop("cluster")
                    results[side][size]["quality"] = quality(cluster, (i, j), jaccard, long)

    if args.profile:
        results["profile"] = {}
        for size in args.sizes:
            parquet, _ = corpus_files(captions, size)
            try:
                record, verdicts = run_ours(parquet, size, args.block, args.interval, profile=True)
            except RuntimeError as error:  # the profile mirrors the stage's code, which may have moved on
                results["profile"][size] = {"error": str(error)}
                print(f"{size:>9} ours profile failed: {error}", flush=True)
                continue
            timed = pq.read_table(OUT / f"ours_{size}.parquet")
            record["same_verdicts_as_timed_run"] = verdicts.equals(timed)
            results["profile"][size] = record
            print(f"{size:>9} ours profile: {json.dumps(record)}", flush=True)

    report = summarise(results, first, args.sizes)
    print_table(results, report, first)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(
                    [".venv/bin/python", "-m", "bench.minhash_dedup", *(argv or sys.argv[1:])]
                ),
                "machine": machine(),
                "busy_before": busy,
                "cpu_free_flag": Path("/tmp/cpu_free2").exists(),
                "stage_sources_sha1": sources,
                "stage_sources_changed_during_run": sources != stage_sources(),
                "config": {
                    "threshold": THRESHOLD,
                    "num_perm": NUM_PERM,
                    "shingles": f"word {NGRAM}-grams",
                    "processes": PROCESSES,
                    "block_rows": args.block,
                    "memory_interval_s": args.interval,
                    "dj": "py-data-juicer 1.6.1, tokenization=space, window_size=5, lowercase=True,"
                    r" ignore_pattern=\p{P}, num_permutations=256, jaccard_threshold=0.7, num_proc=2",
                },
                "results": {
                    k: {str(s): v for s, v in r.items()} if k != "truth" else r for k, r in results.items()
                },
                "report": report,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")
    return 0


def summarise(results: dict, first: int, sizes: list[int]) -> dict:
    report: dict = {}
    ours, dj = results["ours"].get(first), results["dj"].get(first)
    if ours and dj:
        speedup = dj["summary"]["dedup_s"] / ours["summary"]["dedup_s"]
        rss = ours["summary"]["peak_rss_mib"] / dj["summary"]["peak_rss_mib"]
        pss = ours["summary"]["peak_pss_mib"] / dj["summary"]["peak_pss_mib"]
        recall = (ours["quality"]["recall"], dj["quality"]["recall"])
        report.update(
            speedup=round(speedup, 2),
            speedup_end_to_end=round(dj["summary"]["end_to_end_s"] / ours["summary"]["end_to_end_s"], 2),
            memory_ratio_rss=round(rss, 3),
            memory_ratio_pss=round(pss, 3),
            targets_met={
                "speedup>=5x": speedup >= TARGETS["speedup_min"],
                "memory<=0.5x (rss)": rss <= TARGETS["memory_ratio_max"],
                "memory<=0.5x (pss)": pss <= TARGETS["memory_ratio_max"],
                "recall>=dj": recall[0] >= recall[1],
            },
        )
    scaled = [s for s in sizes if s in results["ours"]]
    if len(scaled) > 1:
        base = results["ours"][scaled[0]]["summary"]
        report["scaling"] = {
            str(s): {
                "time_ratio": round(results["ours"][s]["summary"]["dedup_s"] / base["dedup_s"], 2),
                "size_ratio": round(s / scaled[0], 2),
                "rows_per_s_vs_first": round(
                    results["ours"][s]["summary"]["rows_per_s"] / base["rows_per_s"], 2
                ),
            }
            for s in scaled[1:]
        }
    return report


def print_table(results: dict, report: dict, first: int) -> None:
    print(
        f"\n{'side':5} {'rows':>9} {'dedup s':>8} {'e2e s':>7} {'rows/s':>8} {'RSS MiB':>8} {'PSS MiB':>8}"
        f" {'spill MiB':>9}   (medians; memory: whole process tree up to the end of the dedup step)"
    )
    for side in ("dj", "ours"):
        for size, record in results[side].items():
            s = record["summary"]
            print(
                f"{side:5} {size:>9} {s['dedup_s']:>8.1f} {s['end_to_end_s']:>7.1f} {s['rows_per_s']:>8}"
                f" {s['peak_rss_mib']:>8.0f} {s['peak_pss_mib']:>8.0f} {s.get('spilled_mib', '-'):>9}"
            )
    if "truth" in results:
        print(f"\ntruth at {first}: {json.dumps(results['truth'])}")
        for side in ("dj", "ours"):
            if first in results[side]:
                print(f"{side:5} quality: {json.dumps(results[side][first]['quality'])}")
    if "profile" in results:
        sizes = [size for size, record in results["profile"].items() if "steps" in record]
        print(
            f"\nstep breakdown of ours (barrier after each step): seconds / peak PSS MiB / rows, at {sizes}"
        )
        for name in results["profile"][sizes[0]]["steps"] if sizes else []:
            cells = []
            for size in sizes:
                step = results["profile"][size]["steps"][name]
                cells.append(f"{step['s']:7.2f} {step['peak_pss_mib']:6.0f} {step.get('rows', ''):>9}")
            print(f"{name:22} " + " | ".join(cells))
    print(f"\n{json.dumps(report, indent=1)}")


if __name__ == "__main__":
    sys.exit(main())
