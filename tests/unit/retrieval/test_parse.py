"""parse_document: every supported format, and the two kinds of refusal."""

from __future__ import annotations

import json

import pytest

from assistantd.retrieval import InvalidFile, UnsupportedFile, parse_document
from assistantd.retrieval.parse import detect_kind
from assistantd.testing.documents import make_docx, make_pdf, make_pptx


def test_plain_text_and_markdown_keep_their_text() -> None:
    doc = parse_document(b"Hello\r\nworld\n\n\n\nbye", "notes.txt")
    assert doc.text == "Hello\nworld\n\nbye"
    assert doc.kind == "text" and doc.page_count is None
    md = parse_document("# Title\n\n- café ✓".encode(), "README.md")
    assert md.kind == "markdown" and md.text == "# Title\n\n- café ✓"


def test_utf8_bom_utf16_and_cp1252_are_decoded() -> None:
    assert parse_document("\ufeffbom text".encode(), "a.txt").text == "bom text"
    assert parse_document("grüße".encode("utf-16"), "a.txt").text == "grüße"
    assert parse_document("naïve".encode("cp1252"), "a.txt").text == "naïve"


def test_html_drops_markup_and_scripts_but_keeps_structure() -> None:
    html = b"""<html><head><title>t</title><style>p{color:red}</style></head><body>
    <h2>Returns</h2><p>Return within <b>30</b> days.</p><script>alert(1)</script>
    <ul><li>Receipt</li><li>Box</li></ul><table><tr><td>A</td><td>B</td></tr></table></body></html>"""
    doc = parse_document(html, "page.html")
    assert doc.kind == "html"
    assert "## Returns" in doc.text
    assert "Return within 30 days." in doc.text
    assert "- Receipt\n" in doc.text and "- Box" in doc.text
    assert "A | B" in doc.text
    assert "alert" not in doc.text and "color" not in doc.text and "<" not in doc.text


def test_json_is_validated_and_reindented() -> None:
    doc = parse_document(b'{"a":{"b":[1,2]},"name":"Zed"}', "data.json")
    assert json.loads(doc.text) == {"a": {"b": [1, 2]}, "name": "Zed"}
    assert "\n" in doc.text
    with pytest.raises(InvalidFile, match="not valid JSON"):
        parse_document(b"{broken", "data.json")


@pytest.mark.parametrize("name", ["main.py", "lib.rs", "App.tsx", "query.sql", "Dockerfile"])
def test_source_code_is_text(name: str) -> None:
    doc = parse_document(b"def f():\n    return 1\n", name)
    assert doc.kind == "code" and "return 1" in doc.text


def test_pdf_text_and_page_count() -> None:
    data = make_pdf([["Quarterly report", "Revenue grew (by 12%)."], ["Second page text"]])
    doc = parse_document(data, "report.pdf")
    assert doc.kind == "pdf" and doc.page_count == 2
    assert "Revenue grew (by 12%)." in doc.text and "Second page text" in doc.text


def test_docx_paragraphs_headings_and_tables() -> None:
    data = make_docx(
        "Leave policy",
        ["Employees get 28 days.", "Carry over 5."],
        [["Role", "Days"], ["Staff", "28"]],
    )
    doc = parse_document(data, "policy.docx")
    assert doc.kind == "docx"
    assert doc.text.startswith("# Leave policy")
    assert "Employees get 28 days." in doc.text and "Staff | 28" in doc.text


def test_pptx_slides_and_notes() -> None:
    data = make_pptx(
        [("Roadmap", "Ship v2 in March"), ("Risks", "Supplier delays")], notes="Say hi"
    )
    doc = parse_document(data, "deck.pptx")
    assert doc.kind == "pptx" and doc.page_count == 2
    assert "Slide 1\nRoadmap\nShip v2 in March" in doc.text
    assert "Supplier delays" in doc.text and "Notes: Say hi" in doc.text


def test_mime_type_decides_when_there_is_no_extension() -> None:
    assert detect_kind("upload", "application/pdf") == "pdf"
    assert detect_kind("upload", "text/plain; charset=utf-8") == "text"
    # The extension wins over a generic mime type sent by SDKs.
    assert detect_kind("a.md", "application/octet-stream") == "markdown"


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("photo.png", None),
        ("archive.zip", None),
        ("legacy.doc", None),
        ("upload", "image/png"),
        ("blob", None),
    ],
)
def test_unsupported_types(name: str, mime: str | None) -> None:
    with pytest.raises(UnsupportedFile) as info:
        parse_document(b"whatever", name, mime)
    assert info.value.code == "unsupported_file"
    assert name in info.value.message


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"%PDF-1.4 garbage", "bad.pdf", "not a readable PDF"),
        (b"PK\x03\x04 not really a zip", "bad.docx", "not a readable DOCX"),
        (b"nope", "bad.pptx", "not a readable PPTX"),
        (b"   \n\n  ", "empty.txt", "no extractable text"),
        (b"\x00\x01\x02binary", "blob.txt", "binary"),
    ],
)
def test_invalid_files(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(InvalidFile, match=reason) as info:
        parse_document(data, name)
    assert info.value.code == "invalid_file"


def test_pdf_without_text_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="OCR"):
        parse_document(make_pdf([[]]), "scan.pdf")


def test_empty_presentation_is_invalid() -> None:
    import io

    from pptx import Presentation

    buffer = io.BytesIO()
    presentation = Presentation()
    presentation.slides.add_slide(presentation.slide_layouts[6])  # blank layout
    presentation.save(buffer)
    with pytest.raises(InvalidFile):
        parse_document(buffer.getvalue(), "blank.pptx")
