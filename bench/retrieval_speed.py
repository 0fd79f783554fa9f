"""Retrieval speed: ingestion rate and search latency at 1k, 10k and 100k chunks.

Ingestion: a generated multi-page PDF (and plain text) goes through the real pipeline —
parse, chunk (auto, 800/400 tokens), embed with all-MiniLM-L6-v2 on CPU (window-mean
for long chunks), store in SQLite — and we report pages/s and chunks/s, plus the raw
model rate for 254-token inputs.

Search: stores of 1k / 10k / 100k chunks of generated text (Zipf-distributed vocabulary,
~120 words a chunk). Their vectors are synthesised (random unit vectors) instead of
embedded, and queries are embedded with the hashing embedder, so the numbers measure the
index and fusion, not the model; the MiniLM query-embedding time is reported on its own
line and adds to every real search. Latency is per `HybridSearcher.search` call
(max_num_results 10) after a warm-up; the first (cold) search, which loads the vector
matrix from the database, is reported separately.

    .venv/bin/python bench/retrieval_speed.py            # full: 1k, 10k, 100k
    .venv/bin/python bench/retrieval_speed.py --quick    # 1k, 10k; smaller ingestion
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_corpus import build_corpus, scratch_engine
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.retrieval import (
    ChunkIndex,
    ChunkingStrategy,
    HybridSearcher,
    MiniLMEmbedder,
    prepare_file,
)
from assistantd.retrieval.tables import (
    retrieval_chunks,
    retrieval_files,
    retrieval_stores,
)
from assistantd.testing.documents import make_pdf  # the same small PDF writer the tests use
from assistantd.testing.embedders import HashingEmbedder

RESULTS = Path(__file__).resolve().parent / "results"
# The search configurations measured at each size, in table order.
MODES = ["hybrid_auto", "hybrid_none", "vector_only", "keyword_only", "hybrid_auto_filtered"]
_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "tas",
    "vel",
    "dor",
    "qui",
    "zan",
    "po",
    "ex",
    "ul",
    "sen",
    "ta",
]


def vocabulary(n: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class ZipfText:
    """Sentences over a pseudo-word vocabulary with natural-language-like frequencies."""

    def __init__(self, seed: int = 1, size: int = 20_000) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(size, self.rng)
        weights = 1.0 / np.arange(1, size + 1) ** 1.07
        self.cum = np.cumsum(weights / weights.sum())
        self.np_rng = np.random.default_rng(seed)

    def words_n(self, n: int, skip_top: int = 0) -> list[str]:
        idx = np.searchsorted(self.cum, self.np_rng.random(n * 3))
        picked = [self.words[min(i, len(self.words) - 1)] for i in idx if i >= skip_top]
        return picked[:n]

    def query(self, rng: random.Random) -> str:
        """3–8 words; the 100 most frequent words play the part of stop words, which a
        real query loses to the stop-word list, so they are left out."""
        return " ".join(self.words_n(rng.randint(3, 8), skip_top=100))

    def paragraph(self, n: int) -> str:
        words = self.words_n(n)
        sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, n, 12)]
        return " ".join(sentences)


def english_pages(pages: int, seed: int = 5) -> list[list[str]]:
    """Pages of ~55 lines of English (~550 words, ~700 word pieces): the eval corpus's
    sentences shuffled, wrapped at ~75 characters like a typeset page."""
    docs, _ = build_corpus()
    sentences = [
        s.strip() + "." for d in docs for s in d.text.replace("\n", " ").split(". ") if s.strip()
    ]
    rng = random.Random(seed)
    out: list[list[str]] = []
    for _ in range(pages):
        words = " ".join(rng.choice(sentences) for _ in range(70)).split()
        lines: list[str] = []
        line = ""
        for w in words:
            if len(line) + len(w) > 75:
                lines.append(line)
                line = ""
            line = f"{line} {w}".strip()
            if len(lines) == 55:
                break
        out.append(lines)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def bench_ingestion(quick: bool) -> dict[str, Any]:
    embedder = MiniLMEmbedder()
    await embedder.load()
    gen = ZipfText(seed=3, size=5000)
    # Raw model rate on full-length inputs (254 word pieces each).
    probe = [" ".join(gen.words_n(400)) for _ in range(16 if quick else 64)]
    tok = embedder.tokenizer()
    probe = [p[: tok.offsets(p)[253][1]] for p in probe]
    t = time.perf_counter()
    await embedder.embed(probe)
    model_rate = len(probe) / (time.perf_counter() - t)

    pages = 6 if quick else 24
    pdf = make_pdf(english_pages(pages))
    async with scratch_engine(None) as engine:
        index = ChunkIndex()
        t = time.perf_counter()
        prepared = await prepare_file(pdf, "report.pdf", embedder, ChunkingStrategy.auto())
        t_prepared = time.perf_counter()
        await index.add_file_chunks(
            engine,
            vector_store_id="vs_ingest",
            file_id="file-pdf",
            chunks=prepared.chunks,
            embeddings=prepared.embeddings,
            embedding_model=prepared.model_id,
        )
        elapsed = time.perf_counter() - t
    small = ChunkingStrategy.static(200, 50)
    t2 = time.perf_counter()
    prepared_small = await prepare_file(pdf, "report.pdf", embedder, small)
    elapsed_small = time.perf_counter() - t2
    n = len(prepared.chunks)
    return {
        "model_chunks_per_s_254_tokens": round(model_rate, 1),
        "pdf_pages": pages,
        "auto_chunks": n,
        "auto_seconds": round(elapsed, 2),
        "auto_pages_per_s": round(pages / elapsed, 2),
        "auto_chunks_per_s": round(n / elapsed, 2),
        "auto_store_seconds": round(elapsed - (t_prepared - t), 3),
        "static200_chunks": len(prepared_small.chunks),
        "static200_seconds": round(elapsed_small, 2),
        "static200_chunks_per_s": round(len(prepared_small.chunks) / elapsed_small, 2),
        "static200_pages_per_s": round(pages / elapsed_small, 2),
    }


async def fill_store(
    engine: AsyncEngine, size: int, dims: int, model_id: str, gen: ZipfText
) -> float:
    """Insert `size` synthetic chunks (random unit vectors) in 100 files; returns seconds."""
    rng = np.random.default_rng(size)
    files = 100
    per_file = size // files
    t = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(
            insert(retrieval_stores).values(vector_store_id=f"vs_{size}", generation="seed")
        )
        for f in range(files):
            vectors = rng.standard_normal((per_file, dims)).astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            await conn.execute(
                insert(retrieval_files).values(
                    vector_store_id=f"vs_{size}",
                    file_id=f"file-{f}",
                    attributes={"group": f % 10, "team": f"team-{f % 4}"},
                    embedding_model=model_id,
                    chunk_count=per_file,
                )
            )
            rows = []
            for i in range(per_file):
                body = gen.paragraph(120)
                rows.append(
                    {
                        "vector_store_id": f"vs_{size}",
                        "file_id": f"file-{f}",
                        "chunk_index": i,
                        "text": body,
                        "char_start": 0,
                        "char_end": len(body),
                        "token_count": 200,
                        "embedding": vectors[i].tobytes(),
                    }
                )
            await conn.execute(insert(retrieval_chunks), rows)
    return time.perf_counter() - t


async def bench_search(
    sizes: list[int], url: str | None, queries_per_size: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    async with scratch_engine(url) as engine:
        out = await _search_sizes(engine, sizes, queries_per_size)
    minilm = MiniLMEmbedder()
    await minilm.load()
    times = []
    for i in range(30):
        t = time.perf_counter()
        await minilm.embed([f"what is the refund policy for order {i}?"])
        times.append((time.perf_counter() - t) * 1000)
    query_embed = {"p50_ms": round(pct(times, 50), 2), "p99_ms": round(pct(times, 99), 2)}
    return out, query_embed


async def _search_sizes(
    engine: AsyncEngine, sizes: list[int], queries_per_size: int
) -> list[dict[str, Any]]:
    hashing = HashingEmbedder(384)
    gen = ZipfText(seed=11)
    out: list[dict[str, Any]] = []
    for size in sizes:
        fill_s = await fill_store(engine, size, 384, hashing.model_id, gen)
        if engine.dialect.name == "postgresql":
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE retrieval_chunks"))
        searcher = HybridSearcher(ChunkIndex(), hashing)
        queries = [gen.query(random.Random(i)) for i in range(queries_per_size)]
        t = time.perf_counter()
        await searcher.search(engine, vector_store_ids=[f"vs_{size}"], query=queries[0])
        cold_ms = (time.perf_counter() - t) * 1000
        row: dict[str, Any] = {
            "chunks": size,
            "insert_s": round(fill_s, 1),
            "cold_first_search_ms": round(cold_ms, 1),
        }
        configs: dict[str, dict[str, Any]] = {
            "hybrid_auto": {"ranker": "auto"},
            "hybrid_none": {"ranker": "none"},
            "vector_only": {"mode": "vector", "ranker": "none"},
            "keyword_only": {"mode": "keyword", "ranker": "none"},
            "hybrid_auto_filtered": {
                "ranker": "auto",
                "filters": {"type": "in", "key": "group", "value": [1, 2, 3]},
            },
        }
        for name, cfg in configs.items():
            times = []
            cpu = time.process_time()
            for q in queries:
                t = time.perf_counter()
                await searcher.search(
                    engine, vector_store_ids=[f"vs_{size}"], query=q, max_num_results=10, **cfg
                )
                times.append((time.perf_counter() - t) * 1000)
            row[name] = {
                "p50_ms": round(pct(times, 50), 2),
                "p99_ms": round(pct(times, 99), 2),
                # CPU of this process (all threads; not the database server's) per search:
                # less sensitive than wall time to other work on a shared machine.
                "cpu_ms_per_search": round((time.process_time() - cpu) * 1000 / len(queries), 2),
            }
        out.append(row)
        print(f"  {size:>7} chunks: hybrid p50 {row['hybrid_auto']['p50_ms']} ms", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only, small ingestion")
    parser.add_argument(
        "--postgres", metavar="URL", help="postgresql+asyncpg:// URL for the search part"
    )
    parser.add_argument("--queries", type=int, default=None, help="queries per size and mode")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    queries = args.queries or (40 if args.quick else 100)

    load_before = os.getloadavg()[0]
    print("ingestion (real MiniLM on CPU, SQLite)...", flush=True)
    ingestion = asyncio.run(bench_ingestion(args.quick))
    print("search (synthetic vectors)...", flush=True)
    search, query_embed = asyncio.run(bench_search(sizes, args.postgres, queries))

    print(
        f"\nmachine: {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end (other work inflates every figure)"
    )
    print("\nIngestion")
    print(
        f"  MiniLM raw rate, 254-token inputs: {ingestion['model_chunks_per_s_254_tokens']} chunks/s"
    )
    print(
        f"  PDF {ingestion['pdf_pages']} pages, auto 800/400: {ingestion['auto_chunks']} chunks in "
        f"{ingestion['auto_seconds']} s = {ingestion['auto_chunks_per_s']} chunks/s, "
        f"{ingestion['auto_pages_per_s']} pages/s"
    )
    print(
        f"  PDF {ingestion['pdf_pages']} pages, static 200/50: {ingestion['static200_chunks']} chunks in "
        f"{ingestion['static200_seconds']} s = {ingestion['static200_chunks_per_s']} chunks/s, "
        f"{ingestion['static200_pages_per_s']} pages/s"
    )
    print(
        f"\nSearch latency, ms ({'postgresql' if args.postgres else 'sqlite'}; synthetic vectors; {queries} queries)"
    )
    header = f"{'chunks':>8} {'cold':>8} " + " ".join(
        f"{n:>22}"
        for n in [
            "hybrid auto p50/p99",
            "hybrid none p50/p99",
            "vector p50/p99",
            "keyword p50/p99",
            "filtered p50/p99",
        ]
    )
    print(header)
    for row in search:
        cells = [f"{row[k]['p50_ms']:>9.2f} / {row[k]['p99_ms']:<9.2f}" for k in MODES]
        print(
            f"{row['chunks']:>8} {row['cold_first_search_ms']:>8.0f} "
            + " ".join(f"{c:>22}" for c in cells)
        )
    print("  CPU ms per search (this process, all threads):")
    for row in search:
        print(
            f"{row['chunks']:>8}          "
            + " ".join(f"{row[k]['cpu_ms_per_search']:>22.2f}" for k in MODES)
        )
    print(
        f"  + MiniLM query embedding (one short query): p50 {query_embed['p50_ms']} ms, "
        f"p99 {query_embed['p99_ms']} ms"
    )
    report = {
        "ingestion": ingestion,
        "search": search,
        "minilm_query_embedding": query_embed,
        "database": "postgresql" if args.postgres else "sqlite",
        "quick": args.quick,
        "note": "search uses synthetic random unit vectors and hashing query embeddings",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            # Other work on the box inflates every figure; keep the load with the numbers.
            "loadavg_1min_before": round(load_before, 2),
            "loadavg_1min_after": round(os.getloadavg()[0], 2),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "retrieval_speed_quick.json" if args.quick else "retrieval_speed.json"
    if args.postgres:
        name = name.replace(".json", "_postgres.json")
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS / name}")


if __name__ == "__main__":
    main()
