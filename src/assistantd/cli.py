"""The `assistantd` command: serve, worker, cluster, migrate, and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from assistantd.core.settings import Settings

T = TypeVar("T")


async def _with_session(settings: Settings, fn: Callable[..., Awaitable[T]]) -> T:
    from assistantd.core.db import create_engine, session_maker

    engine = create_engine(settings.resolved_database_url)
    try:
        async with session_maker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def _migrate(settings: Settings) -> None:
    from assistantd.migrations import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from assistantd.core.server import uvicorn_options

    _migrate(settings)
    uvicorn.run(
        "assistantd.app:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        # Streams must not be cut when the server stops: give runs time to reach a step end.
        timeout_graceful_shutdown=10,
        # Header and body timeouts, connections per address (each worker process counts its own).
        **uvicorn_options(settings),
    )
    return 0


def cmd_worker(_: argparse.Namespace, settings: Settings) -> int:
    import logging

    from assistantd.app import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _migrate(settings)
    asyncio.run(run_worker(settings))
    return 0


def cmd_cluster(args: argparse.Namespace, settings: Settings) -> int:
    from assistantd import cluster

    problem = cluster.check(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    _migrate(settings)  # once, before the children start
    children = cluster.plan(args.api, args.workers, args.host, args.port, args.log_level)
    return cluster.supervise(children)


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> int:
    _migrate(settings)
    print(f"database at {settings.resolved_database_url} is up to date")
    return 0


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from assistantd.keys.service import create_key

    _migrate(settings)
    key, secret = asyncio.run(_with_session(settings, lambda s: create_key(s, args.name, args.project)))
    print(f"created key {key.id} (project {key.project_id}); the secret is shown once:")
    print(secret)
    return 0


def cmd_keys_list(_: argparse.Namespace, settings: Settings) -> int:
    from assistantd.keys.service import list_keys

    _migrate(settings)
    keys = asyncio.run(_with_session(settings, list_keys))
    print(f"{'ID':<30} {'PROJECT':<20} {'NAME':<20} {'KEY':<16} STATUS")
    for k in keys:
        status = "revoked" if k.revoked_at else "active"
        print(f"{k.id:<30} {k.project_id:<20} {(k.name or '-'):<20} {k.redacted:<16} {status}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from assistantd.core.errors import InvalidRequest
    from assistantd.keys.service import revoke_key

    _migrate(settings)
    try:
        key = asyncio.run(_with_session(settings, lambda s: revoke_key(s, args.id)))
    except InvalidRequest as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(f"revoked {key.id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assistantd", description="A self-hosted OpenAI Assistants API v2 server.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (and, by default, the run worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API processes")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(fn=cmd_serve)

    sub.add_parser("worker", help="execute runs and ingest files (no HTTP); pair with "
                   "ASSISTANTD_WORKER_ENABLED=false API processes").set_defaults(fn=cmd_worker)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(fn=cmd_migrate)

    cl = sub.add_parser("cluster", help="run N API processes and M workers on this host, supervised "
                        "(PostgreSQL and Redis)")
    cl.add_argument("--api", type=int, default=2, help="API processes (no run worker in them)")
    cl.add_argument("--workers", type=int, default=2, help="`assistantd worker` processes")
    cl.add_argument("--host", default="127.0.0.1")
    cl.add_argument("--port", type=int, default=8000,
                    help="first API port (API i listens on port+i-1); 0 = free ports of the OS")
    cl.add_argument("--log-level", default="warning")
    cl.set_defaults(fn=cmd_cluster)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="make a key; its secret is printed once, on the last line")
    create.add_argument("--name")
    create.add_argument("--project", default="default")
    create.set_defaults(fn=cmd_keys_create)
    keys.add_parser("list", help="list keys (never their secrets)").set_defaults(fn=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    revoke.set_defaults(fn=cmd_keys_revoke)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.fn(args, Settings())
    return code


if __name__ == "__main__":
    sys.exit(main())
