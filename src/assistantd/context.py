"""The composition root's types: what the lifespan builds (`AppContext`) and what a test or
benchmark may supply instead (`Overrides`).

`app.py::running` builds one `AppContext`; the API's dependencies (`api/deps.py`) read its
fields, so every collaborator a handler or service gets is named and typed here. The module
sits below `app.py` (which imports every router) so that `api/deps.py` can import it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistantd.core.settings import Settings
from assistantd.files.service import FileDependents
from assistantd.keys.cache import KeyCache
from assistantd.limits.service import Limits
from assistantd.llm.base import ModelRouter
from assistantd.llm.router import ModelCatalog
from assistantd.ops.shutdown import Drain
from assistantd.retrieval import Embedder
from assistantd.runs.runtime import RunRuntime
from assistantd.sandbox.base import CodeSandbox
from assistantd.vector_stores.runtime import VectorStoreRuntime


@dataclass(frozen=True)
class Overrides:
    """Collaborators to use instead of the ones the settings configure (tests pass a scripted
    model router, an embedder or a sandbox). `None` builds the configured one."""

    models: ModelRouter | None = None
    embedder: Embedder | None = None
    sandbox: CodeSandbox | None = None


@dataclass
class AppContext:
    """What the lifespan owns: settings, the database, and the engines built on them."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    #: The chunk index, embedder, searcher and ingestion worker of vector stores.
    stores: VectorStoreRuntime
    #: What deleting a file must also update (its vector stores), for the files package.
    file_dependents: FileDependents
    #: Requested model name -> backend, for runs.
    models: ModelRouter
    #: The code interpreter's sessions.
    sandbox: CodeSandbox
    #: The API side of runs: the event bus and the run dispatcher.
    runs: RunRuntime
    #: Filling the sandbox's warm pool in the background (when this process runs runs).
    sandbox_warmup: asyncio.Task[None] | None = None
    #: `GET /v1/models`' catalog and when it was first read (`models_api/router.py`).
    model_catalog: tuple[ModelCatalog, int] | None = None
    #: Rate limits, spend limits and usage metering (`limits/`, `usage/`).
    limits: Limits | None = None
    #: Stops the run worker cleanly (`worker/drain.py`): drain, then hand off what is left.
    drainer: Drain | None = None
    #: Project keys found valid, for `auth_cache_seconds` (`keys/cache.py`).
    keys: KeyCache | None = None


def app_context(request: Request) -> AppContext:
    """The context the lifespan stored on the app (`app.state.ctx`)."""
    ctx: AppContext = request.app.state.ctx
    return ctx
