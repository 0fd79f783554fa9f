"""The Message object and its parts (content, annotations, attachments), as stored in
`messages.body` and sent as they are."""

from __future__ import annotations

from typing import Literal, TypedDict

from assistantd.core.ids import new_id, now_seconds
from assistantd.core.wire import Metadata


class FileCitation(TypedDict):
    file_id: str


class FileCitationAnnotation(TypedDict):
    type: Literal["file_citation"]
    text: str
    file_citation: FileCitation
    start_index: int
    end_index: int


class FilePath(TypedDict):
    file_id: str


class FilePathAnnotation(TypedDict):
    type: Literal["file_path"]
    text: str
    file_path: FilePath
    start_index: int
    end_index: int


Annotation = FileCitationAnnotation | FilePathAnnotation


class Text(TypedDict):
    value: str
    annotations: list[Annotation]


class TextContent(TypedDict):
    type: Literal["text"]
    text: Text


class ImageFile(TypedDict):
    file_id: str
    detail: Literal["auto", "low", "high"]


class ImageFileContent(TypedDict):
    type: Literal["image_file"]
    image_file: ImageFile


class ImageURL(TypedDict):
    url: str
    detail: Literal["auto", "low", "high"]


class ImageURLContent(TypedDict):
    type: Literal["image_url"]
    image_url: ImageURL


class RefusalContent(TypedDict):
    type: Literal["refusal"]
    refusal: str


MessageContent = TextContent | ImageFileContent | ImageURLContent | RefusalContent


class AttachmentTool(TypedDict):
    type: Literal["code_interpreter", "file_search"]


class Attachment(TypedDict):
    file_id: str
    tools: list[AttachmentTool]


class IncompleteDetails(TypedDict):
    reason: str


MessageStatus = Literal["in_progress", "incomplete", "completed"]


class Message(TypedDict):
    id: str
    object: Literal["thread.message"]
    created_at: int
    assistant_id: str | None
    thread_id: str
    run_id: str | None
    role: Literal["user", "assistant"]
    content: list[MessageContent]
    attachments: list[Attachment]
    metadata: Metadata
    status: MessageStatus
    incomplete_details: IncompleteDetails | None
    completed_at: int | None
    incomplete_at: int | None


def message_object(
    thread_id: str,
    role: Literal["user", "assistant"],
    content: list[MessageContent],
    *,
    attachments: list[Attachment] | None = None,
    metadata: Metadata | None = None,
    assistant_id: str | None = None,
    run_id: str | None = None,
    status: MessageStatus = "completed",
) -> Message:
    """A new Message with every field present."""
    created = now_seconds()
    return {
        "id": new_id("msg_"),
        "object": "thread.message",
        "created_at": created,
        "assistant_id": assistant_id,
        "thread_id": thread_id,
        "run_id": run_id,
        "role": role,
        "content": content,
        "attachments": attachments or [],
        "metadata": metadata or {},
        "status": status,
        "incomplete_details": None,
        "completed_at": created if status == "completed" else None,
        "incomplete_at": None,
    }
