"""Assistants over the official SDK: CRUD, every field present, validation, isolation."""

from __future__ import annotations

import httpx
import openai
import pytest

from assistantd.testing.server import Server

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_create_retrieve_modify_delete(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(
        model="gpt-4o",
        name="Math tutor",
        description="d",
        instructions="Be terse.",
        tools=[WEATHER, {"type": "code_interpreter"}, {"type": "file_search"}],
        metadata={"team": "x"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert a.id.startswith("asst_") and a.object == "assistant"
    assert isinstance(a.created_at, int)
    assert (a.name, a.description, a.instructions, a.model) == (
        "Math tutor",
        "d",
        "Be terse.",
        "gpt-4o",
    )
    assert [t.type for t in a.tools] == ["function", "code_interpreter", "file_search"]
    assert a.tools[0].function.parameters["required"] == ["city"]
    assert a.tools[2].file_search.ranking_options.score_threshold == 0.0
    assert (a.temperature, a.top_p, a.metadata) == (0.5, 0.9, {"team": "x"})
    assert a.response_format.type == "json_object"

    got = client.beta.assistants.retrieve(a.id)
    assert got == a

    b = client.beta.assistants.update(a.id, name="Renamed", metadata={"k": "v"}, tools=[])
    assert (b.name, b.metadata, b.tools, b.instructions) == ("Renamed", {"k": "v"}, [], "Be terse.")

    deleted = client.beta.assistants.delete(a.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (a.id, "assistant.deleted", True)
    with pytest.raises(openai.NotFoundError) as e:
        client.beta.assistants.retrieve(a.id)
    assert e.value.body["message"] == f"No assistant found with id '{a.id}'."


def test_defaults_every_field_present(server: Server) -> None:
    r = httpx.post(
        f"{server.base_url}/assistants",
        json={"model": "m"},
        headers={"Authorization": f"Bearer {server.keys['alpha']}"},
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {
        "id",
        "object",
        "created_at",
        "name",
        "description",
        "model",
        "instructions",
        "tools",
        "tool_resources",
        "metadata",
        "temperature",
        "top_p",
        "response_format",
    }
    assert body["name"] is None and body["description"] is None and body["instructions"] is None
    assert body["tools"] == [] and body["metadata"] == {} and body["response_format"] == "auto"
    assert r.headers["x-request-id"].startswith("req_")


def test_v1_retrieval_tool_is_file_search(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="m", tools=[{"type": "retrieval"}])  # type: ignore[list-item]
    assert a.tools[0].type == "file_search"


def test_v1_only_endpoints_are_not_served(server: Server, client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    m = client.beta.threads.messages.list(t.id).data[0]
    h = {"Authorization": f"Bearer {server.keys['alpha']}", "OpenAI-Beta": "assistants=v1"}
    for method, path in [
        ("POST", f"/assistants/{a.id}/files"),
        ("GET", f"/assistants/{a.id}/files"),
        ("GET", f"/assistants/{a.id}/files/file-x"),
        ("DELETE", f"/assistants/{a.id}/files/file-x"),
        ("GET", f"/threads/{t.id}/messages/{m.id}/files"),
        ("GET", f"/threads/{t.id}/messages/{m.id}/files/file-x"),
    ]:
        r = httpx.request(method, server.base_url + path, headers=h, json={"file_id": "file-x"})
        assert r.status_code == 404, path
        assert r.json()["error"]["message"] == f"Invalid URL ({method} /v1{path})", path


def test_v1_requests_are_answered_in_v2_shapes(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.keys['alpha']}", "OpenAI-Beta": "assistants=v1"}
    f = httpx.post(
        f"{server.base_url}/files",
        headers=h,
        data={"purpose": "assistants"},
        files={"file": ("a.csv", b"x,y\n1,2\n")},
    ).json()
    a = httpx.post(
        f"{server.base_url}/assistants",
        headers=h,
        json={"model": "m", "tools": [{"type": "code_interpreter"}], "file_ids": [f["id"]]},
    ).json()
    assert "file_ids" not in a
    assert a["tool_resources"] == {"code_interpreter": {"file_ids": [f["id"]]}}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"name": "n" * 257}, "name"),
        ({"description": "d" * 513}, "description"),
        ({"instructions": "i" * 256_001}, "instructions"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "tools[0].function.name",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]},
            "tools",
        ),
        ({"tools": [{"type": "browser"}]}, "tools[0].type"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": -1}, "top_p"),
    ],
)
def test_validation_names_the_parameter(client: openai.OpenAI, kwargs: dict, param: str) -> None:
    before = [a.id for a in client.beta.assistants.list(limit=100)]
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.assistants.create(model="m", **kwargs)
    assert e.value.status_code == 400
    assert e.value.type == "invalid_request_error"
    assert e.value.param == param, e.value.message
    assert e.value.message
    # Bad input changes nothing.
    assert [a.id for a in client.beta.assistants.list(limit=100)] == before


def test_missing_model_and_malformed_json(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.keys['alpha']}", "Content-Type": "application/json"}
    r = httpx.post(f"{server.base_url}/assistants", json={}, headers=h)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
    r = httpx.post(f"{server.base_url}/assistants", content=b'{"model": ', headers=h)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "JSON" in r.json()["error"]["message"]
    r = httpx.post(f"{server.base_url}/assistants", content=b"[1, 2]", headers=h)
    assert r.status_code == 400


def test_wrong_id_prefix(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.assistants.retrieve("undefined")
    assert (
        e.value.body["message"]
        == "Invalid 'assistant_id': 'undefined'. Expected an ID that begins with 'asst'."
    )


def test_other_project_sees_404(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="m")
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.retrieve(a.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.update(a.id, name="stolen")
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.delete(a.id)
    assert a.id not in [x.id for x in other_client.beta.assistants.list(limit=100)]
    assert client.beta.assistants.retrieve(a.id).name is None
