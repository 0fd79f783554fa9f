"""The app factory and its lifespan: everything heavy is built here, nothing at import time."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistantd.admin.router import router as admin_router
from assistantd.assistants.router import router as assistants_router
from assistantd.console.router import install_console
from assistantd.context import AppContext, Overrides
from assistantd.core.db import create_engine, session_maker
from assistantd.core.handlers import install_handlers
from assistantd.core.http import JSONResponse
from assistantd.core.request_guard import RequestGuard
from assistantd.core.server import tune_gc
from assistantd.core.settings import Settings
from assistantd.events.bus import EventBus, MemoryEventBus
from assistantd.events.redis_bus import RedisEventBus
from assistantd.files import storage
from assistantd.files.backends import build_store
from assistantd.files.expiry import FileExpiry
from assistantd.files.router import router as files_router
from assistantd.keys.cache import KeyCache
from assistantd.limits.limiter import WindowLimiter
from assistantd.limits.router import router as limits_router
from assistantd.limits.service import Limits
from assistantd.llm.base import ModelRouter
from assistantd.llm.router import build_model_router
from assistantd.messages.router import router as messages_router
from assistantd.migrations import upgrade
from assistantd.models_api.router import router as models_router
from assistantd.ops import tracing
from assistantd.ops.health import router as health_router
from assistantd.ops.metrics import router as metrics_router
from assistantd.ops.middleware import HttpEdge
from assistantd.ops.observe import ObservedBus, ObservedModels, ObservedSandbox
from assistantd.ops.runtime import operations
from assistantd.ops.worker_http import serve_worker_metrics
from assistantd.runs.router import router as runs_router
from assistantd.runs.runtime import RunRuntime
from assistantd.sandbox import BubblewrapSandbox
from assistantd.sandbox.base import CodeSandbox
from assistantd.sandbox.limits import OutputLimits
from assistantd.threads.router import router as threads_router
from assistantd.usage.pricing import Pricing
from assistantd.usage.router import router as usage_router
from assistantd.vector_stores.router import router as vector_stores_router
from assistantd.vector_stores.runtime import VectorStoreRuntime, start_ingestion
from assistantd.vector_stores.service import VectorStoreDependents
from assistantd.worker.dispatch import LocalDispatcher
from assistantd.worker.drain import Drainer
from assistantd.worker.engine import RunEngine
from assistantd.worker.observed_tools import observe_tools
from assistantd.worker.redis_dispatch import RedisDispatcher
from assistantd.worker.store import RunStore
from assistantd.worker.tools.base import ServerTool
from assistantd.worker.tools.bridges import AppFiles, AppSearch
from assistantd.worker.tools.code_interpreter import CodeInterpreterTool
from assistantd.worker.tools.file_search import FileSearchTool
from assistantd.worker.worker import RunWorker

log = logging.getLogger("assistantd")


def build_sandbox(settings: Settings) -> CodeSandbox:
    """The configured code-interpreter sandbox (bubblewrap, a warm pool of kernels)."""
    s = settings
    output = OutputLimits(
        max_frame_bytes=s.sandbox_max_frame_bytes,
        max_frames=s.sandbox_max_frames,
        max_images=s.sandbox_max_images,
        max_files=s.sandbox_max_output_files,
        max_file_bytes=s.sandbox_max_output_file_mb * 1024 * 1024,
    )
    return BubblewrapSandbox(
        sandbox_dir=s.sandbox_dir,
        idle_seconds=s.sandbox_idle_seconds,
        timeout_seconds=s.sandbox_timeout_seconds,
        memory_mb=s.sandbox_memory_mb,
        disk_mb=s.sandbox_disk_mb,
        max_processes=s.sandbox_max_processes,
        pool_size=s.sandbox_pool_size,
        max_output_chars=s.sandbox_max_output_chars,
        output_limits=output,
    )


def build_server_tools(
    settings: Settings, stores: VectorStoreRuntime, sandbox: CodeSandbox, files: AppFiles
) -> dict[str, ServerTool]:
    """file_search and code_interpreter, on the vector stores, files and the sandbox."""
    return {
        "file_search": FileSearchTool(AppSearch(stores)),
        "code_interpreter": CodeInterpreterTool(
            sandbox, files, output_storage_bytes=settings.sandbox_output_storage_mb * 1024 * 1024
        ),
    }


async def start_runs(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    stores: VectorStoreRuntime,
    models: ModelRouter,
    sandbox: CodeSandbox,
    limits: Limits | None = None,
) -> tuple[RunRuntime, LocalDispatcher]:
    """Build the run machinery (event bus, engine, worker, dispatcher) and start the worker."""
    store = RunStore(engine)
    bus: EventBus
    if settings.redis_url:
        bus = RedisEventBus(
            settings.redis_url, persist=store.persist_events, load=store.load_events
        )
    else:
        bus = MemoryEventBus(
            persist=store.persist_events,
            load=store.load_events,
            flush_seconds=settings.event_flush_seconds,
            persist_many=store.persist_event_logs,
        )
    bus = ObservedBus(bus)
    files = AppFiles(sessions, settings.data_dir)
    run_engine = RunEngine(
        store,
        bus,
        models,
        settings,
        tools=observe_tools(build_server_tools(settings, stores, sandbox, files)),
        files=files,
        meter=limits,
    )
    worker = RunWorker(run_engine, store, settings)
    dispatcher = (
        RedisDispatcher(worker, bus, settings.redis_url)
        if settings.redis_url
        else LocalDispatcher(worker, bus)
    )
    await dispatcher.start()
    runtime = RunRuntime(
        settings=settings, bus=bus, dispatcher=dispatcher, stores=stores, limits=limits
    )
    return runtime, dispatcher


async def _warm(sandbox: CodeSandbox) -> None:
    try:
        await sandbox.start()
    except Exception as err:  # the sandbox is optional until a run uses code_interpreter
        log.warning("code interpreter sandbox not available: %s", err)


@asynccontextmanager
async def running(
    settings: Settings, *, run_migrations: bool = True, overrides: Overrides | None = None
) -> AsyncIterator[AppContext]:
    """Everything the process runs besides HTTP: database, ingestion, run worker, sandbox.

    The API's lifespan and `assistantd worker` both live inside it. `overrides` replace
    engines the settings would build (tests pass a scripted model router).
    """
    overrides = overrides or Overrides()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    if run_migrations:
        await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_maker(engine)
    file_store = build_store(settings)
    storage.configure(settings.data_dir, file_store)
    # Stores first: runs the worker recovers at start-up may search them at once.
    stores = await start_ingestion(settings, sessions, overrides.embedder)
    file_dependents = VectorStoreDependents(stores)
    expiry = FileExpiry(sessions, settings.data_dir, file_dependents)
    if settings.worker_enabled:
        await expiry.start()
    tracing.configure()
    sandbox = ObservedSandbox(overrides.sandbox or build_sandbox(settings))
    models = ObservedModels(overrides.models or build_model_router(settings))
    limits = Limits(
        settings,
        engine,
        sessions,
        Pricing.load(settings.pricing_file),
        WindowLimiter(settings.redis_url),
    )
    runtime, dispatcher = await start_runs(
        settings, engine, sessions, stores, models, sandbox, limits
    )
    warmup = None
    if settings.worker_enabled and settings.sandbox_pool_size > 0:
        # Warm the code-interpreter pool in the background: start-up does not wait for it.
        warmup = asyncio.create_task(_warm(sandbox))
    drainer = Drainer(dispatcher.worker, runtime.bus, settings.shutdown_drain_seconds)
    ctx = AppContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        stores=stores,
        file_dependents=file_dependents,
        models=models,
        sandbox=sandbox,
        runs=runtime,
        sandbox_warmup=warmup,
        limits=limits,
        drainer=drainer,
        keys=KeyCache(settings.auth_cache_seconds),
    )
    try:
        yield ctx
    finally:
        # Runs in flight finish or are handed off (queued), within the drain time.
        await drainer.finish()
        await dispatcher.aclose()
        await limits.aclose()
        await runtime.bus.aclose()
        await expiry.stop()
        await stores.aclose()
        await sandbox.close()
        await models.aclose()
        await engine.dispose()
        storage.unconfigure(settings.data_dir)
        await file_store.aclose()
        tracing.shutdown()


async def run_worker(settings: Settings) -> None:
    """`assistantd worker`: execute runs and ingest files, no HTTP, until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(
        settings.model_copy(update={"worker_enabled": True}), run_migrations=False
    ) as ctx:
        metrics = None
        if settings.worker_metrics_port is not None:
            metrics = serve_worker_metrics(
                ctx, settings.worker_metrics_host, settings.worker_metrics_port
            )
        log.info("assistantd worker running")
        await stop.wait()
        if metrics is not None:
            metrics[0].should_exit = True
            await metrics[1]


def create_app(
    settings: Settings | None = None,
    *,
    run_migrations: bool = True,
    overrides: Overrides | None = None,
    gc_tuned: bool = False,
) -> FastAPI:
    """Build the API. `overrides` replace lifespan-built engines (tests pass a scripted model);
    `gc_tuned`: a server process's collector settings (`core.server.tune_gc`) once started."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            running(settings, run_migrations=run_migrations, overrides=overrides) as ctx,
            operations(app, ctx),
        ):
            app.state.ctx = ctx
            if gc_tuned:
                tune_gc()
            yield

    app = FastAPI(
        title="assistantd",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    install_handlers(app)
    # Inside the edge, so that its errors carry the request id too. The upload streams its
    # multipart body to disk itself, bounded by ASSISTANTD_MAX_UPLOAD_BYTES.
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_json_body_bytes, streamed_paths=("/v1/files",)
    )
    app.add_middleware(HttpEdge, access_log=settings.log_format == "json")

    # runs first: `POST /v1/threads/runs` must win over `POST /v1/threads/{thread_id}`.
    for router in (
        assistants_router,
        runs_router,
        threads_router,
        messages_router,
        files_router,
        vector_stores_router,
        models_router,
        admin_router,
        limits_router,
        usage_router,
        health_router,
        metrics_router,
    ):
        app.include_router(router)

    install_console(app)  # `/console` (static files) and the `/` redirect

    @app.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def serve_app() -> FastAPI:
    """uvicorn's factory for `assistantd serve`: the CLI has already run the migrations."""
    return create_app(run_migrations=False, gc_tuned=True)
