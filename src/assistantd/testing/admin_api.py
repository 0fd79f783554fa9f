"""`AdminApi`: an in-memory stand-in for the admin API (`/v1/organization/...`), in the
shapes of the reference spec (admin-openapi.yaml), for console tests that run before or
without the server's own admin API. It answers `(method, path, query, body)` with
`(status, json)`; the caller wires it to its transport (a browser test routes to it).

It keeps projects, their service accounts and keys, rate limits, a spend limit, and daily
usage and cost buckets; it checks the admin key and answers OpenAI-shaped errors.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

DAY = 86_400
Answer = tuple[int, dict[str, Any]]


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Answer:
    return status, {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _page(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": False,
    }


@dataclass
class AdminApi:
    admin_key: str
    projects: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rate_limits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    spend_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (day start, model, input tokens, output tokens, requests, cost in USD)
    usage: list[tuple[int, str, int, int, int, float]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def add_project(self, name: str) -> dict[str, Any]:
        p: dict[str, Any] = {
            "id": f"proj_{secrets.token_hex(6)}",
            "object": "organization.project",
            "name": name,
            "created_at": int(time.time()),
            "archived_at": None,
            "status": "active",
        }
        self.projects.append(p)
        self.keys[p["id"]] = []
        self.rate_limits[p["id"]] = [
            {
                "object": "project.rate_limit",
                "id": "rl-m",
                "model": "m",
                "max_requests_per_1_minute": 60,
                "max_tokens_per_1_minute": 100_000,
            }
        ]
        return p

    def add_key(self, project_id: str, name: str) -> dict[str, Any]:
        value = f"sk-svcacct-{secrets.token_hex(12)}"
        sa_id = f"svc_acct_{secrets.token_hex(6)}"
        now = int(time.time())
        key = {
            "object": "organization.project.api_key",
            "id": f"key_{secrets.token_hex(6)}",
            "name": "Secret Key",  # what OpenAI names a service account's key
            "redacted_value": f"{value[:8]}...{value[-4:]}",
            "created_at": now,
            "last_used_at": None,
            "owner": {
                "type": "service_account",
                "service_account": {
                    "object": "organization.project.service_account",
                    "id": sa_id,
                    "name": name,
                    "role": "member",
                    "created_at": now,
                },
            },
        }
        self.keys[project_id].append(key)
        return {
            "object": "organization.project.service_account",
            "id": sa_id,
            "name": name,
            "role": "member",
            "created_at": now,
            "api_key": {
                "object": "organization.project.service_account.api_key",
                "value": value,
                "name": "Secret Key",
                "created_at": now,
                "id": key["id"],
            },
        }

    def answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        authorization: str | None,
    ) -> Answer:
        self.calls.append((method, path))
        if authorization != f"Bearer {self.admin_key}":
            return _error(401, "Incorrect API key provided.")
        m = re.fullmatch(r"/v1/organization/(.+)", path)
        if m is None:
            return _error(404, f"Invalid URL ({method} {path})")
        return self._route(method, m.group(1).split("/"), query, body or {})

    def _route(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: dict[str, Any]
    ) -> Answer:
        if parts in (["usage", "completions"], ["costs"]):
            return 200, self._buckets(parts[0], query)
        if parts[0] != "projects":
            return _error(404, f"Invalid URL ({method} /v1/organization/{'/'.join(parts)})")
        if len(parts) == 1:
            if method == "POST":
                return 200, self.add_project(str(body.get("name", "")))
            return 200, _page(self.projects)
        project = next((p for p in self.projects if p["id"] == parts[1]), None)
        if project is None:
            return _error(404, f"No project found with id '{parts[1]}'.")
        return self._project(method, project, parts[2:], body)

    def _project(
        self, method: str, project: dict[str, Any], rest: list[str], body: dict[str, Any]
    ) -> Answer:
        pid = project["id"]
        if rest == ["api_keys"]:
            return 200, _page(self.keys[pid])
        if len(rest) == 2 and rest[0] == "api_keys" and method == "DELETE":
            if any(
                k["id"] == rest[1] and k["owner"]["type"] == "service_account"
                for k in self.keys[pid]
            ):
                return _error(
                    400,
                    f"API key '{rest[1]}' belongs to a service account: delete the "
                    "service account instead.",
                )
            self.keys[pid] = [k for k in self.keys[pid] if k["id"] != rest[1]]
            return 200, {
                "object": "organization.project.api_key.deleted",
                "id": rest[1],
                "deleted": True,
            }
        if len(rest) == 2 and rest[0] == "service_accounts" and method == "DELETE":
            self.keys[pid] = [
                k
                for k in self.keys[pid]
                if k["owner"].get("service_account", {}).get("id") != rest[1]
            ]
            return 200, {
                "object": "organization.project.service_account.deleted",
                "id": rest[1],
                "deleted": True,
            }
        if rest == ["service_accounts"] and method == "POST":
            return 200, self.add_key(pid, str(body.get("name", "")))
        if rest == ["rate_limits"]:
            return 200, _page(self.rate_limits[pid])
        if len(rest) == 2 and rest[0] == "rate_limits" and method == "POST":
            limit = next(r for r in self.rate_limits[pid] if r["id"] == rest[1])
            limit.update({k: v for k, v in body.items() if k.startswith("max_")})
            return 200, limit
        if rest == ["spend_limit"]:
            if method == "POST":
                self.spend_limits[pid] = {
                    "object": "project.spend_limit",
                    **body,
                    "enforcement": {"status": "enforcing"},
                }
            if pid not in self.spend_limits:
                return _error(404, f"Project '{pid}' has no spend limit.")
            return 200, self.spend_limits[pid]
        if rest == ["archive"] and method == "POST":
            project.update(status="archived", archived_at=int(time.time()))
            return 200, project
        return _error(404, f"Invalid URL ({method} .../{'/'.join(rest)})")

    def _buckets(self, kind: str, query: dict[str, list[str]]) -> dict[str, Any]:
        start = int(query["start_time"][0])
        days = int(query.get("limit", ["7"])[0])
        data = []
        for d in range(days):
            day = start + d * DAY
            rows = [u for u in self.usage if u[0] == day]
            results: list[dict[str, Any]]
            if kind == "usage":
                results = [
                    {
                        "object": "organization.usage.completions.result",
                        "model": model,
                        "input_tokens": i,
                        "output_tokens": o,
                        "num_model_requests": n,
                        "input_cached_tokens": 0,
                        "project_id": None,
                        "api_key_id": None,
                    }
                    for _, model, i, o, n, _ in rows
                ]
            else:
                results = [
                    {
                        "object": "organization.costs.result",
                        "line_item": f"{model}, input+output",
                        "amount": {"value": cost, "currency": "usd"},
                        "project_id": None,
                    }
                    for _, model, _, _, _, cost in rows
                ]
            data.append(
                {"object": "bucket", "start_time": day, "end_time": day + DAY, "results": results}
            )
        return {"object": "page", "data": data, "has_more": False, "next_page": None}
