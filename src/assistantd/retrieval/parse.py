"""Turn an uploaded file's bytes into plain text for chunking.

`parse_document` is synchronous and CPU-bound (PDF text extraction can take seconds).
Async code calls `parse_bounded`, which bounds the work per file (`ParseLimits`): a DOCX
or PPTX (a zip) is checked for its decompressed size and paragraph count before any XML is
parsed, and every file but small plain text is parsed in a child process with a wall-time
and memory limit, so neither a hostile file nor the GIL-holding C parsers stall the server.

The type is decided by the file name's extension first and the mime type second,
because clients (the OpenAI SDKs included) often send ``application/octet-stream``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Literal

from .errors import InvalidFile, UnsupportedFile

DocumentKind = Literal["text", "markdown", "html", "json", "code", "pdf", "docx", "pptx"]

_TEXT_EXTENSIONS = {"txt", "text", "log", "csv", "tsv", "rst", "org", "adoc"}
_MARKDOWN_EXTENSIONS = {"md", "markdown", "mdx"}
_HTML_EXTENSIONS = {"html", "htm", "xhtml"}
_CODE_EXTENSIONS = {
    "c", "h", "cc", "cpp", "cxx", "hpp", "cs", "css", "scss", "go", "java", "kt", "kts",
    "js", "mjs", "cjs", "jsx", "ts", "tsx", "php", "py", "pyi", "rb", "rs", "sh", "bash",
    "zsh", "ps1", "swift", "scala", "sql", "tex", "r", "lua", "pl", "hs", "ex", "exs",
    "erl", "clj", "dart", "vue", "svelte", "yaml", "yml", "toml", "ini", "cfg", "xml",
    "proto", "graphql", "dockerfile", "makefile",
}  # fmt: skip
_MIME_KINDS: dict[str, DocumentKind] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
}

# Block-level HTML elements: text on either side of one belongs on separate lines.
_HTML_BLOCKS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "tr", "ul", "caption", "summary", "details",
}  # fmt: skip
_HTML_DROP = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """The text of one file and what we learned while reading it."""

    text: str
    kind: DocumentKind
    # Pages of a PDF, slides of a PPTX, the page count Word saved in a DOCX; None for text.
    page_count: int | None


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What parsing one file may take; past any of them the file is `InvalidFile`."""

    #: total uncompressed size of a zip's (DOCX, PPTX) members, declared and actual
    max_unzipped_bytes: int = 64 * 1024 * 1024
    #: paragraphs (DOCX `w:p`, PPTX `a:p`) in a zip's members
    max_paragraphs: int = 100_000
    #: wall time of parsing in the child process
    timeout_seconds: float = 60.0
    #: address-space limit of the child process
    memory_mb: int = 1024
    #: plain text up to this size is parsed in a thread instead of a child process
    inline_bytes: int = 1024 * 1024


_ZIP_KINDS = {"docx", "pptx"}
_PARAGRAPH_TAGS = (b"<w:p>", b"<w:p ", b"<a:p>", b"<a:p ")
_READ_BLOCK = 1024 * 1024


def check_zip(data: bytes, filename: str, limits: ParseLimits) -> None:
    """Refuse a zip whose members decompress past the limits, before anything parses them.

    The declared sizes are checked first (cheap, from the central directory); the members
    are then decompressed in blocks, counting the real bytes and paragraph tags, and
    abandoned as soon as a limit is passed (a zip can lie about its sizes).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InvalidFile(
            f"{filename!r} is not a readable {_kind_name(filename)} file: {exc}"
        ) from exc
    with archive:
        declared = sum(info.file_size for info in archive.infolist())
        if declared > limits.max_unzipped_bytes:
            raise InvalidFile(_too_big(filename, declared, limits))
        total = paragraphs = 0
        for info in archive.infolist():
            if info.is_dir():
                continue
            tail = b""
            try:
                with archive.open(info) as member:
                    while block := member.read(_READ_BLOCK):
                        total += len(block)
                        if total > limits.max_unzipped_bytes:
                            raise InvalidFile(_too_big(filename, total, limits))
                        if info.filename.endswith(".xml"):
                            window = tail + block
                            paragraphs += sum(window.count(tag) for tag in _PARAGRAPH_TAGS)
                            tail = block[-4:]
                            if paragraphs > limits.max_paragraphs:
                                raise InvalidFile(
                                    f"{filename!r} has more than {limits.max_paragraphs} paragraphs "
                                    "(ASSISTANTD_INGEST_MAX_PARAGRAPHS); split it into smaller files"
                                )
            except (
                zipfile.BadZipFile,
                zipfile.LargeZipFile,
                NotImplementedError,
                OSError,
                EOFError,
            ) as exc:
                raise InvalidFile(
                    f"{filename!r} is not a readable {_kind_name(filename)} file: {exc}"
                ) from exc


def _kind_name(filename: str) -> str:
    return PurePosixPath(filename).suffix.lstrip(".").upper() or "zip"


def _too_big(filename: str, size: int, limits: ParseLimits) -> str:
    return (
        f"{filename!r} decompresses to more than {limits.max_unzipped_bytes} bytes "
        f"(at least {size}; ASSISTANTD_INGEST_MAX_UNZIPPED_BYTES)"
    )


def parse_limited(
    data: bytes, filename: str, mime_type: str | None, limits: ParseLimits
) -> ParsedDocument:
    """`parse_document` after the zip checks (synchronous; see `parse_bounded`)."""
    if detect_kind(filename, mime_type) in _ZIP_KINDS:
        check_zip(data, filename, limits)
    return parse_document(data, filename, mime_type)


async def parse_bounded(
    data: bytes, filename: str, mime_type: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    """Parse off the event loop within `limits`: small plain text in a thread, anything
    else in a child process killed past `timeout_seconds` and limited to `memory_mb`."""
    limits = limits or ParseLimits()
    kind = detect_kind(filename, mime_type)  # UnsupportedFile before starting anything
    if kind in {"text", "markdown", "code", "json"} and len(data) <= limits.inline_bytes:
        return await asyncio.to_thread(parse_limited, data, filename, mime_type, limits)
    header = json.dumps({"filename": filename, "mime_type": mime_type, "limits": asdict(limits)})
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_BOOTSTRAP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(
            child.communicate(header.encode() + b"\n" + data), limits.timeout_seconds
        )
    except TimeoutError:
        raise InvalidFile(
            f"{filename!r} took longer than {limits.timeout_seconds:g} s to parse "
            "(ASSISTANTD_INGEST_PARSE_TIMEOUT_SECONDS)"
        ) from None
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise InvalidFile(
            f"{filename!r} could not be parsed within {limits.memory_mb} MB "
            f"(ASSISTANTD_INGEST_PARSE_MEMORY_MB; the parser exited with {child.returncode})"
        )
    if answer.get("error") == "invalid_file":
        raise InvalidFile(answer["message"])
    if answer.get("error") == "unsupported_file":
        raise UnsupportedFile(answer["message"])
    if "error" in answer:
        raise RuntimeError(answer["message"])  # a fault of ours: the file ends `server_error`
    return ParsedDocument(text=answer["text"], kind=answer["kind"], page_count=answer["page_count"])


# The child imports this module without `assistantd.retrieval`'s package init (the index,
# SQLAlchemy, numpy: over a second of start-up a file does not need).
_CHILD_BOOTSTRAP = """
import pathlib, sys, types
import assistantd
package = types.ModuleType("assistantd.retrieval")
package.__path__ = [str(pathlib.Path(assistantd.__file__).parent / "retrieval")]
sys.modules["assistantd.retrieval"] = package
from assistantd.retrieval.parse import child_main
child_main()
"""


def child_main() -> None:
    """The child process of `parse_bounded`: a JSON header line and the bytes on stdin,
    one JSON answer on stdout."""
    import resource

    request = json.loads(sys.stdin.buffer.readline())
    data = sys.stdin.buffer.read()
    limits = ParseLimits(**request["limits"])
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    answer: dict[str, object]
    try:
        doc = parse_limited(data, request["filename"], request["mime_type"], limits)
        answer = {"text": doc.text, "kind": doc.kind, "page_count": doc.page_count}
    except (InvalidFile, UnsupportedFile) as exc:
        answer = {"error": exc.code, "message": exc.message}
    except MemoryError:
        answer = {
            "error": "invalid_file",
            "message": (
                f"{request['filename']!r} needs more than {limits.memory_mb} MB to parse "
                "(ASSISTANTD_INGEST_PARSE_MEMORY_MB)"
            ),
        }
    except Exception as exc:
        answer = {
            "error": "server_error",
            "message": f"parsing {request['filename']!r} failed: {exc}",
        }
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


def detect_kind(filename: str, mime_type: str | None = None) -> DocumentKind:
    """Decide how to read a file, or raise `UnsupportedFile` naming what was seen."""
    path = PurePosixPath(filename.replace("\\", "/"))
    ext = path.suffix.lower().lstrip(".")
    if not ext and path.name.lower() in {"dockerfile", "makefile"}:
        ext = path.name.lower()
    if ext in _TEXT_EXTENSIONS:
        return "text"
    if ext in _MARKDOWN_EXTENSIONS:
        return "markdown"
    if ext in _HTML_EXTENSIONS:
        return "html"
    if ext == "json":
        return "json"
    if ext in _CODE_EXTENSIONS:
        return "code"
    if ext in {"pdf", "docx", "pptx"}:
        return ext  # type: ignore[return-value]  # the literal values equal the extensions
    mime = (mime_type or "").split(";")[0].strip().lower()
    if not ext and mime in _MIME_KINDS:
        return _MIME_KINDS[mime]
    if not ext and mime.startswith("text/"):
        return "text"
    shown = f".{ext}" if ext else f"mime type {mime or 'unknown'}"
    raise UnsupportedFile(
        f"{filename!r} ({shown}) is not a supported file type for file search; supported: "
        "text, Markdown, HTML, JSON, source code, PDF, DOCX and PPTX"
    )


def parse_document(data: bytes, filename: str, mime_type: str | None = None) -> ParsedDocument:
    """Extract the searchable text of a file.

    Raises `UnsupportedFile` for types we do not read and `InvalidFile` when the bytes are
    corrupt for their type or hold no text (a scanned PDF without OCR, an empty file).
    """
    kind = detect_kind(filename, mime_type)
    page_count: int | None = None
    if kind in {"text", "markdown", "code"}:
        text = _decode_text(data, filename)
    elif kind == "html":
        text = _html_to_text(_decode_text(data, filename))
    elif kind == "json":
        text = _json_to_text(_decode_text(data, filename), filename)
    elif kind == "pdf":
        text, page_count = _pdf_to_text(data, filename)
    elif kind == "docx":
        text, page_count = _docx_to_text(data, filename)
    else:
        text, page_count = _pptx_to_text(data, filename)
    text = _tidy(text)
    if not text:
        raise InvalidFile(
            f"{filename!r} contains no extractable text"
            + (" (a scanned PDF needs OCR first)" if kind == "pdf" else "")
        )
    return ParsedDocument(text=text, kind=kind, page_count=page_count)


def _decode_text(data: bytes, filename: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidFile(
                f"{filename!r} has a UTF-16 byte-order mark but is not valid UTF-16"
            ) from exc
    if b"\x00" in data[:8192]:
        raise InvalidFile(f"{filename!r} looks like binary data, not text (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy 8-bit text: cp1252 is the most common non-UTF-8 encoding in uploads; the
        # replacement character keeps a stray byte from failing the whole file.
        return data.decode("cp1252", errors="replace")


def _tidy(text: str) -> str:
    """Normalise line endings and collapse blank-line runs, keeping paragraph breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _html_to_text(html: str) -> str:
    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

    with warnings.catch_warnings():
        # A short document such as "index.html" looks like a file name to bs4; it is content.
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    for tag in soup.find_all(re.compile(r"^h[1-6]$")):
        tag.insert_before("\n\n" + "#" * int(tag.name[1]) + " ")
        tag.insert_after("\n\n")
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" | ")
    for tag in soup.find_all("li"):
        tag.insert(0, "- ")
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    text = soup.get_text()
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" ?\| *\n", "\n", text)
    return "\n".join(line.strip() for line in text.split("\n"))


def _json_to_text(raw: str, filename: str) -> str:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"{filename!r} is not valid JSON: {exc}") from exc
    # Re-indent so minified JSON still splits into chunks at structural boundaries.
    return json.dumps(value, indent=2, ensure_ascii=False)


def _pdf_to_text(data: bytes, filename: str) -> tuple[str, int]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidFile(f"{filename!r} is an encrypted PDF; upload it without a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except InvalidFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        # pypdf reports structural damage through several exception types.
        raise InvalidFile(f"{filename!r} is not a readable PDF: {exc}") from exc
    return "\n\n".join(p.strip() for p in pages), len(pages)


def _docx_to_text(data: bytes, filename: str) -> tuple[str, int | None]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidFile(f"{filename!r} is not a readable DOCX file: {exc}") from exc
    except Exception as exc:  # python-docx raises its own PackageNotFoundError and lxml errors
        raise InvalidFile(f"{filename!r} is not a readable DOCX file: {exc}") from exc
    parts: list[str] = []
    # Looking a paragraph's style up walks styles.xml: once per style, not per paragraph.
    style_names: dict[str | None, str] = {}
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            style_id = block._p.style
            style = style_names.get(style_id)
            if style is None:
                style = style_names[style_id] = (
                    (block.style.name or "") if block.style is not None else ""
                )
            level = re.fullmatch(r"Heading (\d)", style)
            prefix = "#" * int(level.group(1)) + " " if level else ""
            parts.append(prefix + block.text)
        elif isinstance(block, Table):
            for row in block.rows:
                parts.append(" | ".join(cell.text.strip() for cell in row.cells))
            parts.append("")
    return "\n".join(parts), _docx_saved_pages(data)


def _docx_saved_pages(data: bytes) -> int | None:
    """The page count Word stores in docProps/app.xml; absent for generated files."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            app = archive.read("docProps/app.xml").decode("utf-8", errors="replace")
    except (KeyError, zipfile.BadZipFile):
        return None
    found = re.search(r"<Pages>(\d+)</Pages>", app)
    return int(found.group(1)) if found else None


def _pptx_to_text(data: bytes, filename: str) -> tuple[str, int]:
    from pptx import Presentation

    try:
        presentation = Presentation(io.BytesIO(data))
    except Exception as exc:  # python-pptx raises PackageNotFoundError, KeyError, lxml errors
        raise InvalidFile(f"{filename!r} is not a readable PPTX file: {exc}") from exc
    slides: list[str] = []
    for number, slide in enumerate(presentation.slides, start=1):
        lines = [f"Slide {number}"]
        for shape in slide.shapes:
            if shape.has_text_frame:
                lines.extend(p.text for p in shape.text_frame.paragraphs if p.text.strip())
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    lines.append(" | ".join(cell.text.strip() for cell in row.cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(f"Notes: {notes}")
        slides.append("\n".join(lines))
    body = "\n\n".join(slides)
    # A deck of empty slides has only the "Slide n" labels we added: that is no text.
    if not re.sub(r"Slide \d+", "", body).strip():
        return "", len(slides)
    return body, len(slides)
