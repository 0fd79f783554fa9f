"""Creating, listing, revoking and checking API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.core.errors import AuthenticationFailed, InvalidRequest
from assistantd.core.ids import new_id, now_seconds
from assistantd.keys.models import ApiKey
from assistantd.keys.repository import ApiKeyRepository

DEFAULT_PROJECT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id and the project every object it touches belongs to."""

    key_id: str
    project_id: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str | None, project: str | None) -> tuple[ApiKey, str]:
    """Make a key; returns the row and the secret, which is not stored and never shown again."""
    secret = "sk-ad-" + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key_"),
        name=name,
        project_id=project or DEFAULT_PROJECT,
        secret_hash=hash_secret(secret),
        redacted=secret[:8] + "…" + secret[-4:],
        created_at=now_seconds(),
        revoked_at=None,
    )
    await ApiKeyRepository(session).insert(key)
    return key, secret


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return await ApiKeyRepository(session).all()


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await ApiKeyRepository(session).get(key_id)
    if key is None:
        raise InvalidRequest(f"No API key found with id '{key_id}'.")
    if key.revoked_at is None:
        key.revoked_at = now_seconds()
        await session.flush()
    return key


async def authenticate(session: AsyncSession, authorization: str | None,
                       static_keys: Sequence[str]) -> Principal:
    """Check a `Bearer` header against the static keys and the stored hashes."""
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise AuthenticationFailed(
            "The Authorization header must be 'Bearer YOUR_KEY'.", code=None
        )
    for static in static_keys:
        if hmac.compare_digest(static.encode(), secret.encode()):
            return Principal(key_id="static", project_id=DEFAULT_PROJECT)
    key = await ApiKeyRepository(session).by_hash(hash_secret(secret))
    if key is None or key.revoked_at is not None:
        shown = secret[:3] + "*" * 6 + secret[-4:] if len(secret) > 8 else "*" * len(secret)
        raise AuthenticationFailed(f"Incorrect API key provided: {shown}.")
    return Principal(key_id=key.id, project_id=key.project_id)
