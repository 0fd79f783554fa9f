"""Cursor pagination: the SDK walks every object exactly once, in a total, stable order."""

from __future__ import annotations

import openai
import pytest

from assistantd.testing.server import Server


def test_walk_many_in_same_second(client: openai.OpenAI) -> None:
    t = client.beta.threads.create()
    # 45 messages created well within a couple of seconds: many share created_at.
    ids = [
        client.beta.threads.messages.create(t.id, role="user", content=str(i)).id for i in range(45)
    ]
    asc = [m.id for m in client.beta.threads.messages.list(t.id, order="asc", limit=7)]
    assert asc == ids
    desc = [m.id for m in client.beta.threads.messages.list(t.id, limit=4)]
    assert desc == ids[::-1]
    # Default page: 20, order desc.
    first = client.beta.threads.messages.list(t.id)
    assert [m.id for m in first.data] == ids[::-1][:20]
    assert first.has_more is True
    assert first.first_id == ids[-1] and first.last_id == ids[-20]


def test_after_before(client: openai.OpenAI) -> None:
    t = client.beta.threads.create()
    ids = [
        client.beta.threads.messages.create(t.id, role="user", content=str(i)).id for i in range(10)
    ]
    p = client.beta.threads.messages.list(t.id, order="asc", after=ids[2], limit=3)
    assert [m.id for m in p.data] == ids[3:6] and p.has_more
    p = client.beta.threads.messages.list(t.id, order="asc", before=ids[7], limit=3)
    assert [m.id for m in p.data] == ids[4:7] and p.has_more
    p = client.beta.threads.messages.list(t.id, order="desc", after=ids[7], limit=3)
    assert [m.id for m in p.data] == [ids[6], ids[5], ids[4]]
    p = client.beta.threads.messages.list(t.id, order="desc", before=ids[2], limit=5)
    # The page just before the cursor in the listing's order, nearest ones first kept.
    assert [m.id for m in p.data] == [ids[7], ids[6], ids[5], ids[4], ids[3]] and p.has_more
    p = client.beta.threads.messages.list(t.id, order="asc", after=ids[-1])
    assert p.data == [] and p.has_more is False and p.first_id is None


def test_assistants_walk(client: openai.OpenAI) -> None:
    made = {client.beta.assistants.create(model="m", name=f"walk{i}").id for i in range(23)}
    seen = [a.id for a in client.beta.assistants.list(limit=5)]
    assert len(seen) == len(set(seen))
    assert made <= set(seen)


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("order=up", "order")],
)
def test_bad_list_params(server: Server, query: str, param: str) -> None:
    import httpx

    r = httpx.get(
        f"{server.base_url}/assistants?{query}",
        headers={"Authorization": f"Bearer {server.keys['alpha']}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == param
