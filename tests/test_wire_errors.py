"""Error answers OpenAI gives exactly: wrong methods, missing nested parameters, tool_choice."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server


def _headers(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.keys['alpha']}", "OpenAI-Beta": "assistants=v2"}


def _invalid_url(method: str, path: str) -> dict[str, Any]:
    return {"error": {"message": f"Invalid URL ({method} {path})", "type": "invalid_request_error",
                      "param": None, "code": None}}


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/assistants"),
    ("DELETE", "/threads/thread_abc/messages"),
    ("PATCH", "/assistants/asst_abc"),
    ("GET", "/threads"),  # not an endpoint (there is no thread list)
    ("POST", "/threads/thread_abc/runs/run_abc/steps"),
    ("GET", "/threads/thread_abc/runs/run_abc/cancel"),
    ("PUT", "/no/such/path"),
])
def test_wrong_method_or_path_is_404_invalid_url(server: Server, method: str, path: str) -> None:
    r = httpx.request(method, server.base_url + path, headers=_headers(server), json={})
    assert r.status_code == 404, r.text
    assert r.json() == _invalid_url(method, f"/v1{path}")

