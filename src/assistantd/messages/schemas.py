from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from assistantd.core.schemas import Metadata, Wire
from assistantd.messages.wire import Attachment as AttachmentObject
from assistantd.messages.wire import MessageContent

#: OpenAI's cap on a message's text (CONTRACT §7), for a string and for each text part.
MAX_MESSAGE_CHARS = 256_000


class TextPart(Wire):
    type: Literal["text"]
    text: str = Field(max_length=MAX_MESSAGE_CHARS)


class ImageFile(Wire):
    file_id: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImageFilePart(Wire):
    type: Literal["image_file"]
    image_file: ImageFile


def _check_image_url(url: str) -> str:
    """An `image_url` must be an external http(s) URL with a host, as OpenAI's check: a
    `data:` URL is refused there ("Expected a valid URL"), and `file:`/`ftp:` URLs would be
    fetched (or read) by whatever model backend the prompt is sent to."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced [ in the host
        ok = False
    if not ok:
        raise PydanticCustomError("url_invalid", "invalid URL")
    return url


class ImageURL(Wire):
    url: Annotated[str, AfterValidator(_check_image_url)]
    detail: Literal["auto", "low", "high"] = "auto"


class ImageURLPart(Wire):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImageFilePart | ImageURLPart, Field(discriminator="type")]


class AttachmentTool(Wire):
    type: Literal["code_interpreter", "file_search"]


class Attachment(Wire):
    file_id: str
    tools: list[AttachmentTool] = Field(default_factory=list)

    @field_validator("tools", mode="before")
    @classmethod
    def _v1_retrieval(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                {"type": "file_search"}
                if isinstance(t, dict) and t.get("type") == "retrieval"
                else t
                for t in value
            ]
        return value


class MessageCreate(Wire):
    role: Literal["user", "assistant"]
    content: (
        Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]
        | Annotated[list[ContentPart], Field(min_length=1)]
    )
    attachments: list[Attachment] | None = None
    metadata: Metadata = None
    # v1: files the message refers to; mapped to file_search attachments.
    file_ids: list[str] | None = Field(None, max_length=10)


class MessageModify(Wire):
    metadata: Metadata = None


def content_wire(
    content: str | list[TextPart | ImageFilePart | ImageURLPart],
) -> list[MessageContent]:
    """Request content → the content parts a Message object carries."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    out: list[MessageContent] = []
    for part in content:
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": {"value": part.text, "annotations": []}})
        elif isinstance(part, ImageFilePart):
            image = part.image_file
            out.append(
                {
                    "type": "image_file",
                    "image_file": {"file_id": image.file_id, "detail": image.detail},
                }
            )
        else:
            url = part.image_url
            out.append({"type": "image_url", "image_url": {"url": url.url, "detail": url.detail}})
    return out


def attachments_wire(req: MessageCreate) -> list[AttachmentObject]:
    out: list[AttachmentObject] = [
        {"file_id": a.file_id, "tools": [{"type": t.type} for t in a.tools]}
        for a in req.attachments or []
    ]
    for file_id in req.file_ids or []:
        out.append({"file_id": file_id, "tools": [{"type": "file_search"}]})
    return out
