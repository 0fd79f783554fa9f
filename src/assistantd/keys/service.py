"""Creating, listing, revoking and checking API keys: project keys and admin keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.audit.service import record
from assistantd.core.errors import AuthenticationFailed, InvalidRequest
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.keys.cache import KeyCache
from assistantd.keys.models import AdminApiKey, ApiKey
from assistantd.keys.repository import AdminKeyRepository, ApiKeyRepository, touch
from assistantd.projects.models import DEFAULT_PROJECT
from assistantd.projects.repository import ProjectRepository

__all__ = [
    "DEFAULT_PROJECT",
    "AdminPrincipal",
    "Principal",
    "authenticate",
    "create_admin_key",
    "create_key",
    "hash_secret",
    "list_keys",
    "revoke_key",
]

#: Secrets of admin keys start so, as OpenAI's do; project keys start with `sk-ad-`.
ADMIN_PREFIX = "sk-admin-"
PROJECT_PREFIX = "sk-ad-"
#: `last_used_at` is written at most this often per key (it costs a write).
LAST_USED_RESOLUTION = 60


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id and the project every object it touches belongs to."""

    key_id: str
    project_id: str


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    """An admin key's caller: the whole organization, on `/v1/organization/*` only."""

    key_id: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _redact(secret: str, shown: int) -> str:
    return secret[:shown] + "…" + secret[-4:]


async def create_key(
    session: AsyncSession,
    name: str | None,
    project: str | None,
    *,
    service_account_id: str | None = None,
    admin_key_id: str | None = None,
    scopes: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Make a project key; returns the row and the secret, which is not stored and never shown again.

    A project named by id that does not exist yet is made (the CLI's `--project NAME`); an
    archived one is refused. `admin_key_id` is the admin key that asked, for the audit log.
    """
    target = await ProjectRepository(session).ensure(project or DEFAULT_PROJECT)
    if not target.active:
        raise InvalidRequest(
            f"Project '{target.id}' is archived: it cannot have new keys.", param="project_id"
        )
    secret = PROJECT_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key_"),
        name=name,
        project_id=target.id,
        secret_hash=hash_secret(secret),
        redacted=_redact(secret, 8),
        created_at=now_seconds(),
        revoked_at=None,
        service_account_id=service_account_id,
        last_used_at=None,
    )
    await ApiKeyRepository(session).insert(key)
    await record(
        session,
        "api_key.created",
        resource_id=key.id,
        admin_key_id=admin_key_id,
        project=(target.id, target.name),
        details={"data": {"scopes": scopes or []}},
    )
    return key, secret


async def create_admin_key(
    session: AsyncSession,
    name: str | None,
    *,
    expires_in_seconds: int | None = None,
    admin_key_id: str | None = None,
) -> tuple[AdminApiKey, str]:
    """Make an admin key (`sk-admin-…`); the secret is returned once."""
    secret = ADMIN_PREFIX + secrets.token_urlsafe(32)
    now = now_seconds()
    key = AdminApiKey(
        id=new_id("key_"),
        name=name,
        secret_hash=hash_secret(secret),
        redacted=_redact(secret, 12),
        seq=next_seq(),
        created_at=now,
        expires_at=now + expires_in_seconds if expires_in_seconds is not None else None,
        last_used_at=None,
        revoked_at=None,
    )
    await AdminKeyRepository(session).insert(key)
    await record(
        session,
        "api_key.created",
        resource_id=key.id,
        admin_key_id=admin_key_id,
        details={"data": {"scopes": ["api.management.read", "api.management.write"]}},
    )
    return key, secret


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return await ApiKeyRepository(session).all()


async def list_admin_keys(session: AsyncSession) -> Sequence[AdminApiKey]:
    return await AdminKeyRepository(session).all()


async def revoke_key(
    session: AsyncSession, key_id: str, *, admin_key_id: str | None = None
) -> ApiKey | AdminApiKey:
    """Revoke a project key or an admin key by id (recorded as `api_key.deleted`)."""
    key = await ApiKeyRepository(session).get(key_id)
    if key is None:
        return await _revoke_admin_key(session, key_id, admin_key_id)
    if key.revoked_at is None:
        key.revoked_at = now_seconds()
        await session.flush()
        project = await ProjectRepository(session).get(key.project_id)
        await record(
            session,
            "api_key.deleted",
            resource_id=key.id,
            admin_key_id=admin_key_id,
            project=(key.project_id, project.name if project else key.project_id),
        )
    return key


async def _revoke_admin_key(
    session: AsyncSession, key_id: str, admin_key_id: str | None
) -> AdminApiKey:
    admin = await AdminKeyRepository(session).get(key_id)
    if admin is None:
        raise InvalidRequest(f"No API key found with id '{key_id}'.")
    if admin.revoked_at is None:
        admin.revoked_at = now_seconds()
        await session.flush()
        await record(session, "api_key.deleted", resource_id=admin.id, admin_key_id=admin_key_id)
    return admin


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise AuthenticationFailed("The Authorization header must be 'Bearer YOUR_KEY'.", code=None)
    return secret


def _incorrect(secret: str) -> AuthenticationFailed:
    shown = secret[:3] + "*" * 6 + secret[-4:] if len(secret) > 8 else "*" * len(secret)
    return AuthenticationFailed(f"Incorrect API key provided: {shown}.")


def _stale(last_used_at: int | None, now: int) -> bool:
    """Whether to write `last_used_at` (at most once a `LAST_USED_RESOLUTION` per key)."""
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


async def _admin(session: AsyncSession, secret: str) -> AdminPrincipal:
    key = await AdminKeyRepository(session).lookup(hash_secret(secret))
    now = now_seconds()
    if (
        key is None
        or key.revoked_at is not None
        or (key.expires_at is not None and key.expires_at <= now)
    ):
        raise _incorrect(secret)
    if _stale(key.last_used_at, now):
        await touch(session, AdminApiKey, key.id, now, LAST_USED_RESOLUTION)
    return AdminPrincipal(key_id=key.id)


async def _project_key(session: AsyncSession, secret: str, cache: KeyCache | None) -> Principal:
    secret_hash = hash_secret(secret)
    now = now_seconds()
    hit = cache.get(secret_hash) if cache is not None else None
    if hit is not None:
        if _stale(hit.last_used_at, now):
            await touch(session, ApiKey, hit.key_id, now, LAST_USED_RESOLUTION)
            hit.last_used_at = now
        return Principal(key_id=hit.key_id, project_id=hit.project_id)
    generation = cache.generation if cache is not None else 0
    key = await ApiKeyRepository(session).lookup(secret_hash)
    if key is None or key.revoked_at is not None:
        raise _incorrect(secret)
    if key.archived_at is not None:
        raise AuthenticationFailed(
            f"The project '{key.project_id}' of this API key is archived: its keys no longer work.",
            code="project_archived",
        )
    last_used = key.last_used_at
    if _stale(last_used, now):
        await touch(session, ApiKey, key.id, now, LAST_USED_RESOLUTION)
        last_used = now
    if cache is not None:
        cache.put(secret_hash, key.id, key.project_id, last_used, generation)
    return Principal(key_id=key.id, project_id=key.project_id)


async def authenticate(
    session: AsyncSession,
    authorization: str | None,
    static_keys: Sequence[str],
    cache: KeyCache | None = None,
) -> Principal | AdminPrincipal:
    """Check a `Bearer` header against the static keys and the stored hashes (project keys
    found valid are kept in `cache` for a few seconds, `keys/cache.py`).

    The static keys (`ASSISTANTD_API_KEYS`) are keys of the default project.
    """
    secret = _bearer(authorization)
    for static in static_keys:
        if hmac.compare_digest(static.encode(), secret.encode()):
            return Principal(key_id="static", project_id=DEFAULT_PROJECT)
    if secret.startswith(ADMIN_PREFIX):
        return await _admin(session, secret)
    return await _project_key(session, secret, cache)
