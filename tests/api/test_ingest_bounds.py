"""Ingestion is bounded per file (decompressed size, paragraphs, chunks, parse time and
memory), runs off the event loop, and fails a file past a bound with `invalid_file` while
the server keeps answering."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zipfile

import httpx
import openai
import pytest

from assistantd.retrieval.chunk import ChunkingStrategy, chunk_bounded
from assistantd.retrieval.errors import InvalidFile
from assistantd.retrieval.parse import ParseLimits, check_zip, parse_bounded
from assistantd.retrieval.tokens import minilm_tokenizer
from assistantd.testing.server import Server

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>'
)


def docx(paragraphs: int, text: str = "ab") -> bytes:
    """A minimal real DOCX with `paragraphs` short paragraphs."""
    body = f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" * paragraphs
    document = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{body}</w:body></w:document>'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", RELS)
        z.writestr("word/document.xml", document)
    return out.getvalue()


def hostile_docx() -> bytes:
    """The probe's file: about 20 MB of short paragraphs, compressed to tens of KB."""
    return docx(20 * 1024 * 1024 // 38)


def lying_zip(real: bytes) -> bytes:
    """`real` with word/document.xml's declared uncompressed size rewritten to 100 bytes."""
    data = bytearray(real)
    with zipfile.ZipFile(io.BytesIO(real)) as z:
        info = z.getinfo("word/document.xml")
    # local header: uncompressed size at +22; central directory entry: at +24
    struct.pack_into("<I", data, info.header_offset + 22, 100)
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len] == b"word/document.xml":
            struct.pack_into("<I", data, pos + 24, 100)
        pos += 4
    return bytes(data)


def test_zip_checks() -> None:
    limits = ParseLimits(max_unzipped_bytes=1024 * 1024, max_paragraphs=1000)
    check_zip(docx(500), "ok.docx", limits)  # within both
    with pytest.raises(InvalidFile, match="more than 1000 paragraphs"):
        check_zip(docx(1001), "many.docx", limits)
    with pytest.raises(InvalidFile, match="decompresses to more than 1048576 bytes"):
        check_zip(docx(40_000, "x" * 30), "big.docx", ParseLimits(max_unzipped_bytes=1024 * 1024))
    # A zip that declares a small size but holds more: caught while decompressing.
    lying = lying_zip(docx(40_000, "x" * 30))
    with pytest.raises(InvalidFile):
        check_zip(lying, "lying.docx", ParseLimits(max_unzipped_bytes=1024 * 1024))
    slides = io.BytesIO()
    with zipfile.ZipFile(slides, "w", zipfile.ZIP_DEFLATED) as z:
        for n in range(3):
            z.writestr(f"ppt/slides/slide{n}.xml", "<a:p><a:r><a:t>x</a:t></a:r></a:p>" * 400)
    with pytest.raises(InvalidFile, match="more than 1000 paragraphs"):
        check_zip(slides.getvalue(), "deck.pptx", limits)
    with pytest.raises(InvalidFile, match="not a readable DOCX"):
        check_zip(b"PK\x03\x04 not really", "broken.docx", limits)


def test_parse_in_child_within_time_and_memory() -> None:
    text = asyncio.run(parse_bounded(docx(50), "fine.docx"))
    assert text.text.count("ab") == 50 and text.kind == "docx"
    with pytest.raises(InvalidFile, match="took longer than"):
        asyncio.run(
            parse_bounded(docx(50_000), "slow.docx", limits=ParseLimits(timeout_seconds=0.05))
        )
    with pytest.raises(InvalidFile, match="MB"):
        asyncio.run(parse_bounded(docx(50_000), "fat.docx", limits=ParseLimits(memory_mb=64)))


def test_chunk_bound() -> None:
    text = "word " * 5000
    strategy = ChunkingStrategy.static(100, 0)
    offsets, chunks = chunk_bounded(text, minilm_tokenizer(), strategy, 50, "ok.txt")
    assert len(offsets) == 5000 and len(chunks) == 50
    assert chunks[-1].char_end == len(text) - 1 and type(chunks[0].char_start) is int
    with pytest.raises(InvalidFile, match="more text than 49 chunks"):
        chunk_bounded(text, minilm_tokenizer(), strategy, 49, "big.txt")


def test_hostile_docx_fails_fast_and_the_server_stays_responsive(
    client: openai.OpenAI, server: Server
) -> None:
    data = hostile_docx()
    assert len(data) < 200_000
    upload = client.files.create(file=("probe.docx", io.BytesIO(data)), purpose="assistants")
    store = client.vector_stores.create(name="probe")
    started = time.monotonic()
    client.vector_stores.files.create(vector_store_id=store.id, file_id=upload.id)
    latencies: list[float] = []
    status = "in_progress"
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.keys['alpha']}"}
    ) as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            r = http.get(f"/files/{upload.id}")
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200
            if len(latencies) % 10 == 0:
                status = client.vector_stores.files.retrieve(
                    upload.id, vector_store_id=store.id
                ).status
                if status != "in_progress":
                    break
            time.sleep(0.005)
    elapsed = time.monotonic() - started
    vs_file = client.vector_stores.files.retrieve(upload.id, vector_store_id=store.id)
    assert vs_file.status == "failed", vs_file
    assert vs_file.last_error is not None and vs_file.last_error.code == "invalid_file"
    assert "paragraphs" in vs_file.last_error.message
    assert elapsed < 20
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < 0.25, f"p99 {p99 * 1000:.0f} ms over {len(latencies)} pings"
