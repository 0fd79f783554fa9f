"""The wire `TypedDict`s match OpenAI's OpenAPI schemas, key for key.

For each pair below: every key the schema requires is a key of the `TypedDict` (and a
required one), and every key of the `TypedDict` is a property of the schema unless it is
a named extension, which must then really be absent from the schema. Every object and
list the spec's responses carry, and every stream event, has its pair, so a new field on
either side fails here. The schemas are `tests/unit/data/wire_spec.json`, written by
`scripts/extract_wire_spec.py` from the reference spec.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from assistantd.assistants.wire import Assistant, assistant_object
from assistantd.core import wire as core
from assistantd.files.wire import File, file_object
from assistantd.messages import wire as messages
from assistantd.runs import objects as runs
from assistantd.threads.wire import Thread, thread_object
from assistantd.vector_stores import wire as stores
from assistantd.vector_stores.models import (
    VectorStoreFileBatchRow,
    VectorStoreFileRow,
    VectorStoreRow,
)
from assistantd.vector_stores.repository import FileCounts
from assistantd.vector_stores.service import batch_wire, file_wire, store_wire

SPEC: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "wire_spec.json").read_text())[
    "schemas"
]

#: (TypedDict, schema path, keys this server sends beyond the schema). A path is a schema
#: name, then `.property` steps and `[]` for an array's items.
PAIRS: list[tuple[Any, str, frozenset[str]]] = [
    (Assistant, "AssistantObject", frozenset()),
    (core.ToolResourcesWire, "AssistantObject.tool_resources", frozenset()),
    (
        core.CodeInterpreterResourcesWire,
        "AssistantObject.tool_resources.code_interpreter",
        frozenset(),
    ),
    (core.FileSearchResourcesWire, "AssistantObject.tool_resources.file_search", frozenset()),
    (Thread, "ThreadObject", frozenset()),
    (core.ToolResourcesWire, "ThreadObject.tool_resources", frozenset()),
    (messages.Message, "MessageObject", frozenset()),
    (messages.IncompleteDetails, "MessageObject.incomplete_details", frozenset()),
    (messages.Attachment, "MessageObject.attachments[]", frozenset()),
    (messages.TextContent, "MessageContentTextObject", frozenset()),
    (messages.Text, "MessageContentTextObject.text", frozenset()),
    (messages.ImageFileContent, "MessageContentImageFileObject", frozenset()),
    (messages.ImageFile, "MessageContentImageFileObject.image_file", frozenset()),
    (messages.ImageURLContent, "MessageContentImageUrlObject", frozenset()),
    (messages.ImageURL, "MessageContentImageUrlObject.image_url", frozenset()),
    (messages.RefusalContent, "MessageContentRefusalObject", frozenset()),
    (
        messages.FileCitationAnnotation,
        "MessageContentTextAnnotationsFileCitationObject",
        frozenset(),
    ),
    (
        messages.FileCitation,
        "MessageContentTextAnnotationsFileCitationObject.file_citation",
        frozenset(),
    ),
    (messages.FilePathAnnotation, "MessageContentTextAnnotationsFilePathObject", frozenset()),
    (messages.FilePath, "MessageContentTextAnnotationsFilePathObject.file_path", frozenset()),
    # The real API sends the resources a run's tools use; the spec leaves them out.
    (runs.Run, "RunObject", frozenset({"tool_resources"})),
    (core.LastError, "RunObject.last_error", frozenset()),
    (runs.RequiredAction, "RunObject.required_action", frozenset()),
    (runs.SubmitToolOutputsAction, "RunObject.required_action.submit_tool_outputs", frozenset()),
    (runs.RequiredToolCall, "RunToolCallObject", frozenset()),
    (runs.FunctionCall, "RunToolCallObject.function", frozenset()),
    (runs.TruncationStrategy, "TruncationObject", frozenset()),
    (runs.Usage, "RunCompletionUsage", frozenset()),
    (runs.Usage, "RunStepCompletionUsage", frozenset()),
    (messages.IncompleteDetails, "RunObject.incomplete_details", frozenset()),
    # The spec names it `expired_at`; the real API also sent `expires_at`: both are sent.
    (runs.RunStep, "RunStepObject", frozenset({"expires_at"})),
    (core.LastError, "RunStepObject.last_error", frozenset()),
    (runs.MessageCreationDetails, "RunStepDetailsMessageCreationObject", frozenset()),
    (runs.MessageCreation, "RunStepDetailsMessageCreationObject.message_creation", frozenset()),
    (runs.ToolCallsDetails, "RunStepDetailsToolCallsObject", frozenset()),
    (runs.FunctionToolCall, "RunStepDetailsToolCallsFunctionObject", frozenset()),
    (runs.FunctionToolCallFunction, "RunStepDetailsToolCallsFunctionObject.function", frozenset()),
    (runs.CodeInterpreterToolCall, "RunStepDetailsToolCallsCodeObject", frozenset()),
    (runs.CodeInterpreterCall, "RunStepDetailsToolCallsCodeObject.code_interpreter", frozenset()),
    (runs.CodeLogsOutput, "RunStepDetailsToolCallsCodeOutputLogsObject", frozenset()),
    (runs.CodeImageOutput, "RunStepDetailsToolCallsCodeOutputImageObject", frozenset()),
    (runs.CodeImage, "RunStepDetailsToolCallsCodeOutputImageObject.image", frozenset()),
    (runs.FileSearchToolCall, "RunStepDetailsToolCallsFileSearchObject", frozenset()),
    (runs.FileSearchCall, "RunStepDetailsToolCallsFileSearchObject.file_search", frozenset()),
    (runs.RankingOptions, "RunStepDetailsToolCallsFileSearchRankingOptionsObject", frozenset()),
    (runs.FileSearchResult, "RunStepDetailsToolCallsFileSearchResultObject", frozenset()),
    (runs.ResultText, "RunStepDetailsToolCallsFileSearchResultObject.content[]", frozenset()),
    (runs.MessageDelta, "MessageDeltaObject", frozenset()),
    (runs.MessageDeltaBody, "MessageDeltaObject.delta", frozenset()),
    (runs.TextDeltaPart, "MessageDeltaContentTextObject", frozenset()),
    (runs.TextDelta, "MessageDeltaContentTextObject.text", frozenset()),
    (runs.ImageFileDeltaPart, "MessageDeltaContentImageFileObject", frozenset()),
    (runs.RefusalDeltaPart, "MessageDeltaContentRefusalObject", frozenset()),
    (runs.RunStepDelta, "RunStepDeltaObject", frozenset()),
    (runs.RunStepDeltaBody, "RunStepDeltaObject.delta", frozenset()),
    (runs.ToolCallsDeltaDetails, "RunStepDeltaStepDetailsToolCallsObject", frozenset()),
    (File, "OpenAIFile", frozenset()),
    # OpenAI accepts `description` on create and does not echo it; assistantd does.
    (stores.VectorStore, "VectorStoreObject", frozenset({"description"})),
    (stores.FileCountsWire, "VectorStoreObject.file_counts", frozenset()),
    (stores.ExpiresAfter, "VectorStoreExpirationAfter", frozenset()),
    (stores.VectorStoreFile, "VectorStoreFileObject", frozenset()),
    (core.LastError, "VectorStoreFileObject.last_error", frozenset()),
    (stores.FileBatch, "VectorStoreFileBatchObject", frozenset()),
    (stores.FileCountsWire, "VectorStoreFileBatchObject.file_counts", frozenset()),
    (stores.SearchResultsPage, "VectorStoreSearchResultsPage", frozenset()),
    (stores.SearchResult, "VectorStoreSearchResultItem", frozenset()),
    (stores.TextChunk, "VectorStoreSearchResultContentObject", frozenset()),
    (stores.FileContentPage, "VectorStoreFileContentResponse", frozenset()),
    (stores.TextChunk, "VectorStoreFileContentResponse.data[]", frozenset()),
    (core.ErrorEnvelope, "ErrorResponse", frozenset()),
    (core.ErrorDetail, "Error", frozenset()),
    *[
        (core.Deleted, name, frozenset())
        for name in (
            "DeleteAssistantResponse",
            "DeleteFileResponse",
            "DeleteMessageResponse",
            "DeleteThreadResponse",
            "DeleteVectorStoreFileResponse",
            "DeleteVectorStoreResponse",
        )
    ],
    *[
        (core.ListPage, name, frozenset())
        for name in (
            "ListAssistantsResponse",
            "ListFilesResponse",
            "ListMessagesResponse",
            "ListRunStepsResponse",
            "ListRunsResponse",
            "ListVectorStoreFilesResponse",
            "ListVectorStoresResponse",
        )
    ],
]

#: Response-side objects of the spec that have no `TypedDict`, and why.
NOT_TYPED = {
    "FunctionObject": "a tool's function definition, stored as the request gave it (core.schemas.tool_wire)",
    "ResponseFormatJsonObject": "`response_format`, stored as the request gave it (response_format_wire)",
    "RunStepDeltaStepDetailsMessageCreationObject": "never sent: message steps stream no deltas",
    "RunStepDeltaStepDetailsToolCallsCodeObject": "tool-call delta entries are `dict[str, Any]` built by each tool",
    "RunStepDeltaStepDetailsToolCallsCodeOutputImageObject": "as above",
    "RunStepDeltaStepDetailsToolCallsCodeOutputLogsObject": "as above",
    "RunStepDeltaStepDetailsToolCallsFileSearchObject": "as above",
    "RunStepDeltaStepDetailsToolCallsFunctionObject": "as above",
    "MessageDeltaContentImageUrlObject": "never sent: the model writes no image_url parts",
    "MessageDeltaContentTextAnnotationsFileCitationObject": "the same keys as the message's annotations",
    "MessageDeltaContentTextAnnotationsFilePathObject": "as above",
    "MessageRequestContentTextObject": "a request part (messages.schemas.TextPart)",
    "OtherChunkingStrategyResponseParam": "never sent: every store file has an auto or static strategy",
    "StaticChunkingStrategyResponseParam": "the retrieval package's ChunkingStrategy.to_wire",
    "StaticChunkingStrategy": "as above",
}


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`, and the one object variant of an `anyOf`/`oneOf` with null."""
    while True:
        if "$ref" in node:
            node = SPEC[node["$ref"].rsplit("/", 1)[1]]
            continue
        variants = [v for v in node.get("anyOf", node.get("oneOf", [])) if v.get("type") != "null"]
        if "properties" not in node and len(variants) == 1:
            node = variants[0]
            continue
        return node


def _schema(path: str) -> dict[str, Any]:
    name, *steps = re.findall(r"[^.\[\]]+|\[\]", path)
    node = _deref(SPEC[name])
    for step in steps:
        node = _deref(node["items"] if step == "[]" else node["properties"][step])
    return node


def _keys(td: Any) -> tuple[frozenset[str], frozenset[str]]:
    required: frozenset[str] = td.__required_keys__
    return required, required | td.__optional_keys__


@pytest.mark.parametrize(
    ("td", "path", "extensions"), PAIRS, ids=[f"{t.__name__}-{p}" for t, p, _ in PAIRS]
)
def test_typed_dict_matches_schema(td: Any, path: str, extensions: frozenset[str]) -> None:
    schema = _schema(path)
    required, keys = _keys(td)
    properties = set(schema.get("properties", {}))
    assert set(schema.get("required", [])) <= required, f"{td.__name__}: the spec requires more"
    assert keys - extensions <= properties, (
        f"{td.__name__}: keys the spec does not have: {keys - extensions - properties}"
    )
    assert extensions <= keys and not extensions & properties, f"{td.__name__}: stale extension"


def test_every_response_object_of_the_spec_is_typed() -> None:
    typed = {p.split(".")[0] for _, p, _ in PAIRS}
    shaped = {
        n for n in SPEC if re.search(r"(Object|Response|Page)$", n) or n in ("OpenAIFile", "Error")
    }
    requests = {n for n in shaped if n.startswith(("Create", "Modify", "Update", "Submit"))}
    missing = shaped - typed - requests - set(NOT_TYPED)
    assert not missing, f"no TypedDict for {sorted(missing)}"


def _stream_events() -> dict[str, str]:
    """Event name → the schema of its data, from the spec's stream-event unions."""
    out: dict[str, str] = {}
    for union in (
        "ThreadStreamEvent",
        "RunStreamEvent",
        "RunStepStreamEvent",
        "MessageStreamEvent",
    ):
        for variant in SPEC[union]["oneOf"]:
            (event,) = variant["properties"]["event"]["enum"]
            out[event] = variant["properties"]["data"]["$ref"].rsplit("/", 1)[1]
    (event,) = SPEC["ErrorEvent"]["properties"]["event"]["enum"]
    out[event] = SPEC["ErrorEvent"]["properties"]["data"]["$ref"].rsplit("/", 1)[1]
    return out


def test_stream_events_carry_the_spec_data() -> None:
    spec_events = _stream_events()
    schema_of = {id(td): path for td, path, _ in PAIRS if "." not in path}
    ours = {event: schema_of.get(id(td)) for event, td in runs.STREAM_EVENT_DATA.items()}
    # `thread.created` is the spec's ThreadObject; every other event's data type is paired above.
    assert ours == spec_events


def test_typed_dicts_are_plain_dicts() -> None:
    """No cost at run time: a constructor's result is a `dict`, serialized as it is."""
    body = messages.message_object("thread_x", "user", [])
    assert type(body) is dict and list(body)[:3] == ["id", "object", "created_at"]
    assert typing.get_type_hints(messages.Message)["content"] == list[messages.MessageContent]


def _order(td: Any) -> list[str]:
    """A `TypedDict`'s keys in declaration order (a subclass's after its base's)."""
    return list(td.__annotations__)


def test_constructors_write_keys_in_the_declared_order() -> None:
    """Each `TypedDict` declares its keys in wire order, and each constructor writes them so."""
    run = runs.run_object(
        thread_id="t",
        assistant_id="a",
        model="m",
        instructions="",
        tools=[],
        tool_resources={},
        metadata={},
        temperature=1.0,
        top_p=1.0,
        max_prompt_tokens=None,
        max_completion_tokens=None,
        truncation_strategy={"type": "auto", "last_messages": None},
        tool_choice="auto",
        parallel_tool_calls=True,
        response_format="auto",
        expires_in=60,
    )
    details: runs.StepDetails = {
        "type": "message_creation",
        "message_creation": {"message_id": "msg_x"},
    }
    store = stores.vector_store_object(
        "vs_x", 1, name=None, description=None, metadata=None, expires_after_days=None
    )
    store_file = stores.store_file_object("file-x", "vs_x", 1, {"type": "auto"}, None)
    batch = stores.file_batch_object("vsfb_x", "vs_x", 1)
    built = [
        (Assistant, assistant_object("asst_x", 1, "m")),
        (Thread, thread_object("thread_x", 1, None, {})),
        (messages.Message, messages.message_object("thread_x", "user", [])),
        (File, file_object("file-x", "a.txt", 1, "assistants", 1, None)),
        (runs.Run, run),
        (runs.RunStep, runs.step_object(run, "message_creation", details)),
        (runs.Usage, runs.usage_object(1, 2)),
        (
            stores.VectorStore,
            store_wire(VectorStoreRow(body=store, expires_at=None, expired_at=None), FileCounts()),
        ),
        (
            stores.VectorStoreFile,
            file_wire(VectorStoreFileRow(body=store_file, status="completed", usage_bytes=0)),
        ),
        (
            stores.FileBatch,
            batch_wire(VectorStoreFileBatchRow(body=batch, cancelled=False), FileCounts()),
        ),
        (core.ListPage, core.list_of([], False)),
        (core.Deleted, core.deleted("asst_x", "assistant.deleted")),
        (core.ErrorEnvelope, core.error_envelope("m", "t", None, None)),
        (core.ErrorDetail, core.error_envelope("m", "t", None, None)["error"]),
    ]
    for td, obj in built:
        assert list(obj) == _order(td), td.__name__
