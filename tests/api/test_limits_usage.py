"""Rate limits, spend limits, usage and costs through the official SDK's admin client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from assistantd.core.ids import now_seconds
from assistantd.keys.service import create_admin_key
from assistantd.testing.prom import delta, key, scrape
from assistantd.testing.server import Server, auth, run_db
from assistantd.usage.meter import ModelCall
from assistantd.usage.repository import insert_call


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    async def make(uow: Any) -> str:
        _, secret = await create_admin_key(uow.session, "limits-tests")
        return secret

    secret: str = run_db(server, make)
    return secret


@pytest.fixture
def admin(server: Server, admin_key: str) -> Iterator[openai.OpenAI]:
    # Only the admin key: the SDK sends `api_key` instead when it has both.
    with openai.OpenAI(base_url=server.base_url, admin_api_key=admin_key, max_retries=0) as c:
        yield c


def _model() -> str:
    """A model name of this test alone: windows are keyed by project and model."""
    return f"m-{uuid.uuid4().hex[:10]}"


def _run(client: openai.OpenAI, model: str) -> Any:
    a = client.beta.assistants.create(model=model)
    return client.beta.threads.create_and_run_poll(
        assistant_id=a.id, thread={"messages": [{"role": "user", "content": "hello there"}]}
    )


def test_rate_limits_list_and_modify(server: Server, admin: openai.OpenAI) -> None:
    rl = admin.admin.organization.projects.rate_limits
    model = _model()
    changed = rl.update_rate_limit(
        f"rl-{model}", project_id="alpha", max_requests_per_1_minute=7, max_tokens_per_1_minute=900
    )
    assert (changed.object, changed.id, changed.model) == (
        "project.rate_limit",
        f"rl-{model}",
        model,
    )
    assert (changed.max_requests_per_1_minute, changed.max_tokens_per_1_minute) == (7, 900)
    page = rl.list_rate_limits("alpha", limit=100)
    found = [r for r in page.data if r.id == f"rl-{model}"]
    assert len(found) == 1 and found[0].max_requests_per_1_minute == 7
    # Another project is untouched.
    other = rl.list_rate_limits("beta")
    assert all(r.id != f"rl-{model}" for r in other.data)
    with pytest.raises(openai.BadRequestError):
        rl.update_rate_limit(f"rl-{model}", project_id="alpha", max_requests_per_1_minute=-1)


def test_requests_per_minute_lets_exactly_n_through(
    server: Server, admin: openai.OpenAI, client: openai.OpenAI
) -> None:
    model = _model()
    admin.admin.organization.projects.rate_limits.update_rate_limit(
        f"rl-{model}", project_id="alpha", max_requests_per_1_minute=3
    )
    a = client.beta.assistants.create(model=model)
    seen = []
    for _ in range(3):
        t = client.beta.threads.create()
        raw = client.beta.threads.runs.with_raw_response.create(t.id, assistant_id=a.id)
        seen.append(raw.headers)
    assert [h["x-ratelimit-remaining-requests"] for h in seen] == ["2", "1", "0"]
    assert all(h["x-ratelimit-limit-requests"] == "3" for h in seen)
    assert seen[0]["x-ratelimit-reset-requests"].endswith("s")
    t = client.beta.threads.create()
    root = server.base_url.removesuffix("/v1")
    before, _ = scrape(root)
    with pytest.raises(openai.RateLimitError) as e:
        client.beta.threads.runs.create(t.id, assistant_id=a.id)
    err = e.value
    assert err.code == "rate_limit_exceeded" and err.type == "requests"
    refused = delta(scrape(root)[0], before, "assistantd_rate_limit_rejections_total")
    assert refused == {key("assistantd_rate_limit_rejections_total", limit="requests"): 1}
    h = err.response.headers
    assert h["x-ratelimit-remaining-requests"] == "0" and h["x-ratelimit-limit-requests"] == "3"
    assert 0 < float(h["retry-after-ms"]) <= 60_000 and 1 <= int(h["retry-after"]) <= 60
    # Reads go on.
    assert client.beta.assistants.retrieve(a.id).id == a.id


def test_tokens_per_minute_count_the_runs_tokens(
    server: Server, admin: openai.OpenAI, client: openai.OpenAI
) -> None:
    model = _model()
    admin.admin.organization.projects.rate_limits.update_rate_limit(
        f"rl-{model}", project_id="alpha", max_tokens_per_1_minute=5
    )
    run = _run(client, model)
    assert run.status == "completed" and run.usage is not None and run.usage.total_tokens >= 5
    a = client.beta.assistants.create(model=model)
    with pytest.raises(openai.RateLimitError) as e:
        client.beta.threads.create_and_run(assistant_id=a.id)
    assert e.value.type == "tokens"
    assert e.value.response.headers["x-ratelimit-remaining-tokens"] == "0"


def test_no_limit_no_headers(server: Server, client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model=_model())
    raw = client.beta.threads.with_raw_response.create_and_run(assistant_id=a.id)
    assert "x-ratelimit-limit-requests" not in raw.headers


def _spend(server: Server, project: str, model: str, input_tokens: int) -> None:
    async def add(uow: Any) -> None:
        await insert_call(
            uow.session,
            ModelCall(project, None, "run_x", "thread_x", model, input_tokens, 0),
            now_seconds(),
        )

    run_db(server, add)


def test_spend_limit_stops_new_runs(
    server: Server, admin: openai.OpenAI, client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    sl = admin.admin.organization.projects.spend_limit
    project = "alpha"
    _spend(server, project, "gpt-4o-2024-08-06", 2_000_000)  # $10 at $5 per million
    made = sl.update(project, threshold_amount=1000, currency="USD", interval="month")
    assert made.object == "project.spend_limit" and made.threshold_amount == 1000
    assert made.enforcement.status == "enforcing"
    a = client.beta.assistants.create(model=_model())
    with pytest.raises(openai.RateLimitError) as e:
        client.beta.threads.create_and_run(assistant_id=a.id)
    assert e.value.code == "insufficient_quota" and e.value.type == "insufficient_quota"
    assert e.value.response.headers["x-should-retry"] == "false"
    assert client.beta.assistants.retrieve(a.id).id == a.id  # reads keep working
    b = other_client.beta.assistants.create(model=_model())  # another project is not limited
    assert other_client.beta.threads.create_and_run(assistant_id=b.id).status == "queued"
    raised = sl.update(project, threshold_amount=10**9, currency="USD", interval="month")
    assert raised.enforcement.status == "inactive"
    assert client.beta.threads.create_and_run(assistant_id=a.id).status == "queued"
    assert sl.delete(project).deleted is True


def test_organization_spend_limit(
    server: Server, admin: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    org = admin.admin.organization.spend_limit
    _spend(server, "beta", "gpt-4", 1_000_000)  # $30
    assert (
        org.update(threshold_amount=100, currency="USD", interval="month").object
        == "organization.spend_limit"
    )
    try:
        b = other_client.beta.assistants.create(model=_model())
        with pytest.raises(openai.RateLimitError) as e:
            other_client.beta.threads.create_and_run(assistant_id=b.id)
        assert e.value.code == "insufficient_quota"
        assert org.retrieve().enforcement.status == "enforcing"
    finally:
        assert org.delete().deleted is True


def test_usage_and_costs_sum_to_the_runs(
    server: Server, admin: openai.OpenAI, client: openai.OpenAI
) -> None:
    start = now_seconds()
    model = _model()
    runs = [_run(client, model) for _ in range(3)]
    assert all(r.status == "completed" for r in runs)
    prompt = sum(r.usage.prompt_tokens for r in runs if r.usage)
    completion = sum(r.usage.completion_tokens for r in runs if r.usage)
    usage = admin.admin.organization.usage
    page = usage.completions(
        start_time=start,
        bucket_width="1m",
        models=[model],
        group_by=["model", "project_id"],
        limit=10,
    )
    results = [res for b in page.data for res in b.results]
    assert sum(r.input_tokens for r in results) == prompt
    assert sum(r.output_tokens for r in results) == completion
    assert sum(r.num_model_requests for r in results) == 3
    assert {(r.model, r.project_id) for r in results} == {(model, "alpha")}
    assert all(b.end_time - b.start_time <= 60 for b in page.data)
    # Ungrouped, one day: one result with null groups.
    day = usage.completions(start_time=start, models=[model])
    assert day.data[0].results[0].input_tokens == prompt and day.data[0].results[0].model is None
    # Unpriced model: costs 0 and says so in its line items.
    costs = usage.costs(start_time=start, group_by=["line_item"], project_ids=["alpha"])
    items = {r.line_item: r for b in costs.data for r in b.results}
    assert items[f"{model}, input (unpriced)"].amount.value == 0
    assert items[f"{model}, input (unpriced)"].quantity == prompt


def test_costs_from_the_price_table(server: Server, admin: openai.OpenAI) -> None:
    start = now_seconds()
    project = f"proj_{uuid.uuid4().hex[:8]}"  # usage of a project of this test alone
    _spend(server, project, "gpt-4o-mini", 1_000_000)  # $0.15
    costs = admin.admin.organization.usage.costs(
        start_time=start, project_ids=[project], group_by=["project_id"]
    )
    total = sum(r.amount.value for b in costs.data for r in b.results)
    assert abs(total - 0.15) < 1e-9
    assert costs.data[0].results[0].amount.currency == "usd"


def test_usage_pages_and_bad_input(server: Server, admin: openai.OpenAI, admin_key: str) -> None:
    h = {"Authorization": f"Bearer {admin_key}"}
    usage = admin.admin.organization.usage
    start = now_seconds() - 10 * 60
    first = usage.completions(start_time=start, bucket_width="1m", limit=4)
    assert len(first.data) == 4 and first.has_more and first.next_page
    second = usage.completions(start_time=start, bucket_width="1m", limit=4, page=first.next_page)
    assert second.data[0].start_time == first.data[-1].end_time
    for params in (
        {"start_time": "x"},
        {"start_time": start, "bucket_width": "2d"},
        {"start_time": start, "limit": 0},
        {"start_time": start, "group_by": "color"},
        {},
        {"start_time": start, "page": "nope!"},
    ):
        r = httpx.get(f"{server.base_url}/organization/usage/completions", params=params, headers=h)
        assert r.status_code == 400, params
        assert r.json()["error"]["type"] == "invalid_request_error"
    far = httpx.get(
        f"{server.base_url}/organization/usage/completions",
        headers=h,
        params={"start_time": 0, "end_time": 2**61, "bucket_width": "1m", "limit": 2},
    )
    assert far.status_code == 200 and len(far.json()["data"]) == 2 and far.json()["has_more"]
    for kind in ("embeddings", "vector_stores", "code_interpreter_sessions", "file_search_calls"):
        r = httpx.get(
            f"{server.base_url}/organization/usage/{kind}",
            params={"start_time": start},
            headers=h,
        )
        assert r.status_code == 200 and r.json()["object"] == "page", kind


def test_admin_endpoints_need_an_admin_key(server: Server, admin: openai.OpenAI) -> None:
    for path in (
        "/organization/usage/completions?start_time=0",
        "/organization/projects/alpha/rate_limits",
        "/organization/spend_limit",
    ):
        r = httpx.get(server.base_url + path, headers=auth(server))
        assert r.status_code == 403, path
    with pytest.raises(openai.NotFoundError):
        admin.admin.organization.projects.rate_limits.list_rate_limits("proj_nope")


def test_vector_store_bytes(server: Server, admin: openai.OpenAI, client: openai.OpenAI) -> None:
    f = client.files.create(file=("a.txt", b"vector store usage " * 50), purpose="assistants")
    vs = (
        client.vector_stores.create_and_poll(file_ids=[f.id])
        if hasattr(client.vector_stores, "create_and_poll")
        else client.vector_stores.create(file_ids=[f.id])
    )
    deadline = time.monotonic() + 60
    while (
        client.vector_stores.retrieve(vs.id).status == "in_progress" and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    used = client.vector_stores.retrieve(vs.id).usage_bytes
    page = admin.admin.organization.usage.vector_stores(
        start_time=now_seconds() - 60, group_by=["project_id"], project_ids=["alpha"]
    )
    got = {r.project_id: r.usage_bytes for b in page.data for r in b.results}
    assert got["alpha"] >= used > 0
