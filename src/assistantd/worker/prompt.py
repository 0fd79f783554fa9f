"""Turning a thread and a run's steps into the model's prompt, and fitting it to budgets.

Images: for a backend that takes them (`ModelBackend.supports_images`), a message's
`image_url` and `image_file` parts become image parts in the message's order; an
`image_file` is read from storage and sent as a `data:` URL (`load_images`, after the
prompt is fitted, so only images that made the cut are read). Chat completions takes
images in user messages only: an assistant message with images (the code interpreter's
figures) keeps its text, and a user message right after it shows them. A backend that
takes no images sees the text placeholders `[image <url>]` / `[image file <id>]`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol

from assistantd.llm.base import (
    ChatMessage,
    ContentPart,
    ImagePart,
    ModelBackend,
    ModelInvalidPrompt,
    TextPart,
    ToolCall,
    ToolSpec,
    image_tokens,
)
from assistantd.runs.state import StoredStep

#: purposes of the files an `image_file` part may show (`assistants_output`: the code
#: interpreter's own figures)
IMAGE_PURPOSES = ("vision", "assistants", "assistants_output")
#: magic bytes → the image types chat completions takes (PNG, JPEG, GIF, WEBP)
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
SHOWN_ABOVE = "The images of the previous message:"


def message_text(content: list[dict[str, Any]]) -> str:
    """The text a model sees for a message's content parts, images as placeholders."""
    parts = []
    for part in content:
        if part["type"] == "text":
            parts.append(part["text"]["value"])
        elif part["type"] == "image_file":
            parts.append(_file_placeholder(part["image_file"]["file_id"]))
        elif part["type"] == "image_url":
            parts.append(_url_placeholder(part["image_url"]["url"]))
        elif part["type"] == "refusal":
            parts.append(part.get("refusal", ""))
    return "\n".join(p for p in parts if p)


def _file_placeholder(file_id: str) -> str:
    return f"[image file {file_id}]"


def _url_placeholder(url: str) -> str:
    return f"[image {url}]"


def message_content(content: list[dict[str, Any]], *, images: bool) -> str | list[ContentPart]:
    """A message's content for the model: a string when it has no images (or the model
    takes none), else its parts in order."""
    if not images or not _has_images(content):
        return message_text(content)
    out: list[ContentPart] = []
    for part in content:
        kind = part["type"]
        if kind == "text":
            if part["text"]["value"]:
                out.append(TextPart(part["text"]["value"]))
        elif kind == "refusal":
            if part.get("refusal"):
                out.append(TextPart(part["refusal"]))
        elif kind == "image_url":
            image = part["image_url"]
            out.append(
                ImagePart(
                    image["url"], image.get("detail") or "auto", _url_placeholder(image["url"])
                )
            )
        elif kind == "image_file":
            image = part["image_file"]
            out.append(
                ImagePart(
                    "",
                    image.get("detail") or "auto",
                    _file_placeholder(image["file_id"]),
                    file_id=image["file_id"],
                )
            )
    return out


def _has_images(content: list[dict[str, Any]]) -> bool:
    if len(content) == 1 and content[0]["type"] == "text":
        return False  # the common case, decided without a loop
    return any(p["type"] == "image_file" or p["type"] == "image_url" for p in content)


def _images_message(intro: str, images: list[ContentPart]) -> ChatMessage:
    return ChatMessage(role="user", content=[TextPart(intro), *images])


def history_messages(messages: list[dict[str, Any]], *, images: bool = False) -> list[ChatMessage]:
    """Thread messages from before this run, as chat messages.

    `images`: the model takes images (see the module docstring). A message with no content
    (a run that failed or was cancelled before its first token) is left out: an empty
    assistant turn tells the model nothing, and some upstreams refuse it.
    """
    messages = [m for m in messages if m["content"]]
    if not images:
        return [ChatMessage(role=m["role"], content=message_text(m["content"])) for m in messages]
    out: list[ChatMessage] = []
    for m in messages:
        content = message_content(m["content"], images=True)
        if isinstance(content, list) and m["role"] != "user":
            out.append(ChatMessage(role=m["role"], content=message_text(m["content"])))
            out.append(
                _images_message(SHOWN_ABOVE, [p for p in content if isinstance(p, ImagePart)])
            )
        else:
            out.append(ChatMessage(role=m["role"], content=content))
    return out


def run_turns(
    steps: list[StoredStep], messages_by_id: dict[str, dict[str, Any]], *, images: bool = False
) -> list[ChatMessage]:
    """What this run already did (its steps, in order) as chat messages.

    A message step directly followed by a tool step of the same model call becomes one
    assistant message carrying both text and tool calls, as the model produced it.
    With `images`, the figures a code_interpreter call produced follow its results as a
    user message (the message that shows them to the user keeps their placeholders).
    """
    out: list[ChatMessage] = []
    for stored in steps:
        step, kept = stored.body, stored.state
        details = step["step_details"]
        if step["status"] in ("failed", "cancelled", "expired"):
            continue  # interrupted work (e.g. a crash mid-message) is not part of the story
        if details["type"] == "message_creation":
            msg = messages_by_id.get(details["message_creation"]["message_id"])
            if msg is not None:
                out.append(ChatMessage(role="assistant", content=message_text(msg["content"])))
            continue
        calls: list[ToolCall] = []
        results: list[ChatMessage] = []
        for call in details["tool_calls"]:
            kind = call["type"]
            if kind == "function":
                fn = call["function"]
                calls.append(ToolCall(call["id"], fn["name"], fn["arguments"]))
                results.append(
                    ChatMessage(
                        role="tool", content=fn.get("output") or "", tool_call_id=call["id"]
                    )
                )
            else:
                state = kept.calls.get(call["id"])
                name, arguments = (
                    (state["model_call"]["name"], state["model_call"]["arguments"])
                    if state is not None
                    else (kind, "{}")
                )
                calls.append(ToolCall(call["id"], name, arguments))
                output = state["output"] if state is not None else ""
                results.append(ChatMessage(role="tool", content=output, tool_call_id=call["id"]))
        if out and out[-1].role == "assistant" and not out[-1].tool_calls and kept.joins_previous:
            out[-1].tool_calls = calls
        else:
            out.append(ChatMessage(role="assistant", content=None, tool_calls=calls))
        out.extend(results)
        if images:
            for call in details["tool_calls"]:
                figures: list[ContentPart] = [
                    ImagePart(
                        "",
                        "auto",
                        _file_placeholder(o["image"]["file_id"]),
                        file_id=o["image"]["file_id"],
                    )
                    for o in (call.get("code_interpreter") or {}).get("outputs") or ()
                    if o.get("type") == "image"
                ]
                if figures:
                    out.append(
                        _images_message(
                            f"The images code_interpreter call {call['id']} displayed:", figures
                        )
                    )
    return out


def function_specs(tools: list[dict[str, Any]]) -> list[ToolSpec]:
    specs = []
    for tool in tools:
        if tool["type"] == "function":
            fn = tool["function"]
            specs.append(
                ToolSpec(
                    name=fn["name"],
                    description=fn.get("description"),
                    parameters=fn.get("parameters") or {"type": "object", "properties": {}},
                    strict=fn.get("strict"),
                )
            )
    return specs


def _shows_previous(message: ChatMessage) -> bool:
    content = message.content
    return (
        isinstance(content, list)
        and bool(content)
        and isinstance(content[0], TextPart)
        and content[0].text == SHOWN_ABOVE
    )


@dataclass
class Fitted:
    messages: list[ChatMessage]
    prompt_tokens: int
    dropped: int


def count(backend: ModelBackend, messages: list[ChatMessage]) -> int:
    """The prompt tokens of `messages`; an image costs `llm.base.image_tokens`."""
    total = 0
    for m in messages:
        if isinstance(m.content, list):
            total += 4 + sum(
                image_tokens(p) if isinstance(p, ImagePart) else backend.count_tokens(p.text)
                for p in m.content
            )
        else:
            total += 4 + backend.count_tokens(m.content or "")
        for c in m.tool_calls:
            total += backend.count_tokens(c.name) + backend.count_tokens(c.arguments)
    return total


def fit(
    backend: ModelBackend,
    system: list[ChatMessage],
    history: list[ChatMessage],
    current: list[ChatMessage],
    truncation: dict[str, Any],
    limit: int,
) -> Fitted:
    """Apply `truncation_strategy` and drop the oldest history until the prompt fits `limit`.

    The run's own turns and the newest history message are never dropped: without them
    the model would not know what it is answering.
    """
    dropped = 0
    if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
        keep = int(truncation["last_messages"])
        dropped = max(0, len(history) - keep)
        history = history[dropped:]
    fixed = count(backend, system) + count(backend, current)
    costs = [count(backend, [m]) for m in history]
    total = fixed + sum(costs)
    start = 0
    if truncation.get("type", "auto") in ("auto", "last_messages"):
        while total > limit and start < len(history) - 1:
            total -= costs[start]
            start += 1
        if start and start < len(history) - 1 and _shows_previous(history[start]):
            total -= costs[start]  # the images of a message dropped go with it
            start += 1
    return Fitted(system + history[start:] + current, total, dropped + start)


# -- image files ----------------------------------------------------------------------------


class ImageFiles(Protocol):
    async def image(
        self, project_id: str, file_id: str, max_bytes: int
    ) -> tuple[str, int, bytes | None] | None:
        """(purpose, size, bytes) of a file of the project, bytes None when over `max_bytes`;
        None when the file is gone."""


def image_mime_type(data: bytes) -> str | None:
    """The image type by magic bytes, if it is one chat completions takes."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def load_images(
    messages: list[ChatMessage], files: ImageFiles | None, project_id: str, max_bytes: int
) -> None:
    """Fill the `data:` URL of every `image_file` part of `messages`, in place.

    A file that is gone since the message was written shows its placeholder, saying so;
    one of another purpose, over `max_bytes` or not a PNG/JPEG/GIF/WEBP image fails the
    run with `invalid_prompt` naming the file (the client can delete the message).
    """
    for m in messages:
        if not isinstance(m.content, list):
            continue
        parts = m.content
        for k, part in enumerate(parts):
            if not isinstance(part, ImagePart) or part.file_id is None or part.url:
                continue
            found = (
                await files.image(project_id, part.file_id, max_bytes)
                if files is not None
                else None
            )
            if found is None:
                parts[k] = TextPart(f"[image file {part.file_id}: deleted, not shown]")
                continue
            purpose, size, data = found
            if purpose not in IMAGE_PURPOSES:
                raise ModelInvalidPrompt(
                    f"The image file {part.file_id} has purpose {purpose!r}; an image_file must be "
                    f"uploaded with purpose 'vision' or 'assistants'."
                )
            if data is None:
                raise ModelInvalidPrompt(
                    f"The image file {part.file_id} is {size} bytes; images sent to the model may be "
                    f"at most {max_bytes} bytes (ASSISTANTD_IMAGE_MAX_BYTES)."
                )
            mime = image_mime_type(data)
            if mime is None:
                raise ModelInvalidPrompt(
                    f"The image file {part.file_id} is not a PNG, JPEG, GIF or WEBP image."
                )
            part.url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
