"""How fast pyarrow writes image embeddings to Parquet in each column layout, in one command.

Why `filter.clip_score` stores embeddings as fixed-size binary of float16: the same 20,000 x 512
normalised embeddings are written (in memory, page checksums on, as the commit protocol writes) as a
float16 list, a float16 or float32 fixed-size list, and float16 bytes in fixed-size binary, with zstd
and uncompressed; best of `--repeats` per layout.

    .venv/bin/python -m bench.embedding_layouts [--rows 20000] [--dim 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def layouts(embeddings: np.ndarray) -> dict[str, pa.Array]:
    rows, dim = embeddings.shape
    half = embeddings.astype("<f2")
    return {
        "list<float16>": pa.array(list(half), pa.list_(pa.float16())),
        "fixed_size_list<float16>": pa.FixedSizeListArray.from_arrays(pa.array(half.ravel()), dim),
        "fixed_size_list<float32>": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.ravel()), dim),
        "fixed_size_binary (float16 bytes)": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(2 * dim), rows, [None, pa.py_buffer(half.tobytes())]
        ),
    }


def write_seconds(array: pa.Array, compression: str, repeats: int) -> tuple[float, int]:
    table = pa.table({"embedding": array})
    best, size = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=compression, use_dictionary=False, write_page_checksum=True)
        best = min(best, time.perf_counter() - started)
        size = sink.getvalue().size
    return best, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    print(f"{args.rows} x {args.dim} embeddings; best of {args.repeats}")
    print(f"{'layout':<36}{'compression':>12}{'ms':>8}{'MB':>8}")
    for name, array in layouts(embeddings).items():
        for compression in ("zstd", "none"):
            seconds, size = write_seconds(array, compression, args.repeats)
            print(f"{name:<36}{compression:>12}{seconds * 1000:>8.0f}{size / 1e6:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
