"""The database: one async engine per app, sessions owned by requests, SQLite and PostgreSQL alike.

Dialect differences live here and nowhere else.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import aiosqlite
import orjson
from sqlalchemy import JSON, BigInteger, ColumnElement, Integer, String, bindparam, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, mapped_column
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

# JSON on SQLite, JSONB on PostgreSQL: the same column type in every model.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of every table of the API."""


class ObjectRow:
    """Columns every API object has: its id, its project, its order, its creation time.

    `body` holds the wire object itself (minus what is derived at read time), so a row
    renders without mapping code per field; columns that are queried are kept beside it.
    """

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)


_offloaded: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "assistantd_sqlite_offloaded", default=False
)


@contextlib.contextmanager
def offloaded() -> Iterator[None]:
    """SQLite statements run inside this block go to a thread instead of the event loop.

    For the few statements that can take tens of milliseconds (a keyword search over a
    large store): everything else is microseconds and runs inline.
    """
    token = _offloaded.set(True)
    try:
        yield
    finally:
        _offloaded.reset(token)


class InlineSQLiteConnection(aiosqlite.Connection):
    """aiosqlite's interface, executed on the event loop's own thread.

    aiosqlite hands every call (cursor, execute, fetch, close — four per statement) to a
    worker thread and back. A SQLite statement on a WAL database takes microseconds; the
    two thread hops cost far more, and under load each hop also waits for the GIL. The
    engine keeps one connection (see `create_engine`), so calls never overlap, and a
    statement in `offloaded()` can still run in a thread. A write that must wait for
    another *process's* write lock blocks the loop for that wait (`busy_timeout`).
    """

    def __await__(self) -> Any:
        return self._connect().__await__()  # no worker thread to start

    async def _connect(self) -> InlineSQLiteConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        if _offloaded.get():
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def inline(self) -> sqlite3.Connection | None:
        """The sqlite3 connection, when statements run inline (None in `offloaded()`)."""
        return None if _offloaded.get() else self._connection

    def begin_immediate(self) -> bool:
        """`BEGIN IMMEDIATE` straight on the sqlite3 connection, when statements run inline
        (False in `offloaded()`: the caller goes the usual way, to a thread)."""
        if _offloaded.get() or self._connection is None:
            return False
        self._connection.execute("BEGIN IMMEDIATE")
        return True

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def _sqlite_path(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or ":memory:"


def _json_dumps(value: Any) -> str:
    """The text of a JSON column: orjson's (several times faster than the stdlib's on run
    and message bodies, and every row write takes one); the value read back is the same.
    An integer beyond 64 bits, which orjson cannot write, takes the stdlib's text. A
    non-finite float is written `null` (it is not JSON: PostgreSQL's JSONB refuses the
    stdlib's `NaN`, and no request may carry one, `core/request_guard.py`)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    """A JSON column's value: orjson's parser, the stdlib's for what orjson refuses (NaN,
    integers beyond 64 bits, which rows written by `json.dumps` may hold)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


#: Every engine's JSON columns (SQLite's JSON, PostgreSQL's JSONB) go through these.
_JSON = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}


def create_engine(url: str) -> AsyncEngine:
    """An engine tuned for its dialect."""
    if url.startswith("sqlite"):
        # check_same_thread=False: `offloaded()` statements use the connection from a
        # thread, never while the loop uses it.
        connector = functools.partial(
            sqlite3.connect,
            _sqlite_path(url),
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
        )

        async def connect() -> InlineSQLiteConnection:
            return await InlineSQLiteConnection(connector, 64)._connect()

        engine = create_async_engine(
            url,
            async_creator=connect,
            # One connection: SQLite has one writer anyway, and every transaction here takes
            # the write lock at BEGIN (below). With several connections, waiting writers
            # spin in SQLite's busy handler (sleeps of up to 100 ms); with one, they queue
            # in asyncio and are handed the connection the moment it is free.
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            **_JSON,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # One file, many short transactions: WAL lets readers run beside the writer.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # SQLAlchemy emits BEGIN itself (below), not the driver's implicit one: the
            # connection is opened with isolation_level=None (autocommit) for that.

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock at BEGIN: a deferred transaction that reads then writes
            # can fail with SQLITE_BUSY without waiting for busy_timeout. Every transaction
            # begins so: on the driver's connection itself, not as a statement through
            # SQLAlchemy's execution machinery (which cost more than the BEGIN).
            driver = conn.connection.driver_connection
            if not (isinstance(driver, InlineSQLiteConnection) and driver.begin_immediate()):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        engine = create_async_engine(url, pool_size=20, max_overflow=20, **_JSON)
        _ping_when_idle(engine)
        return engine
    return create_async_engine(url, poolclass=NullPool, **_JSON)


#: A pooled PostgreSQL connection idle this long is pinged before it is handed out.
IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's pre-ping, for a connection that sat in the pool `IDLE_PING_SECONDS` or
    more (a server restart, an idle timeout on the way), not for every checkout: on
    asyncpg a ping is three round trips (BEGIN, `;`, ROLLBACK), as many as a run's
    transaction has statements. One the driver already knows closed is replaced at any
    checkout; one that breaks while in use is invalidated where the error is met
    (SQLAlchemy's disconnect handling; `driver_transaction`)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(dbapi_conn: Any, record: Any) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        driver = getattr(dbapi_conn, "driver_connection", None)
        if driver is not None and driver.is_closed():
            # Closed by the server while it sat in the pool (a restart, a terminated
            # backend): known without a round trip, and replaced however briefly it idled.
            # (The driver's errors do not reach SQLAlchemy's disconnect handling, which
            # would otherwise drop the whole pool at the first one.)
            raise DisconnectionError("a pooled connection was closed by the server")
        idle_from = record.info.get("idle_from")
        if idle_from is None or time.monotonic() - idle_from < IDLE_PING_SECONDS:
            return
        try:
            dbapi_conn.ping()
        except Exception as gone:
            raise DisconnectionError(f"a pooled connection did not answer: {gone}") from gone


class Prebuilt:
    """A statement's SQL for `DriverTransaction`, written once with `?` placeholders, in the
    form each driver takes (asyncpg numbers them: `$1`, `$2` …). Its text holds no `?` of
    its own (no string literals)."""

    __slots__ = ("postgresql", "sqlite")

    def __init__(self, sql: str) -> None:
        self.sqlite = " ".join(sql.split())
        first, *rest = self.sqlite.split("?")
        self.postgresql = first + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))


def json_param(value: Any) -> str:
    """A JSON column's parameter for `DriverTransaction`: its text, as SQLAlchemy writes it
    (on PostgreSQL, SQLAlchemy's JSONB codec on the connection takes the text)."""
    return _json_dumps(value)


class DriverTransaction(abc.ABC):
    """A transaction on the database driver's own connection, for the run path's hottest
    statements (`worker/statements.py`): SQLAlchemy's work per statement (a cache key, an
    execution context, parameter processing, result metadata) cost more than the SQL
    itself, and none of it is done here. Only its pool is used. Parameters are a tuple,
    with `json_param` for a JSON column; rows come back as tuples, a JSON column's value
    through `json`. Errors are the driver's own (`sqlite3.Error`, `asyncpg` exceptions),
    not SQLAlchemy's wrappers of them."""

    @abc.abstractmethod
    async def execute(self, statement: Prebuilt, params: Sequence[Any]) -> int:
        """Run `statement`; returns how many rows it changed."""

    @abc.abstractmethod
    async def executemany(self, statement: Prebuilt, rows: Sequence[Sequence[Any]]) -> None:
        """Run `statement` once for each of `rows`."""

    @abc.abstractmethod
    async def fetch(self, statement: Prebuilt, params: Sequence[Any]) -> list[Sequence[Any]]:
        """The rows `statement` selects."""

    @staticmethod
    def json(value: Any) -> Any:
        """A JSON column's value as read (text on SQLite, decoded already on PostgreSQL)."""
        return _json_loads(value) if isinstance(value, str | bytes) else value


class _SQLiteTransaction(DriverTransaction):
    """On the sqlite3 connection itself, on the event loop (`InlineSQLiteConnection`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, statement: Prebuilt, params: Sequence[Any]) -> int:
        return self.conn.execute(statement.sqlite, params).rowcount

    async def executemany(self, statement: Prebuilt, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(statement.sqlite, rows)

    async def fetch(self, statement: Prebuilt, params: Sequence[Any]) -> list[Sequence[Any]]:
        return self.conn.execute(statement.sqlite, params).fetchall()


class _AsyncpgTransaction(DriverTransaction):
    """On the asyncpg connection (its statement cache prepares each statement once)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, statement: Prebuilt, params: Sequence[Any]) -> int:
        status: str = await self.conn.execute(statement.postgresql, *params)
        return int(status.rpartition(" ")[2] or 0)  # "UPDATE 1", "INSERT 0 1"

    async def executemany(self, statement: Prebuilt, rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(statement.postgresql, rows)

    async def fetch(self, statement: Prebuilt, params: Sequence[Any]) -> list[Sequence[Any]]:
        return list(await self.conn.fetch(statement.postgresql, *params))

    @staticmethod
    def json(value: Any) -> Any:
        return value


class _SQLAlchemyTransaction(DriverTransaction):
    """Through SQLAlchemy after all (SQLite statements `offloaded()` to a thread):
    `exec_driver_sql`, which still skips compiling."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, statement: Prebuilt, params: Sequence[Any]) -> int:
        return int((await self.conn.exec_driver_sql(statement.sqlite, tuple(params))).rowcount)

    async def executemany(self, statement: Prebuilt, rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.exec_driver_sql(statement.sqlite, [tuple(r) for r in rows])

    async def fetch(self, statement: Prebuilt, params: Sequence[Any]) -> list[Sequence[Any]]:
        return list((await self.conn.exec_driver_sql(statement.sqlite, tuple(params))).all())


@contextlib.asynccontextmanager
async def driver_transaction(engine: AsyncEngine) -> AsyncIterator[DriverTransaction]:
    """One transaction on a pooled connection's driver (`DriverTransaction`), committed at
    the block's end, rolled back if it raises. On SQLite it begins IMMEDIATE, as every
    transaction here does (`create_engine`)."""
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        raw = driver.inline() if isinstance(driver, InlineSQLiteConnection) else None
        if raw is not None:
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTransaction(raw)
                raw.execute("COMMIT")
            finally:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
        elif engine.dialect.driver == "asyncpg" and driver is not None:
            # SQLAlchemy's connection has not begun (its adapter begins lazily, at its
            # first statement): the transaction is the driver's, and the pool's reset on
            # return finds nothing to roll back.
            try:
                async with driver.transaction():
                    yield _AsyncpgTransaction(driver)
            except BaseException:
                if driver.is_closed():  # the pool must not hand it out again
                    await conn.invalidate()
                raise
        elif is_sqlite(engine):
            async with conn.begin():
                yield _SQLAlchemyTransaction(conn)
        else:  # its `?` placeholders are sqlite3's and asyncpg's (as `$n`) only
            raise NotImplementedError(
                f"prebuilt statements run on sqlite3 and asyncpg, not {engine.dialect.driver}"
            )


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


class UnitOfWork:
    """A request's transaction: services flush, the request commits; after-commit work runs last."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._after_commit: list[Callable[[], Awaitable[None] | None]] = []

    def after_commit(self, fn: Callable[[], Awaitable[None] | None]) -> None:
        """Run `fn` once the transaction has committed (e.g. hand a run to the worker)."""
        self._after_commit.append(fn)

    async def commit(self) -> None:
        await self.session.commit()
        callbacks, self._after_commit = self._after_commit, []
        for fn in callbacks:
            result = fn()
            if result is not None:
                await result


async def unit_of_work(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[UnitOfWork]:
    """Yield a UnitOfWork; commit if the body succeeded, roll back if it raised."""
    async with maker() as session:
        uow = UnitOfWork(session)
        try:
            yield uow
        except BaseException:
            await session.rollback()
            raise
        else:
            await uow.commit()


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class json_member_text(FunctionElement[str]):
    """`column[container][key]` as text, NULL when missing: any key, quotes and dots included
    (a JSON path string cannot hold every key on SQLite). `container` is a fixed name of
    ours; `key` is bound as a parameter."""

    type = String()
    inherit_cache = True
    name = "json_member_text"

    def __init__(
        self, column: ColumnElement[Any] | InstrumentedAttribute[Any], container: str, key: str
    ) -> None:
        if not container.isidentifier():
            raise ValueError(f"not a plain container name: {container!r}")
        self.container = container
        super().__init__(column, bindparam(None, key, type_=String(), unique=True))


@compiles(json_member_text, "sqlite")
def _json_member_text_sqlite(element: json_member_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"(SELECT j.value FROM json_each({column}, '$.{element.container}') AS j "
        f"WHERE j.key = {key} AND j.type = 'text')"
    )


@compiles(json_member_text, "postgresql")
def _json_member_text_pg(element: json_member_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"(({column} -> '{element.container}') ->> CAST({key} AS TEXT))"
