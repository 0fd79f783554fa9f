"""Threads and messages over the official SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from assistantd.testing.server import Server


def _upload(client: openai.OpenAI, name: str) -> str:
    return client.files.create(file=(name, b"some bytes"), purpose="assistants").id


def test_thread_with_initial_messages(client: openai.OpenAI) -> None:
    attached, resource = _upload(client, "a.csv"), _upload(client, "b.csv")
    t = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "Hello", "metadata": {"n": "1"}},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
            {
                "role": "user",
                "content": "file",
                "attachments": [{"file_id": attached, "tools": [{"type": "code_interpreter"}]}],
            },
        ],
        metadata={"user": "u1"},
        tool_resources={"code_interpreter": {"file_ids": [resource]}},
    )
    assert t.id.startswith("thread_") and t.object == "thread"
    assert t.metadata == {"user": "u1"}
    # The attachment adds its file to the thread's code_interpreter files (CONTRACT §4).
    assert t.tool_resources.code_interpreter.file_ids == [resource, attached]
    msgs = client.beta.threads.messages.list(t.id, order="asc").data
    assert [m.role for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0].content[0].text.value == "Hello" and msgs[0].content[0].text.annotations == []
    assert msgs[0].metadata == {"n": "1"}
    assert msgs[2].attachments[0].file_id == attached
    assert all(m.thread_id == t.id and m.assistant_id is None and m.run_id is None for m in msgs)
    assert all(m.status == "completed" for m in msgs)


def test_thread_retrieve_modify_delete(client: openai.OpenAI) -> None:
    t = client.beta.threads.create()
    assert client.beta.threads.retrieve(t.id) == t
    t2 = client.beta.threads.update(t.id, metadata={"a": "b"})
    assert t2.metadata == {"a": "b"}
    client.beta.threads.messages.create(t.id, role="user", content="x")
    d = client.beta.threads.delete(t.id)
    assert (d.id, d.object, d.deleted) == (t.id, "thread.deleted", True)
    with pytest.raises(openai.NotFoundError) as e:
        client.beta.threads.retrieve(t.id)
    assert e.value.body["message"] == f"No thread found with id '{t.id}'."
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(t.id)


def test_message_crud(client: openai.OpenAI) -> None:
    img = _upload(client, "a.png")
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(
        t.id,
        role="user",
        content=[
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "image_file", "image_file": {"file_id": img, "detail": "low"}},
        ],
        metadata={"k": "v"},
    )
    assert m.id.startswith("msg_") and m.object == "thread.message"
    assert [c.type for c in m.content] == ["text", "image_url", "image_file"]
    assert m.content[2].image_file.detail == "low"
    assert client.beta.threads.messages.retrieve(m.id, thread_id=t.id) == m
    m2 = client.beta.threads.messages.update(m.id, thread_id=t.id, metadata={"k": "w"})
    assert m2.metadata == {"k": "w"} and m2.content == m.content
    d = client.beta.threads.messages.delete(m.id, thread_id=t.id)
    assert (d.object, d.deleted) == ("thread.message.deleted", True)
    with pytest.raises(openai.NotFoundError) as e:
        client.beta.threads.messages.retrieve(m.id, thread_id=t.id)
    assert e.value.body["message"] == f"No message found with id '{m.id}'."


def test_message_every_field_present(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.keys['alpha']}"}
    t = httpx.post(f"{server.base_url}/threads", headers=h).json()
    m = httpx.post(
        f"{server.base_url}/threads/{t['id']}/messages",
        headers=h,
        json={"role": "user", "content": "x"},
    ).json()
    assert set(m) == {
        "id",
        "object",
        "created_at",
        "assistant_id",
        "thread_id",
        "run_id",
        "role",
        "content",
        "attachments",
        "metadata",
        "status",
        "incomplete_details",
        "completed_at",
        "incomplete_at",
    }
    assert set(t) == {"id", "object", "created_at", "metadata", "tool_resources"}


def test_v1_message_file_ids_become_attachments(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.keys['alpha']}", "OpenAI-Beta": "assistants=v1"}
    f = httpx.post(
        f"{server.base_url}/files",
        headers=h,
        data={"purpose": "assistants"},
        files={"file": ("notes.txt", b"The v1 era had file_ids on messages.")},
    ).json()
    t = httpx.post(f"{server.base_url}/threads", headers=h).json()
    m = httpx.post(
        f"{server.base_url}/threads/{t['id']}/messages",
        headers=h,
        json={"role": "user", "content": "x", "file_ids": [f["id"]]},
    ).json()
    assert m["attachments"] == [{"file_id": f["id"], "tools": [{"type": "file_search"}]}]
    # As OpenAI mapped them: the file lands in the thread's vector store.
    thread = httpx.get(f"{server.base_url}/threads/{t['id']}", headers=h).json()
    (store_id,) = thread["tool_resources"]["file_search"]["vector_store_ids"]
    files = httpx.get(f"{server.base_url}/vector_stores/{store_id}/files", headers=h).json()["data"]
    assert [x["id"] for x in files] == [f["id"]]
    missing = httpx.post(
        f"{server.base_url}/threads/{t['id']}/messages",
        headers=h,
        json={"role": "user", "content": "x", "file_ids": ["file-nope"]},
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"role": "system", "content": "x"}, "role"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": []}, "content"),
        ({"role": "user", "content": [{"type": "video", "video": {}}]}, "content[0].type"),
        ({"role": "user", "content": "x", "metadata": {"a": "b" * 600}}, "metadata"),
        ({"role": "user", "content": 5}, "content"),
    ],
)
def test_message_validation(server: Server, body: dict, param: str) -> None:
    h = {"Authorization": f"Bearer {server.keys['alpha']}"}
    t = httpx.post(f"{server.base_url}/threads", headers=h).json()
    r = httpx.post(f"{server.base_url}/threads/{t['id']}/messages", headers=h, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] is not None and err["param"].startswith(param), err
    listed = httpx.get(f"{server.base_url}/threads/{t['id']}/messages", headers=h).json()
    assert listed["data"] == []


def test_messages_of_other_project_are_invisible(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    t = client.beta.threads.create(messages=[{"role": "user", "content": "secret"}])
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.retrieve(t.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.messages.list(t.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.messages.create(t.id, role="user", content="x")
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.delete(t.id)
    assert len(client.beta.threads.messages.list(t.id).data) == 1
