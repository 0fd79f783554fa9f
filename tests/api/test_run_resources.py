"""Create-thread-and-run's top-level `tool_resources` belong to the run, not the thread."""

from __future__ import annotations

import io

import openai

from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import SwitchRouter

LISTING = "import os\nprint(sorted(os.listdir('/mnt/data')))"


def test_top_level_tool_resources_apply_to_the_run_only(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    backend = models.use(
        ScriptedBackend(
            [
                tool_call_turn("file_search", {"queries": ["zebra office policy"]}),
                tool_call_turn("code_interpreter", {"code": LISTING}),
                text_turn("Done."),
            ]
        )
    )
    store = client.vector_stores.create(name="handbook")
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[
            (
                "zebra.txt",
                io.BytesIO(
                    b"The Zebra policy: employees may bring a zebra to the office on Fridays."
                ),
            )
        ],
    )
    assert batch.file_counts.completed == 1

    def upload(name: str) -> str:
        return client.files.create(file=(name, io.BytesIO(b"n\n1\n")), purpose="assistants").id

    assistant_file, thread_file, run_file = (
        upload("assistant.csv"),
        upload("thread.csv"),
        upload("run.csv"),
    )
    a = client.beta.assistants.create(
        model="m",
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [assistant_file]}},
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=a.id,
        thread={
            "messages": [{"role": "user", "content": "zebras?"}],
            "tool_resources": {"code_interpreter": {"file_ids": [thread_file]}},
        },
        tool_resources={
            "code_interpreter": {"file_ids": [run_file]},
            "file_search": {"vector_store_ids": [store.id]},
        },
    )
    assert run.status == "completed", run.last_error

    # The thread keeps exactly its own; the run shows (and used) the top-level ones.
    thread = client.beta.threads.retrieve(run.thread_id)
    assert thread.to_dict()["tool_resources"] == {"code_interpreter": {"file_ids": [thread_file]}}
    expected_run = {
        "code_interpreter": {"file_ids": [run_file]},
        "file_search": {"vector_store_ids": [store.id]},
    }
    assert run.to_dict()["tool_resources"] == expected_run
    assert (
        client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id).to_dict()[
            "tool_resources"
        ]
        == expected_run
    )

    search, code = [
        s.step_details.tool_calls[0]
        for s in client.beta.threads.runs.steps.list(
            run.id, thread_id=run.thread_id, order="asc"
        ).data
        if s.type == "tool_calls"
    ]
    assert search.type == "file_search"
    assert [r.file_name for r in search.file_search.results] == ["zebra.txt"]
    assert "Fridays" in (
        next(m for m in backend.requests[1].messages if m.role == "tool").content or ""
    )
    # code_interpreter: the run's files replace the assistant's; the thread's are kept.
    assert code.type == "code_interpreter"
    assert code.code_interpreter.outputs[0].logs.strip() == "['run.csv', 'thread.csv']"

    # A later run on the thread is back to the assistant's and the thread's resources (the
    # thread's sandbox session still holds what the first run mounted).
    models.use(
        ScriptedBackend([tool_call_turn("code_interpreter", {"code": LISTING}), text_turn("Done.")])
    )
    again = client.beta.threads.runs.create_and_poll(thread_id=run.thread_id, assistant_id=a.id)
    assert again.status == "completed", again.last_error
    assert again.to_dict()["tool_resources"] == {}
    step = client.beta.threads.runs.steps.list(again.id, thread_id=run.thread_id, order="asc").data[
        0
    ]
    assert "'assistant.csv'" in step.step_details.tool_calls[0].code_interpreter.outputs[0].logs


def test_top_level_store_helper_makes_a_store_for_the_run(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    models.use(
        ScriptedBackend(
            [tool_call_turn("file_search", {"queries": ["parking"]}), text_turn("Done.")]
        )
    )
    f = client.files.create(
        file=("parking.txt", io.BytesIO(b"Parking rules: cars park in lot B.")),
        purpose="assistants",
    )
    a = client.beta.assistants.create(model="m", tools=[{"type": "file_search"}])
    run = client.beta.threads.create_and_run_poll(
        assistant_id=a.id,
        thread={"messages": [{"role": "user", "content": "parking?"}]},
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [f.id]}]}},  # type: ignore[typeddict-unknown-key]
    )
    assert run.status == "completed", run.last_error
    (store_id,) = run.to_dict()["tool_resources"]["file_search"]["vector_store_ids"]
    assert client.beta.threads.retrieve(run.thread_id).to_dict()["tool_resources"] == {}
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data[0]
    assert [r.file_name for r in step.step_details.tool_calls[0].file_search.results] == [
        "parking.txt"
    ]
    assert client.vector_stores.retrieve(store_id).file_counts.completed == 1


def test_code_interpreter_attachments_reach_the_sandbox(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    """A file attached to a message for `code_interpreter` is in the sandbox's /mnt/data in
    the thread's runs, wherever the message came from: `threads.create` messages, a created
    message, a run's `additional_messages`; and it stays there for later runs. A file
    attached only for `file_search` is not placed there."""

    def upload(name: str) -> str:
        return client.files.create(file=(name, io.BytesIO(b"n\n1\n")), purpose="assistants").id

    def ci(file_id: str) -> list[dict[str, object]]:
        return [{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}]

    first, second, third, searched = (
        upload("first.csv"),
        upload("second.csv"),
        upload("third.csv"),
        upload("searched.txt"),
    )
    a = client.beta.assistants.create(
        model="m", tools=[{"type": "code_interpreter"}, {"type": "file_search"}]
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "one", "attachments": ci(first)}]
    )
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="two",
        attachments=[
            *ci(second),
            {"file_id": searched, "tools": [{"type": "file_search"}]},
        ],
    )

    def listing(**kw: object) -> str:
        models.use(
            ScriptedBackend(
                [tool_call_turn("code_interpreter", {"code": LISTING}), text_turn("Done.")]
            )
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id,
            assistant_id=a.id,
            poll_interval_ms=50,
            **kw,
        )
        assert run.status == "completed", run.last_error
        step = next(
            s
            for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
            if s.type == "tool_calls"
        )
        return str(step.step_details.tool_calls[0].code_interpreter.outputs[0].logs).strip()

    def thread_code_files() -> object:
        resources = client.beta.threads.retrieve(thread.id).to_dict()["tool_resources"]
        return resources["code_interpreter"]["file_ids"]

    # CONTRACT §4: attachments add their files to the thread's tool_resources.
    assert thread_code_files() == [first, second]
    assert listing() == "['first.csv', 'second.csv']"
    assert (
        listing(
            additional_messages=[{"role": "user", "content": "three", "attachments": ci(third)}]
        )
        == "['first.csv', 'second.csv', 'third.csv']"
    )
    assert thread_code_files() == [first, second, third]
    client.beta.threads.messages.create(
        thread.id, role="user", content="again", attachments=ci(first)
    )
    assert thread_code_files() == [first, second, third]  # each file once
    assert listing() == "['first.csv', 'second.csv', 'third.csv']"
