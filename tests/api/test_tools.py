"""Server-side tools in runs: code_interpreter (real sandbox) and file_search (real index)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import openai

from assistantd.llm.base import ChatRequest
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter, auth
from assistantd.testing.sse import names, read_sse

CODE = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "import pandas as pd\n"
    "df = pd.read_csv('/mnt/data/sales.csv')\n"
    "total = int(df['amount'].sum())\n"
    "print('total', total)\n"
    "df.to_csv('/mnt/data/summary.csv', index=False)\n"
    "plt.plot(df['amount']); plt.show()\n"
)


def test_code_interpreter_run(client: openai.OpenAI, server: Server, models: SwitchRouter) -> None:
    backend = models.use(
        ScriptedBackend(
            [
                tool_call_turn("code_interpreter", {"code": CODE}),
                text_turn("The total is 60. Download it: sandbox:/mnt/data/summary.csv"),
                tool_call_turn("code_interpreter", {"code": "print(total * 2)"}),
                text_turn("Doubled: 120."),
            ]
        )
    )
    upload = client.files.create(
        file=("sales.csv", io.BytesIO(b"amount\n10\n20\n30\n")), purpose="assistants"
    )
    a = client.beta.assistants.create(
        model="m",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [upload.id]}},
    )
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Sum the sales."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "completed", run.last_error

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "code_interpreter" and call.code_interpreter.input == CODE
    kinds = [o.type for o in call.code_interpreter.outputs]
    assert kinds == ["logs", "image"]
    assert call.code_interpreter.outputs[0].logs.strip() == "total 60"
    image_id = call.code_interpreter.outputs[1].image.file_id
    image = client.files.retrieve(image_id)
    assert image.purpose == "assistants_output"
    assert client.files.content(image_id).read().startswith(b"\x89PNG")

    # The model read the logs as the tool's output.
    tool_msg = next(m for m in backend.requests[1].messages if m.role == "tool")
    assert "total 60" in (tool_msg.content or "")

    msg = client.beta.threads.messages.list(t.id).data[0]
    assert [c.type for c in msg.content] == ["image_file", "text"]
    assert msg.content[0].image_file.file_id == image_id
    text = msg.content[1].text
    (ann,) = text.annotations
    assert ann.type == "file_path" and ann.text == "sandbox:/mnt/data/summary.csv"
    assert text.value[ann.start_index : ann.end_index] == ann.text
    summary = client.files.content(ann.file_path.file_id).read()
    assert summary.decode().splitlines() == ["amount", "10", "20", "30"]

    # The session keeps its state between runs of the thread.
    client.beta.threads.messages.create(t.id, role="user", content="Double it.")
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    step = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data[0]
    assert step.step_details.tool_calls[0].code_interpreter.outputs[0].logs.strip() == "120"


def test_code_interpreter_stream_events(server: Server, models: SwitchRouter) -> None:
    models.use(
        ScriptedBackend(
            [
                tool_call_turn(
                    "code_interpreter", {"code": "for i in range(3):\n    print('line', i)"}
                ),
                text_turn("Printed."),
            ]
        )
    )
    h = auth(server)
    a = httpx.post(
        f"{server.base_url}/assistants",
        headers=h,
        json={"model": "m", "tools": [{"type": "code_interpreter"}]},
    ).json()
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/runs",
        headers=h,
        timeout=120,
        json={
            "assistant_id": a["id"],
            "stream": True,
            "thread": {"messages": [{"role": "user", "content": "print"}]},
        },
    ) as r:
        frames = read_sse(r)
    got = names(frames)
    assert got[-2:] == ["thread.run.completed", "done"]
    deltas = [
        f[1]["delta"]["step_details"]["tool_calls"][0]
        for f in frames
        if f[0] == "thread.run.step.delta"
    ]
    assert deltas[0]["type"] == "code_interpreter" and deltas[0]["code_interpreter"] == {
        "input": "",
        "outputs": [],
    }
    assert "id" in deltas[0] and all("id" not in d for d in deltas[1:])
    code = "".join(d["code_interpreter"].get("input", "") for d in deltas)
    assert code == "for i in range(3):\n    print('line', i)"
    logs = "".join(
        o["logs"]
        for d in deltas
        for o in d["code_interpreter"].get("outputs", [])
        if o["type"] == "logs"
    )
    assert logs == "line 0\nline 1\nline 2\n"
    completed = next(f[1] for f in frames if f[0] == "thread.run.step.completed")
    out = completed["step_details"]["tool_calls"][0]
    assert set(out) == {"id", "type", "code_interpreter"}  # nothing internal leaks
    assert out["code_interpreter"]["outputs"] == [
        {"type": "logs", "logs": "line 0\nline 1\nline 2\n"}
    ]


def test_code_interpreter_error_is_output_not_failure(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    models.use(
        ScriptedBackend([tool_call_turn("code_interpreter", {"code": "1/0"}), text_turn("Oops.")])
    )
    a = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    run = client.beta.threads.create_and_run_poll(
        assistant_id=a.id, thread={"messages": [{"role": "user", "content": "divide"}]}
    )
    assert run.status == "completed"
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data[0]
    assert "ZeroDivisionError" in step.step_details.tool_calls[0].code_interpreter.outputs[0].logs


DOCS = {
    "zebra.txt": b"The Zebra policy: employees may bring a zebra to the office on Fridays only.",
    "parking.txt": b"Parking rules: cars park in lot B; bicycles go in the basement racks.",
}


def cite(request: ChatRequest) -> Any:
    tool = next((m for m in reversed(request.messages) if m.role == "tool"), None)
    if tool is None:
        return tool_call_turn("file_search", {"queries": ["zebra office policy"]})
    marker = (tool.content or "").split("\n", 1)[0]
    return text_turn(f"Zebras come on Fridays {marker}.")


def test_file_search_run_cites_the_right_file(client: openai.OpenAI, models: SwitchRouter) -> None:
    store = client.vector_stores.create(name="handbook")
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id, files=[(name, io.BytesIO(data)) for name, data in DOCS.items()]
    )
    assert batch.file_counts.completed == 2
    ids = {
        f.id: client.files.retrieve(f.id).filename
        for f in client.vector_stores.files.list(store.id)
    }
    zebra = next(i for i, n in ids.items() if n == "zebra.txt")

    models.use(ScriptedBackend(cite))
    a = client.beta.assistants.create(
        model="m",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    t = client.beta.threads.create(
        messages=[{"role": "user", "content": "When can I bring a zebra?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id,
        assistant_id=a.id,
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    assert run.status == "completed", run.last_error
    msg = client.beta.threads.messages.list(t.id).data[0]
    text = msg.content[0].text
    (ann,) = text.annotations
    assert ann.type == "file_citation" and ann.file_citation.file_id == zebra
    assert text.value[ann.start_index : ann.end_index] == ann.text and ann.text.startswith(
        "【0:0†zebra.txt"
    )

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search"
    assert call.file_search.ranking_options.ranker == "default_2024_08_21"
    top = call.file_search.results[0]
    assert top.file_id == zebra and top.file_name == "zebra.txt" and 0 <= top.score <= 1
    assert top.content is None  # list without include[]
    full = client.beta.threads.runs.steps.retrieve(
        steps[0].id,
        thread_id=t.id,
        run_id=run.id,
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    assert "Fridays" in full.step_details.tool_calls[0].file_search.results[0].content[0].text


def test_attachment_creates_thread_store_and_streams_file_search(
    server: Server, client: openai.OpenAI, models: SwitchRouter
) -> None:
    f = client.files.create(file=("zebra.txt", io.BytesIO(DOCS["zebra.txt"])), purpose="assistants")
    models.use(ScriptedBackend(cite))
    a = client.beta.assistants.create(model="m", tools=[{"type": "file_search"}])
    t = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "zebra?",
                "attachments": [{"file_id": f.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    thread = client.beta.threads.retrieve(t.id)
    (store_id,) = thread.tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.expires_after.days == 7 and store.expires_after.anchor == "last_active_at"
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t.id}/runs",
        headers=auth(server),
        timeout=120,
        json={"assistant_id": a.id, "stream": True},
    ) as r:
        frames = read_sse(r)
    got = names(frames)
    assert got[-2:] == ["thread.run.completed", "done"]
    intro = next(f[1] for f in frames if f[0] == "thread.run.step.delta")["delta"]["step_details"][
        "tool_calls"
    ][0]
    assert intro["type"] == "file_search" and intro["file_search"] == {
        "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0},
        "results": [],
    }
    deltas = [f[1]["delta"]["content"][0]["text"] for f in frames if f[0] == "thread.message.delta"]
    anns = [a for d in deltas for a in d.get("annotations", [])]
    assert (
        len(anns) == 1 and anns[0]["file_citation"] == {"file_id": f.id} and anns[0]["index"] == 0
    )
    completed = next(f[1] for f in frames if f[0] == "thread.run.step.completed")
    assert "content" not in json.dumps(
        completed["step_details"]["tool_calls"][0]["file_search"]["results"]
    )


def test_code_interpreter_mounts_files_uploaded_with_unsafe_names(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    listing = "import os\nprint(sorted(os.listdir('/mnt/data')), open('/mnt/data/b.csv').read())"
    models.use(
        ScriptedBackend(
            [tool_call_turn("code_interpreter", {"code": listing}), text_turn("Listed.")]
        )
    )
    ids = [
        client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id
        for name, data in [("..", b"dots"), ("../x", b"x"), ("a/b.csv", b"n\n1\n")]
    ]
    a = client.beta.assistants.create(
        model="m",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": ids}},
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=a.id, thread={"messages": [{"role": "user", "content": "list"}]}
    )
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data[0]
    logs = step.step_details.tool_calls[0].code_interpreter.outputs[0].logs
    assert logs == "['b.csv', 'upload', 'x'] n\n1\n\n"
