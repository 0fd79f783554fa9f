"""API keys: project keys (each belongs to a project, maybe to a service account of it) and
admin keys (for `/v1/organization/*` only). Only a hash of a secret is stored."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base


class ApiKey(Base):
    """A project key; `secret_hash` is the SHA-256 of the secret, which is shown once.

    `service_account_id` is set for keys made through the admin API (a service account owns
    them); keys made with `assistantd keys create` have none.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    redacted: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    service_account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AdminApiKey(Base):
    """An organization admin key (`sk-admin-…`): authorizes `/v1/organization/*`, nothing else."""

    __tablename__ = "admin_api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    redacted: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ServiceAccount(Base):
    """A project's service account: the owner of the keys the admin API makes."""

    __tablename__ = "service_accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(Integer)
    deleted_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
