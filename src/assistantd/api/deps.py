"""FastAPI dependencies every router uses: the request's unit of work and the caller.

The top floor beside the routers: it reads API keys (`keys/`), which `core/` may not.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request

from assistantd.context import app_context
from assistantd.core.db import UnitOfWork, unit_of_work
from assistantd.core.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from assistantd.keys.cache import KeyCache
from assistantd.keys.service import AdminPrincipal, Principal, authenticate
from assistantd.runs.runtime import RunRuntime
from assistantd.vector_stores.runtime import VectorStoreRuntime


async def _uow(request: Request) -> AsyncIterator[UnitOfWork]:
    async for uow in unit_of_work(app_context(request).sessions):
        yield uow


# scope="function": commit before the response is sent, so a client that creates an
# object and reads it back at once always finds it.
UoW = Annotated[UnitOfWork, Depends(_uow, scope="function")]


async def _authenticate(
    request: Request, uow: UnitOfWork, authorization: str | None
) -> Principal | AdminPrincipal:
    ctx = app_context(request)
    who = await authenticate(uow.session, authorization, ctx.settings.static_api_keys, ctx.keys)
    # End the key lookup's transaction now: the handler may read a long upload or wait on
    # a stream before it touches the database again, and must not hold a lock meanwhile.
    # A static or cached key read nothing: there is no transaction to end.
    if uow.session.in_transaction():
        await uow.session.commit()
    request.scope["principal"] = who
    return who


async def _principal(
    request: Request, uow: UoW, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    beta = request.headers.get("openai-beta")
    if beta is not None and not re.search(r"assistants=v[12]\b", beta) and "assistants=" in beta:
        raise InvalidRequest(
            f"Invalid 'OpenAI-Beta' header: {beta!r}. Supported values are 'assistants=v2' "
            "(the default) and 'assistants=v1'.",
            code="invalid_beta",
        )
    principal = await _authenticate(request, uow, authorization)
    if isinstance(principal, AdminPrincipal):
        raise AuthenticationFailed(
            "Admin API keys can only be used with the /v1/organization endpoints. Use a project "
            "API key for this request."
        )
    return principal


Caller = Annotated[Principal, Depends(_principal)]


async def require_admin(
    request: Request, uow: UoW, authorization: Annotated[str | None, Header()] = None
) -> AdminPrincipal:
    """The caller of a `/v1/organization/*` endpoint: an admin key, or 401/403."""
    principal = await _authenticate(request, uow, authorization)
    if not isinstance(principal, AdminPrincipal):
        raise PermissionDenied(
            "You have insufficient permissions for this operation. Missing scopes: "
            "api.management.read. Use an admin API key (sk-admin-…) for /v1/organization endpoints."
        )
    return principal


# The admin API's caller (every /v1/organization/* route): an admin key.
AdminCaller = Annotated[AdminPrincipal, Depends(require_admin)]


def check_id(value: str, prefix: str, param: str) -> None:
    """OpenAI rejects ids with the wrong prefix before looking them up."""
    if not value.startswith(prefix):
        raise InvalidRequest(
            f"Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix.rstrip('_-')}'.",
            param=param,
        )


async def _vector_stores(request: Request) -> VectorStoreRuntime:
    return app_context(request).stores


# The vector-store runtime: the vector-store endpoints, and requests whose tool_resources or
# attachments create stores.
Stores = Annotated[VectorStoreRuntime, Depends(_vector_stores)]


async def _keys(request: Request) -> KeyCache | None:
    return app_context(request).keys


# This process's cache of valid project keys: what revokes a key or archives a project
# empties it after the commit.
Keys = Annotated[KeyCache | None, Depends(_keys)]


async def _runs(request: Request) -> RunRuntime:
    return app_context(request).runs


# The API side of runs: the event bus and the run dispatcher.
Runtime = Annotated[RunRuntime, Depends(_runs)]
