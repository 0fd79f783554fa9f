"""A corpus of real text chunks for `vector_scale.py --data real`, embedded with all-MiniLM-L6-v2.

No download: the text is what this machine already holds, in English prose:

- docstrings (triple-quoted strings) and ``#`` comments of the Python files in the shared
  venv's site-packages, in the system's Python (``/usr/lib/python3*``), in pyenv's CPython
  3.12 and 3.13, and in the Google Cloud SDK;
- ``.md`` / ``.rst`` / ``.txt`` files beside them;
- ``/usr/share/doc`` (plain and ``.gz``) and the English man pages (``/usr/share/man/man[1-8]``,
  groff requests and escapes stripped).

Each document (one docstring, one file's comments, one text file) is cut into windows of
``--words`` words (a short last window is kept when it has half as many); windows whose
words are mostly not words (code, tables, hex) are dropped, and the rest are de-duplicated
by the hash of their lower-cased text. Documents are split by the hash of their text:
1 in 64 is held out and never enters the store; the queries are the first sentences
(6 to 30 words) of held-out docstrings, short query-like strings rather than chunks.

The chunk order is shuffled (seed 1), so the first N rows are a random sample of N chunks.
Vectors are L2-normalized float32, written to ``<cache>/vectors.npy`` (a memory map,
filled block by block; an interrupted run resumes where it stopped).

    nice -n 19 .venv/bin/python -m bench.real_corpus build --chunks 1050000
    nice -n 19 .venv/bin/python -m bench.real_corpus rate --sample 2000

The cache is ``$ASSISTANTD_BENCH_CACHE`` or ``~/.cache/assistantd-bench``, outside git.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(os.environ.get("ASSISTANTD_BENCH_CACHE", Path.home() / ".cache" / "assistantd-bench"))
DIMS = 384

_VENV_SITE = Path(sys.prefix) / "lib"
PY_ROOTS = [
    _VENV_SITE,
    Path("/usr/lib/python3"),
    Path("/usr/lib/python3.11"),
    Path("/root/.pyenv/versions/3.12.1/lib"),
    Path("/root/.pyenv/versions/3.13.0/lib"),
    Path("/usr/lib/google-cloud-sdk"),
]
DOC_ROOTS = [Path("/usr/share/doc")] + [Path(f"/usr/share/man/man{i}") for i in range(1, 9)]

_DOCSTRING = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.S)
_COMMENT = re.compile(r"^[ \t]*#+[ \t]?(.*)$", re.M)
_WORD = re.compile(r"^[A-Za-z][a-z]*[,.;:!?)'\"]*$|^[(\"'][A-Za-z][a-z]*$")
_GROFF_ESCAPE = re.compile(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&|^%e-]|\\s[+-]?\d")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def _read(path: Path) -> str:
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
    if b"\0" in raw[:4096]:
        return ""
    return raw.decode("utf-8", "replace")


def _strip_groff(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith((".", "'")):
            rest = line.split(None, 1)
            if len(rest) == 2 and rest[0] in (".B", ".I", ".BR", ".IR", ".BI", ".SH", ".SS"):
                lines.append(rest[1].replace('"', ""))
            continue
        lines.append(line)
    return _GROFF_ESCAPE.sub("", "\n".join(lines)).replace("\\-", "-").replace("\\", "")


def _files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in sorted(files):
                yield Path(dirpath) / name


def documents() -> Iterator[tuple[str, str]]:
    """(kind, text) of every prose document, files of identical content read once."""
    seen: set[bytes] = set()

    def fresh(text: str) -> bool:
        h = hashlib.blake2b(text.encode(), digest_size=12).digest()
        if h in seen:
            return False
        seen.add(h)
        return True

    for path in _files(PY_ROOTS):
        if path.name.endswith(".py"):
            src = _read(path)
            if not src or not fresh(src):
                continue
            for m in _DOCSTRING.finditer(src):
                yield "docstring", m.group(1) or m.group(2) or ""
            yield "comments", "\n".join(_COMMENT.findall(src))
        elif path.name.endswith((".md", ".rst", ".txt")) and "LICENSE" not in path.name.upper():
            text = _read(path)
            if text and fresh(text):
                yield "text", text
    for path in _files(DOC_ROOTS):
        if "copyright" in path.name.lower() or "license" in path.name.lower():
            continue
        text = _read(path)
        if text and fresh(text):
            man = "/man/" in str(path.parent)
            yield ("man", _strip_groff(text)) if man else ("doc", text)


def _prose(words: list[str]) -> bool:
    return sum(1 for w in words if _WORD.match(w)) >= 0.7 * len(words)


def first_sentence(doc: str) -> str | None:
    para = doc.strip().split("\n\n", 1)[0]
    sentence = _SENTENCE_END.split(" ".join(para.split()), 1)[0]
    words = sentence.split()
    return sentence if 6 <= len(words) <= 30 and _prose(words) else None


def collect(n_chunks: int, words: int) -> tuple[list[str], list[str], dict[str, Any]]:
    """Up to `n_chunks` distinct chunks of held-in documents, and the held-out queries."""
    chunks: list[str] = []
    seen: set[bytes] = set()
    queries: list[str] = []
    kinds: dict[str, int] = {}
    docs = 0
    for kind, doc in documents():
        docs += 1
        h = hashlib.blake2b(doc.encode(), digest_size=8).digest()
        if h[0] % 64 == 0:  # held out
            if kind == "docstring" and (q := first_sentence(doc)) is not None:
                queries.append(q)
            continue
        tokens = [
            t
            for line in doc.splitlines()
            if not line.lstrip().startswith((">>>", "..."))
            for t in line.split()
        ]
        for start in range(0, len(tokens), words):
            window = tokens[start : start + words]
            if len(window) < words // 2 or not _prose(window):
                continue
            chunk = " ".join(window)
            key = hashlib.blake2b(chunk.lower().encode(), digest_size=12).digest()
            if key in seen:
                continue
            seen.add(key)
            chunks.append(chunk)
            kinds[kind] = kinds.get(kind, 0) + 1
    held = set(seen)
    queries = list(
        dict.fromkeys(
            q
            for q in queries
            if hashlib.blake2b(q.lower().encode(), digest_size=12).digest() not in held
        )
    )
    rng = np.random.default_rng(1)
    order = rng.permutation(len(chunks))
    chunks = [chunks[i] for i in order[:n_chunks]]
    qorder = rng.permutation(len(queries))
    queries = [queries[i] for i in qorder]
    meta = {
        "documents": docs,
        "distinct_chunks_found": len(order),
        "chunks": len(chunks),
        "words_per_chunk": words,
        "chunks_by_source": kinds,
        "queries_found": len(queries),
    }
    return chunks, queries, meta


# -- embedding and the cache ---------------------------------------------------------------


def cache_dir(words: int) -> Path:
    return CACHE / f"real-{words}w"


def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from assistantd.retrieval.tokens import minilm_model_dir

    torch.set_num_threads(os.cpu_count() or 1)
    return SentenceTransformer(str(minilm_model_dir()), device="cpu", local_files_only=True)


def _encode(model: Any, texts: list[str]) -> np.ndarray[Any, Any]:
    out = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.ascontiguousarray(out, dtype=np.float32)


def build(n_chunks: int, words: int, n_queries: int, block: int = 2048) -> Path:
    """Collect the texts once, then embed queries and chunks into the cache, resuming."""
    d = cache_dir(words)
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "meta.json").exists():
        t = time.perf_counter()
        chunks, queries, meta = collect(n_chunks, words)
        meta["collect_s"] = round(time.perf_counter() - t, 1)
        (d / "chunks.txt").write_text("\n".join(chunks) + "\n")
        (d / "queries.txt").write_text("\n".join(queries[:n_queries]) + "\n")
        (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"collected: {meta}", flush=True)
    chunks = (d / "chunks.txt").read_text().splitlines()
    queries = (d / "queries.txt").read_text().splitlines()
    model = _model()
    if not (d / "queries.npy").exists():
        np.save(d / "queries.npy", _encode(model, queries))
    path = d / "vectors.npy"
    vecs = (
        np.load(path, mmap_mode="r+")
        if path.exists()
        else np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(chunks), DIMS))
    )
    done_file = d / "embedded"
    done = int(done_file.read_text()) if done_file.exists() else 0
    t0, start = time.perf_counter(), done
    while done < len(chunks):
        stop = min(len(chunks), done + block)
        vecs[done:stop] = _encode(model, chunks[done:stop])
        vecs.flush()
        done = stop
        done_file.write_text(str(done))
        rate = (done - start) / (time.perf_counter() - t0)
        print(
            f"embedded {done:,}/{len(chunks):,}, {rate:.0f} chunks/s, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return d


def load(n: int, words: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], dict[str, Any]]:
    """The first `n` embedded chunks' vectors (a random sample of the corpus), the queries'."""
    d = cache_dir(words)
    done = int((d / "embedded").read_text()) if (d / "embedded").exists() else 0
    total = int(np.load(d / "vectors.npy", mmap_mode="r").shape[0]) if done else 0
    if done and total < n:
        raise SystemExit(f"{d} has {total:,} distinct chunks, fewer than {n:,}: try fewer --words")
    if done < n:
        raise SystemExit(
            f"{d} holds {done:,} embedded chunks, fewer than {n:,}: run "
            f"`nice -n 19 python -m bench.real_corpus build --words {words} --chunks {n}` first"
        )
    vecs = np.ascontiguousarray(np.load(d / "vectors.npy", mmap_mode="r")[:n])
    meta = json.loads((d / "meta.json").read_text())
    meta["embedded"] = done
    meta["cache"] = str(d)
    return vecs, np.load(d / "queries.npy"), meta


def rate(words: int, sample: int) -> None:
    """Chunks/s of the model on `sample` random chunks of the collected corpus."""
    d = cache_dir(words)
    chunks = (d / "chunks.txt").read_text().splitlines()
    rng = np.random.default_rng(5)
    texts = [chunks[i] for i in rng.choice(len(chunks), sample, replace=False)]
    model = _model()
    _encode(model, texts[:64])
    t = time.perf_counter()
    _encode(model, texts)
    dt = time.perf_counter() - t
    print(
        json.dumps(
            {
                "words": words,
                "sample": sample,
                "chunks_per_s": round(sample / dt, 1),
                "load": round(os.getloadavg()[0], 1),
            }
        )
    )


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("action", choices=["build", "rate"])
    parser.add_argument("--chunks", type=int, default=1_050_000)
    parser.add_argument("--words", type=int, default=30)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    if args.action == "build":
        build(args.chunks, args.words, args.queries)
    else:
        rate(args.words, args.sample)


if __name__ == "__main__":
    main()
