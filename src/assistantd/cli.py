"""The `assistantd` command: serve, worker, cluster, migrate, manage API keys, import and export,
backup and restore, usage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

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
    from assistantd.ops.multiproc import prepare

    # Before anything imports prometheus_client: every process of this server writes there.
    prepare(settings.resolved_metrics_dir)
    import uvicorn

    from assistantd.core.server import uvicorn_options
    from assistantd.ops.logs import log_config

    logs = log_config(args.log_level, settings.log_format)
    extra: dict[str, Any] = {"log_config": logs} if logs is not None else {}
    _migrate(settings)
    uvicorn.run(
        "assistantd.app:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        **extra,
        # Streams end when their runs do (or are handed off, `worker/drain.py`): wait for them.
        timeout_graceful_shutdown=int(settings.shutdown_drain_seconds) + 10,
        # Header and body timeouts, connections per address (each worker process counts its own).
        **uvicorn_options(settings),
    )
    return 0


def cmd_worker(_: argparse.Namespace, settings: Settings) -> int:
    import logging
    import logging.config

    from assistantd.ops.multiproc import prepare

    prepare(settings.resolved_metrics_dir)
    from assistantd.app import run_worker
    from assistantd.ops.logs import log_config

    config = log_config("info", settings.log_format)
    if config is not None:
        logging.config.dictConfig(config)
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
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
    from assistantd.core.errors import InvalidRequest
    from assistantd.keys.service import create_admin_key, create_key

    _migrate(settings)
    if args.admin:
        admin, secret = asyncio.run(
            _with_session(settings, lambda s: create_admin_key(s, args.name))
        )
        print(
            f"created admin key {admin.id} (for /v1/organization/* only); the secret is shown once:"
        )
        print(secret)
        return 0
    try:
        key, secret = asyncio.run(
            _with_session(settings, lambda s: create_key(s, args.name, args.project))
        )
    except InvalidRequest as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(f"created key {key.id} (project {key.project_id}); the secret is shown once:")
    print(secret)
    return 0


def cmd_keys_list(_: argparse.Namespace, settings: Settings) -> int:
    from assistantd.keys.service import list_admin_keys, list_keys

    _migrate(settings)
    keys = asyncio.run(_with_session(settings, list_keys))
    admins = asyncio.run(_with_session(settings, list_admin_keys))
    print(f"{'ID':<30} {'PROJECT':<20} {'NAME':<20} {'KEY':<16} STATUS")
    rows = [(k.id, k.project_id, k.name, k.redacted, k.revoked_at) for k in keys]
    rows += [(k.id, "(admin)", k.name, k.redacted, k.revoked_at) for k in admins]
    for key_id, project, name, redacted, revoked_at in rows:
        status = "revoked" if revoked_at else "active"
        print(f"{key_id:<30} {project:<20} {(name or '-'):<20} {redacted:<16} {status}")
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


def _day(text: str) -> int:
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date (YYYY-MM-DD), got {text!r}") from None


def cmd_usage(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from assistantd.usage.pricing import Pricing
    from assistantd.usage.summary import render, summary

    _migrate(settings)
    end = args.until + 86400 if args.until is not None else int(time.time()) + 1
    start = args.since if args.since is not None else end - args.days * 86400
    pricing = Pricing.load(settings.pricing_file)
    rows = asyncio.run(
        _with_session(settings, lambda s: summary(s, pricing, start, end, tuple(args.project)))
    )
    print(render(rows))
    return 0


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        width = 30
        filled = width * done // max(total, 1)
        end = "\n" if done >= total else ""
        print(
            f"\rthreads [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
            end=end,
            file=sys.stderr,
            flush=True,
        )
    elif done >= total or done % 2000 == 0:
        print(f"threads {done}/{total}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def _file_store(settings: Settings) -> AsyncIterator[None]:
    """The file store the settings name (local or S3), for a command outside the server."""
    from assistantd.files import storage
    from assistantd.files.backends import build_store

    store = build_store(settings)
    storage.configure(settings.data_dir, store)
    try:
        yield
    finally:
        storage.unconfigure(settings.data_dir)
        await store.aclose()


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from assistantd.core.db import create_engine, session_maker
    from assistantd.transfer import dump
    from assistantd.transfer.load import import_dump
    from assistantd.transfer.problems import DumpError

    path = Path(args.path)
    files_dir = (
        Path(args.files_dir)
        if args.files_dir
        else (path / dump.FILES_DIR if path.is_dir() else None)
    )
    _migrate(settings)

    async def main() -> list[str]:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with _file_store(settings):
                report = await import_dump(
                    session_maker(engine),
                    settings.data_dir,
                    args.project,
                    dump.read(path),
                    files_dir,
                    dry_run=args.dry_run,
                    progress=_progress,
                )
            return report.lines()
        finally:
            await engine.dispose()

    try:
        lines = asyncio.run(main())
    except DumpError as exc:
        print(f"assistantd import: {exc}", file=sys.stderr)
        return 1
    print(f"{'dry run: nothing was written' if args.dry_run else 'done'} (project {args.project})")
    print("\n".join(lines))
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from assistantd.core.db import create_engine, session_maker
    from assistantd.transfer.export import export_project

    _migrate(settings)

    async def main() -> dict[str, int]:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with _file_store(settings):
                return dict(
                    await export_project(
                        session_maker(engine), settings.data_dir, args.project, Path(args.path)
                    )
                )
        finally:
            await engine.dispose()

    counts = asyncio.run(main())
    print(
        f"exported project {args.project} to {args.path}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )
    return 0


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from assistantd.ops.backup import BackupError, backup

    try:
        manifest = backup(settings, Path(args.path))
    except BackupError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"backed up the {manifest['database']} database and {manifest['files']} files to {args.path}"
    )
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from assistantd.ops.backup import BackupError, restore

    try:
        manifest = restore(settings, Path(args.path))
    except BackupError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"restored the {manifest['database']} database and {manifest['files']} files from {args.path}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="assistantd", description="A self-hosted OpenAI Assistants API v2 server."
    )
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (and, by default, the run worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API processes")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(fn=cmd_serve)

    sub.add_parser(
        "worker",
        help="execute runs and ingest files (no HTTP); pair with "
        "ASSISTANTD_WORKER_ENABLED=false API processes",
    ).set_defaults(fn=cmd_worker)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        fn=cmd_migrate
    )
    backup = sub.add_parser(
        "backup",
        help="copy the database and uploaded files to a new directory (safe while the server runs)",
    )
    backup.add_argument("path")
    backup.set_defaults(fn=cmd_backup)
    restore = sub.add_parser(
        "restore", help="replace the database and files with a backup (server stopped)"
    )
    restore.add_argument("path")
    restore.set_defaults(fn=cmd_restore)

    imp = sub.add_parser(
        "import",
        help="load an export of OpenAI's Assistants API (or of assistantd), keeping every id",
    )
    imp.add_argument("path", help="the export directory, or one JSON file")
    imp.add_argument("--project", default="default")
    imp.add_argument(
        "--files-dir", help="bytes of the files, named by file id or filename (default: PATH/files)"
    )
    imp.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    imp.set_defaults(fn=cmd_import)
    exp = sub.add_parser("export", help="write a project in the format `import` reads")
    exp.add_argument("path")
    exp.add_argument("--project", default="default")
    exp.set_defaults(fn=cmd_export)

    cl = sub.add_parser(
        "cluster",
        help="run N API processes and M workers on this host, supervised (PostgreSQL and Redis)",
    )
    cl.add_argument("--api", type=int, default=2, help="API processes (no run worker in them)")
    cl.add_argument("--workers", type=int, default=2, help="`assistantd worker` processes")
    cl.add_argument("--host", default="127.0.0.1")
    cl.add_argument(
        "--port",
        type=int,
        default=8000,
        help="first API port (API i listens on port+i-1); 0 = free ports of the OS",
    )
    cl.add_argument("--log-level", default="warning")
    cl.set_defaults(fn=cmd_cluster)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser(
        "create", help="make a key; its secret is printed once, on the last line"
    )
    create.add_argument("--name")
    create.add_argument(
        "--project",
        default="default",
        help="the project's id; a project of that id is made if there is none",
    )
    create.add_argument(
        "--admin",
        action="store_true",
        help="make an admin key (sk-admin-…) for the /v1/organization admin API instead",
    )
    create.set_defaults(fn=cmd_keys_create)
    keys.add_parser("list", help="list project and admin keys (never their secrets)").set_defaults(
        fn=cmd_keys_list
    )
    revoke = keys.add_parser("revoke", help="revoke a project or admin key by id")
    revoke.add_argument("id")
    revoke.set_defaults(fn=cmd_keys_revoke)

    usage = sub.add_parser("usage", help="tokens and cost by day, project and model")
    usage.add_argument(
        "--since", type=_day, help="first day (YYYY-MM-DD, UTC); default: --days ago"
    )
    usage.add_argument(
        "--until", type=_day, help="last day, included (YYYY-MM-DD, UTC); default: now"
    )
    usage.add_argument(
        "--days", type=int, default=7, help="days back when --since is not given (default 7)"
    )
    usage.add_argument(
        "--project", action="append", default=[], help="only this project (repeatable)"
    )
    usage.set_defaults(fn=cmd_usage)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.fn(args, Settings())
    return code


if __name__ == "__main__":
    sys.exit(main())
