"""The `GET /v1/threads` extension over the official SDK's own page class."""

from __future__ import annotations

from typing import Any

import httpx
import openai
from openai.pagination import SyncCursorPage
from openai.types.beta import Thread

from assistantd.testing.server import Server, auth


def _threads(client: openai.OpenAI, **params: Any) -> SyncCursorPage[Thread]:
    return client.get_api_list(
        "/threads", model=Thread, page=SyncCursorPage[Thread], options={"params": params}
    )


def test_list_walks_pages_in_both_orders(client: openai.OpenAI) -> None:
    tag = {"suite": "walk"}
    made = [client.beta.threads.create(metadata=tag).id for _ in range(5)]
    first = _threads(client, limit=2, order="asc", **{"metadata[suite]": "walk"})
    assert [t.id for t in first.data] == made[:2] and first.has_more
    # The SDK's own iteration follows `after` across pages.
    assert [t.id for t in first] == made
    desc = _threads(client, limit=3, **{"metadata[suite]": "walk"})
    assert [t.id for t in desc.data] == made[::-1][:3]
    before = _threads(client, limit=2, order="asc", before=made[3], **{"metadata[suite]": "walk"})
    assert [t.id for t in before.data] == made[1:3] and before.has_more
    after = _threads(client, limit=10, order="asc", after=made[3], **{"metadata[suite]": "walk"})
    assert [t.id for t in after.data] == made[4:] and not after.has_more
    assert all(isinstance(t, Thread) and t.metadata == tag for t in first.data)


def test_metadata_filters_match_every_pair(client: openai.OpenAI) -> None:
    a = client.beta.threads.create(metadata={"user": "u-1", "kind": "chat"}).id
    b = client.beta.threads.create(metadata={"user": "u-1", "kind": "support"}).id
    client.beta.threads.create(metadata={"user": "u-2", "kind": "chat"})
    assert [t.id for t in _threads(client, **{"metadata[user]": "u-1"}).data] == [b, a]
    both = _threads(client, **{"metadata[user]": "u-1", "metadata[kind]": "chat"})
    assert [t.id for t in both.data] == [a]
    odd = client.beta.threads.create(metadata={'a.b "c"': "x y"}).id
    assert [t.id for t in _threads(client, **{'metadata[a.b "c"]': "x y"}).data] == [odd]
    assert _threads(client, **{"metadata[user]": "nobody"}).data == []


def test_list_is_per_project(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    mine = client.beta.threads.create(metadata={"owner": "alpha-only"}).id
    assert [t.id for t in _threads(client, **{"metadata[owner]": "alpha-only"}).data] == [mine]
    assert _threads(other_client, **{"metadata[owner]": "alpha-only"}).data == []
    # A cursor from another project is an unknown id: an empty page.
    assert _threads(other_client, after=mine).data == []


def test_bad_list_parameters_are_400(server: Server) -> None:
    url = f"{server.base_url}/threads"
    for params, param in (
        ({"limit": "0"}, "limit"),
        ({"order": "up"}, "order"),
        ({"metadata[]": "x"}, "metadata"),
        ({"metadata": "x"}, "metadata"),
        ({f"metadata[{'k' * 65}]": "x"}, "metadata"),
        ({"metadata[k]": "v" * 513}, "metadata"),
    ):
        r = httpx.get(url, params=params, headers=auth(server))
        assert r.status_code == 400, params
        assert (
            r.json()["error"]["param"] == param
            and r.json()["error"]["type"] == "invalid_request_error"
        )
    assert httpx.get(url).status_code == 401
