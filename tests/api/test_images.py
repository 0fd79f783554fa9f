"""Images in messages reach the model: the exact chat-completions body an OpenAI-compatible
upstream (a real HTTP server recording requests) receives, for every part kind, with real
uploaded files; placeholders for text-only backends; images counted by truncation."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from assistantd.core.settings import Settings
from assistantd.llm.router import build_model_router
from assistantd.testing.fake_upstream import FakeToolCall, FakeUpstream, LoopTrackingBackend
from assistantd.testing.server import Server, SwitchRouter
from assistantd.worker.request import COMPLETION_RESERVE


def png(width: int = 2, height: int = 1) -> bytes:
    """A real PNG (RGB, all black)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00"
    b"\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
URL = "https://example.com/cat.jpg"


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(lambda body: "I see it.") as up:
        yield up


Backend = LoopTrackingBackend


@pytest.fixture
def backend(models: SwitchRouter) -> Iterator[Callable[..., Backend]]:
    made: list[Backend] = []

    def use(base_url: str, **kw: Any) -> Backend:
        made.append(Backend(base_url, max_retries=0, **kw))
        models.use(made[-1])
        return made[-1]

    yield use
    for b in made:
        if b.loop is not None:
            asyncio.run_coroutine_threadsafe(b.aclose(), b.loop).result(10)


def run_on(client: openai.OpenAI, content: Any, **run: Any) -> tuple[Any, str]:
    t = client.beta.threads.create(messages=[{"role": "user", "content": content}])
    r = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=client.beta.assistants.create(model="gpt-4o").id, **run
    )
    return r, t.id


def upload(client: openai.OpenAI, name: str, data: bytes, purpose: str = "vision") -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose=purpose).id  # type: ignore[arg-type]


def test_every_part_kind_goes_upstream_in_order(
    client: openai.OpenAI, backend: Callable[..., Backend], upstream: FakeUpstream
) -> None:
    backend(upstream.base_url)
    image = png()
    files = {
        "png": upload(client, "a.png", image),
        "jpeg": upload(client, "b.jpg", JPEG, "assistants"),
        "gif": upload(client, "c.gif", GIF),
        "webp": upload(client, "d.webp", WEBP),
    }
    run, _ = run_on(
        client,
        [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": URL, "detail": "high"}},
            {"type": "image_file", "image_file": {"file_id": files["png"], "detail": "low"}},
            {"type": "image_file", "image_file": {"file_id": files["jpeg"]}},
            {"type": "image_file", "image_file": {"file_id": files["gif"], "detail": "high"}},
            {"type": "image_file", "image_file": {"file_id": files["webp"], "detail": "auto"}},
            {"type": "text", "text": "Thanks."},
        ],
    )
    assert run.status == "completed", run.last_error
    (body,) = upstream.requests
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": URL, "detail": "high"}},
                {
                    "type": "image_url",
                    "image_url": {"url": data_url("image/png", image), "detail": "low"},
                },
                {
                    "type": "image_url",
                    "image_url": {"url": data_url("image/jpeg", JPEG), "detail": "auto"},
                },
                {
                    "type": "image_url",
                    "image_url": {"url": data_url("image/gif", GIF), "detail": "high"},
                },
                {
                    "type": "image_url",
                    "image_url": {"url": data_url("image/webp", WEBP), "detail": "auto"},
                },
                {"type": "text", "text": "Thanks."},
            ],
        }
    ]
    # Usage the upstream reports is what the run shows; the fake counts text only.
    assert run.usage is not None


def test_text_only_messages_stay_plain_strings(
    client: openai.OpenAI, backend: Callable[..., Backend], upstream: FakeUpstream
) -> None:
    backend(upstream.base_url)
    run, thread_id = run_on(
        client, [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    )
    assert run.status == "completed", run.last_error
    client.beta.threads.messages.create(thread_id, role="user", content="three")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=run.assistant_id
    )
    assert run.status == "completed", run.last_error
    assert upstream.requests[1]["messages"] == [
        {"role": "user", "content": "one\ntwo"},
        {"role": "assistant", "content": "I see it."},
        {"role": "user", "content": "three"},
    ]


def test_text_only_backend_sees_placeholders(
    client: openai.OpenAI, backend: Callable[..., Backend], upstream: FakeUpstream
) -> None:
    backend(upstream.base_url, supports_images=False)
    file_id = upload(client, "a.png", png())
    run, _ = run_on(
        client,
        [
            {"type": "text", "text": "Look:"},
            {"type": "image_url", "image_url": {"url": URL}},
            {"type": "image_file", "image_file": {"file_id": file_id}},
        ],
    )
    assert run.status == "completed", run.last_error
    assert upstream.requests[0]["messages"] == [
        {"role": "user", "content": f"Look:\n[image {URL}]\n[image file {file_id}]"}
    ]


def test_models_file_vision_false_is_text_only(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[models."vlm"]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[models."txt"]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nvision = false\n'
        '[models."*"]\nbackend = "llama"\n'
    )
    router = build_model_router(Settings(llm_models_file=models, _env_file=None))  # type: ignore[call-arg]
    assert router.resolve("vlm")[0].supports_images is True
    assert router.resolve("txt")[0].supports_images is False
    base = build_model_router(
        Settings(llm_base_url="http://127.0.0.1:9/v1", llm_vision=False, _env_file=None)
    )  # type: ignore[call-arg]
    assert base.resolve("any")[0].supports_images is False


@pytest.mark.parametrize("case", ["not_an_image", "purpose", "too_big"])
def test_unusable_image_file_fails_the_run(
    client: openai.OpenAI,
    server: Server,
    backend: Callable[..., Backend],
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    backend(upstream.base_url)
    if case == "not_an_image":
        file_id = upload(client, "a.png", b"just text, not a picture")
    elif case == "purpose":
        file_id = upload(client, "a.png", png(), "user_data")
    else:
        file_id = upload(client, "a.png", png())
        monkeypatch.setattr(server.settings, "image_max_bytes", 20)
    run, _ = run_on(
        client,
        [
            {"type": "text", "text": "see"},
            {"type": "image_file", "image_file": {"file_id": file_id}},
        ],
    )
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "invalid_prompt"
    assert file_id in run.last_error.message
    assert upstream.requests == []


def test_deleted_image_file_shows_a_placeholder(
    client: openai.OpenAI, backend: Callable[..., Backend], upstream: FakeUpstream
) -> None:
    backend(upstream.base_url)
    file_id = upload(client, "a.png", png())
    t = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_file", "image_file": {"file_id": file_id}},
                ],
            }
        ]
    )
    client.files.delete(file_id)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=client.beta.assistants.create(model="gpt-4o").id
    )
    assert run.status == "completed", run.last_error
    assert upstream.requests[0]["messages"][0]["content"] == [
        {"type": "text", "text": "see"},
        {"type": "text", "text": f"[image file {file_id}: deleted, not shown]"},
    ]


def test_max_prompt_tokens_counts_images(
    client: openai.OpenAI, backend: Callable[..., Backend], upstream: FakeUpstream
) -> None:
    """Two high-detail images are 1530 estimated tokens: over a 1000-token budget."""
    backend(upstream.base_url)
    images = [{"type": "image_url", "image_url": {"url": URL, "detail": "high"}}] * 2
    run, _ = run_on(client, [{"type": "text", "text": "see"}, *images], max_prompt_tokens=1000)
    assert run.status == "incomplete"
    assert (
        run.incomplete_details is not None and run.incomplete_details.reason == "max_prompt_tokens"
    )
    assert upstream.requests == []
    # Low detail is 85 tokens each: the same message fits.
    low = [{"type": "image_url", "image_url": {"url": URL, "detail": "low"}}] * 2
    run, _ = run_on(client, [{"type": "text", "text": "see"}, *low], max_prompt_tokens=1000)
    assert run.status == "completed", run.last_error


def test_auto_truncation_drops_old_images(
    client: openai.OpenAI, backend: Callable[..., Backend], upstream: FakeUpstream
) -> None:
    backend(upstream.base_url, context_window=COMPLETION_RESERVE + 1000)
    images = [{"type": "image_url", "image_url": {"url": URL, "detail": "high"}}] * 2
    t = client.beta.threads.create(
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "old"}, *images]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "And now?"},
        ]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=client.beta.assistants.create(model="gpt-4o").id
    )
    assert run.status == "completed", run.last_error
    assert upstream.requests[0]["messages"] == [
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "And now?"},
    ]


PLOT = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3]); plt.show()\n"
)


def test_code_interpreter_figures_reach_the_model(
    client: openai.OpenAI, backend: Callable[..., Backend]
) -> None:
    def script(body: dict[str, Any]) -> Any:
        last = body["messages"][-1]
        if last["role"] == "user" and last["content"] == "Plot it.":
            return FakeToolCall("code_interpreter", {"code": PLOT}, id="call_plot")
        return "Here is the plot."

    with FakeUpstream(script) as up:
        backend(up.base_url)
        a = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        t = client.beta.threads.create(messages=[{"role": "user", "content": "Plot it."}])
        run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
        assert run.status == "completed", run.last_error
        msg = client.beta.threads.messages.list(t.id).data[0]
        assert [c.type for c in msg.content] == ["image_file", "text"]
        image_id = msg.content[0].image_file.file_id  # type: ignore[union-attr]
        figure = data_url("image/png", client.files.content(image_id).read())

        # Within the run: the figure follows the tool's result.
        after_tool = up.requests[1]["messages"]
        assert [m["role"] for m in after_tool] == ["user", "assistant", "tool", "user"]
        assert after_tool[3] == {
            "role": "user",
            "content": [
                {"type": "text", "text": "The images code_interpreter call call_plot displayed:"},
                {"type": "image_url", "image_url": {"url": figure, "detail": "auto"}},
            ],
        }

        # In a later run: the assistant message keeps its text, its figure follows it.
        client.beta.threads.messages.create(t.id, role="user", content="Thanks")
        run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
        assert run.status == "completed", run.last_error
        later = up.requests[2]["messages"]
        assert later[1:] == [
            {"role": "assistant", "content": f"[image file {image_id}]\nHere is the plot."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "The images of the previous message:"},
                    {"type": "image_url", "image_url": {"url": figure, "detail": "auto"}},
                ],
            },
            {"role": "user", "content": "Thanks"},
        ]


def test_assistant_images_follow_it_and_go_with_it(
    client: openai.OpenAI, backend: Callable[..., Backend], upstream: FakeUpstream
) -> None:
    """An assistant message's images follow it as a user message; truncation that drops the
    message drops them too."""
    backend(upstream.base_url, context_window=COMPLETION_RESERVE + 200)
    low = {"type": "image_url", "image_url": {"url": URL, "detail": "low"}}
    a = client.beta.assistants.create(model="gpt-4o")
    t = client.beta.threads.create(
        messages=[
            {"role": "assistant", "content": [{"type": "text", "text": "A cat."}, low]},
            {"role": "user", "content": "And now?"},
        ]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "completed", run.last_error
    assert upstream.requests[0]["messages"] == [
        {"role": "assistant", "content": f"A cat.\n[image {URL}]"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "The images of the previous message:"},
                {"type": "image_url", "image_url": {"url": URL, "detail": "low"}},
            ],
        },
        {"role": "user", "content": "And now?"},
    ]
    t = client.beta.threads.create(
        messages=[
            {"role": "assistant", "content": [{"type": "text", "text": "A cat. " * 300}, low]},
            {"role": "user", "content": "And now?"},
        ]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "completed", run.last_error
    assert upstream.requests[1]["messages"] == [{"role": "user", "content": "And now?"}]
