"""Authentication: every endpoint wants a valid Bearer key; the beta header is optional."""

from __future__ import annotations

import httpx
import openai
import pytest

from assistantd.testing.server import Server

ENDPOINTS = [
    ("GET", "/assistants"),
    ("POST", "/assistants"),
    ("GET", "/assistants/asst_x"),
    ("POST", "/threads"),
    ("GET", "/threads/thread_x"),
    ("DELETE", "/threads/thread_x"),
    ("GET", "/threads/thread_x/messages"),
    ("POST", "/threads/thread_x/messages"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic abc", "Bearer"])
def test_missing_or_wrong_key_is_401(
    server: Server, method: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = httpx.request(method, server.base_url + path, headers=headers, json={"model": "m"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert "x-request-id" in r.headers


def test_sdk_raises_authentication_error(server: Server) -> None:
    c = openai.OpenAI(base_url=server.base_url, api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        c.beta.assistants.list()
    assert e.value.code == "invalid_api_key"


def test_beta_header_versions(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.keys['alpha']}"}
    for beta in ("assistants=v2", "assistants=v1", None):
        headers = dict(h, **({"OpenAI-Beta": beta} if beta else {}))
        assert httpx.get(f"{server.base_url}/assistants", headers=headers).status_code == 200
    r = httpx.get(
        f"{server.base_url}/assistants", headers=dict(h, **{"OpenAI-Beta": "assistants=v9"})
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_beta"


def test_unknown_route_is_openai_shaped_404(server: Server) -> None:
    r = httpx.get(
        f"{server.base_url}/nope", headers={"Authorization": f"Bearer {server.keys['alpha']}"}
    )
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
