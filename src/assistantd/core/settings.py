"""All of assistantd's settings, read from `ASSISTANTD_*` environment variables (or `.env`).

One class, built once by the app factory or the CLI and passed down; nothing reads the
environment anywhere else. Every field here has a row in the README's settings table
(tests/unit/test_docs.py fails otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """assistantd's configuration; field names map to `ASSISTANTD_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANTD_", env_file=".env", extra="ignore")

    # -- storage ---------------------------------------------------------------------------
    data_dir: Path = Field(
        Path("./data"), description="Where the SQLite file, uploads and sandboxes live."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL; default `sqlite+aiosqlite:///<DATA_DIR>/assistantd.db`. "
        "`postgresql+asyncpg://user@host/db` works the same.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (`redis://host:6379/0`) for the run queue and event bus when API and "
        "worker processes run apart; unset = in-process.",
    )
    api_keys: str | None = Field(
        None,
        description="Comma-separated static API keys accepted for project `default`, besides the keys "
        "made with `assistantd keys create`.",
    )
    auth_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a process keeps a project key it found valid before reading it again; "
        "0 = read every request. A key revoked or a project archived through this process is "
        "refused at once; through another process (or `assistantd keys revoke`), within this long.",
    )

    # -- HTTP ------------------------------------------------------------------------------
    http_header_timeout_seconds: float = Field(
        10.0,
        description="A request's headers must arrive within this long of the connection opening "
        "(or of the previous response ending); else the connection is closed.",
    )
    http_body_timeout_seconds: float = Field(
        30.0,
        description="Longest pause while a request body is received; then the connection is "
        "closed. Responses (streams, long polls) are not bounded by it.",
    )
    http_keep_alive_seconds: int = Field(
        5, description="An idle connection between requests is closed after this long."
    )
    http_max_connections_per_client: int = Field(
        256,
        description="Open connections allowed from one client address, per server process; past it a "
        "new one is answered 429 and closed. 0 = no bound (behind a proxy every client has its address).",
    )

    # -- model backends --------------------------------------------------------------------
    llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint (`http://host:8000/v1`); when set every model goes there.",
    )
    llm_api_key: str | None = Field(None, description="Bearer key sent to `LLM_BASE_URL`.")
    llm_model: str | None = Field(
        None, description="Model name sent upstream; unset = the model the client asked for."
    )
    llm_models_file: Path | None = Field(
        None, description="TOML file mapping requested model names to backends (see README)."
    )
    llm_context_window: int = Field(
        128_000,
        description="Context window (tokens) assumed for `LLM_BASE_URL` models by `truncation_strategy: auto`.",
    )
    llm_vision: bool = Field(
        True, description="`LLM_BASE_URL` models take images; false = they see text placeholders."
    )
    image_max_bytes: int = Field(
        20 * 1024 * 1024, description="Largest `image_file` sent to a model (as a data URL)."
    )
    llm_timeout_seconds: float = Field(
        120.0, description="Upstream request timeout (read timeout between chunks)."
    )
    llm_max_retries: int = Field(
        3, description="Retries with backoff on upstream 429/5xx/connection errors."
    )
    llm_gguf_path: Path | None = Field(
        None,
        description="GGUF file for the embedded llama.cpp backend; default: the bundled Gemma 3 270M.",
    )
    llm_context_size: int = Field(
        8192, description="Context window (tokens) of the embedded model."
    )
    llm_max_response_tokens: int = Field(
        1024,
        ge=1,
        description="Most tokens the embedded model generates in one response (a run's "
        "`max_completion_tokens` may lower it); a response cut there ends the run `incomplete`.",
    )
    llm_threads: int | None = Field(
        None, description="CPU threads for the embedded model; default: all cores."
    )

    # -- runs ------------------------------------------------------------------------------
    run_expires_seconds: int = Field(
        600, description="A run not terminal this long after creation becomes `expired`."
    )
    run_max_steps: int = Field(
        25, description="Most model calls (tool rounds) one run may make before it fails."
    )
    run_concurrency: int = Field(64, description="Runs executed at once by one worker process.")
    poll_after_ms: int = Field(
        25, description="`openai-poll-after-ms` sent on run responses, for the SDK poll helpers."
    )
    stream_keepalive_seconds: float = Field(
        15.0,
        description="A `: ping` comment is sent on a stream silent this long, so proxies keep it open.",
    )
    event_flush_seconds: float = Field(
        1.0,
        ge=0,
        description="How often a single process writes its live runs' new events to the database; "
        "a crash loses at most about this much of a run's stream. 0 = only when a run pauses or ends.",
    )
    worker_enabled: bool = Field(
        True,
        description="Execute runs in the `serve` process; false = API only (run `assistantd worker` apart).",
    )
    run_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a worker's lease on a run it executes lasts unless renewed; a worker "
        "on another host takes over the runs of a dead one within this plus one sweep.",
    )
    run_lease_renew_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a worker renews the leases of the runs it executes (to "
        "`RUN_LEASE_SECONDS` ahead); keep it at most a third of the lease.",
    )
    run_lease_margin_seconds: float = Field(
        2.0,
        ge=0,
        description="How long before its lease runs out (counted from its last successful "
        "renewal) a worker stops executing a run it could not renew, so that a worker that "
        "stalled never acts beside the one that took its run over; more than the clock skew "
        "between hosts plus the time a write takes. Renewal interval plus margin must be "
        "shorter than the lease.",
    )
    run_sweep_seconds: float = Field(
        1.0,
        gt=0,
        description="How often a worker looks for runs to take: new, cancelled, expired, "
        "and those whose lease holder died or whose lease ran out.",
    )
    run_max_takeovers: int = Field(
        3,
        ge=0,
        description="Times a run is resumed after the worker executing it died; the next loss "
        "ends it `failed` (`server_error`), so a run that kills its worker cannot take down each worker in turn.",
    )
    host_id: str | None = Field(
        None,
        description="This machine's name in the leases its processes hold (`host:pid`); default: "
        "the hostname. Processes that share a name must share a pid namespace: a worker frees the "
        "lease of a pid gone on its own host at once.",
    )

    # -- limits, usage and costs -------------------------------------------------------------
    rate_limit_requests_per_minute: int = Field(
        0,
        ge=0,
        description="Default `max_requests_per_1_minute` of every project and model (run creates and "
        "tool-output submissions); 0 = no limit. The admin API sets it per project and model.",
    )
    rate_limit_tokens_per_minute: int = Field(
        0,
        ge=0,
        description="Default `max_tokens_per_1_minute` (prompt + completion tokens of runs) of every "
        "project and model; 0 = no limit.",
    )
    rate_limit_concurrent_runs: int = Field(
        0,
        ge=0,
        description="Default `max_concurrent_runs` (extension): active runs per project and model; "
        "0 = no limit.",
    )
    limits_cache_seconds: float = Field(
        1.0,
        ge=0,
        description="How long a process keeps a project's rate and spend limits before reading them "
        "again (changes made through this process apply at once).",
    )
    pricing_file: Path | None = Field(
        None,
        description="TOML price table (dollars per million input/output tokens per model) for "
        "`/v1/organization/costs` and spend limits; default: the shipped `usage/pricing.toml`.",
    )

    # -- files and retrieval ---------------------------------------------------------------
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, description="Largest file accepted by `POST /v1/files`."
    )
    ingest_max_unzipped_bytes: int = Field(
        64 * 1024 * 1024,
        description="A DOCX/PPTX (a zip) decompressing past this fails ingestion (`invalid_file`).",
    )
    ingest_max_paragraphs: int = Field(
        100_000,
        description="A DOCX/PPTX with more paragraphs than this fails ingestion (`invalid_file`).",
    )
    ingest_max_chunks: int = Field(
        4096, description="A file yielding more chunks than this fails ingestion."
    )
    ingest_parse_timeout_seconds: float = Field(
        60.0,
        description="Wall time allowed to parse one file (in a child process) before it fails.",
    )
    ingest_parse_memory_mb: int = Field(
        1024, description="Address-space limit of the process parsing one file."
    )
    max_json_body_bytes: int = Field(
        16 * 1024 * 1024,
        description="Largest request body of every other POST (a JSON body); 413 past it.",
    )
    embedding_base_url: str | None = Field(
        None,
        description="OpenAI-compatible `/v1/embeddings` endpoint; unset = bundled all-MiniLM-L6-v2 on CPU.",
    )
    embedding_api_key: str | None = Field(
        None, description="Bearer key sent to `EMBEDDING_BASE_URL`."
    )
    embedding_model: str | None = Field(
        None, description="Embedding model name for `EMBEDDING_BASE_URL`."
    )

    vector_index: Literal["auto", "exact"] = Field(
        "auto",
        description="`auto`: on PostgreSQL with pgvector, vectors are searched in SQL (HNSW); "
        "`exact`: always the in-process exact matrix.",
    )
    pgvector_ef_search: int = Field(
        200, description="pgvector `hnsw.ef_search` of the vector query (recall against speed)."
    )
    storage: Literal["local", "s3"] = Field(
        "local", description="Where file bytes live: `local` (FILES_DIR) or `s3` (S3-compatible)."
    )
    files_dir: Path | None = Field(
        None,
        description="Directory of file bytes for `local` storage (default DATA_DIR/files); "
        "point every process at one shared directory (NFS, ...) to scale out.",
    )
    s3_bucket: str | None = Field(None, description="Bucket of `s3` storage.")
    s3_prefix: str = Field("", description="Key prefix of every object in `s3` storage.")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph, R2, ...); unset = AWS."
    )
    s3_region: str | None = Field(None, description="Region of `s3` storage.")
    s3_access_key_id: str | None = Field(
        None,
        description="Access key of `s3` storage; unset = the SDK's usual chain (env, profile, role).",
    )
    s3_secret_access_key: str | None = Field(None, description="Secret key of `s3` storage.")

    # -- code interpreter ------------------------------------------------------------------
    sandbox_dir: Path | None = Field(
        None,
        description="Where scripts/install-sandbox.sh puts the sandbox's venv and kernel (root-owned, "
        "readable by the sandbox uid); default `/opt/assistantd/sandbox`, or "
        "`~/.local/share/assistantd/sandbox` for a user who is not root and has no root install there.",
    )
    sandbox_idle_seconds: int = Field(
        3600, description="A thread's code session idle this long is discarded."
    )
    sandbox_timeout_seconds: float = Field(
        60.0, description="Wall time allowed for one code execution."
    )
    sandbox_memory_mb: int = Field(1024, description="Memory limit of one code session.")
    sandbox_disk_mb: int = Field(512, description="Disk quota of one code session's /mnt/data.")
    sandbox_max_processes: int = Field(
        64, description="Process/thread limit inside one code session."
    )
    sandbox_max_output_chars: int = Field(
        20_000,
        ge=100,
        description="Characters of output (stdout, stderr, traceback) kept of one code execution.",
    )
    sandbox_max_frame_bytes: int = Field(
        1024 * 1024,
        ge=64 * 1024,
        description="Largest protocol frame header the server reads from a code session.",
    )
    sandbox_max_frames: int = Field(
        20_000, ge=10, description="Most protocol frames the server reads in one code execution."
    )
    sandbox_max_images: int = Field(
        10, ge=0, description="Most `plt.show()` figures kept of one code execution."
    )
    sandbox_max_output_files: int = Field(
        10,
        ge=0,
        description="Most files changed under /mnt/data that one code execution copies out as files.",
    )
    sandbox_max_output_file_mb: int = Field(
        32, ge=1, description="Largest file (or figure) one code execution copies out, in MB."
    )
    sandbox_output_storage_mb: int = Field(
        1024,
        ge=0,
        description="Storage per project for code interpreter output files (`assistants_output`), in MB.",
    )
    sandbox_pool_size: int = Field(2, description="Pre-warmed code sessions kept ready.")

    # -- operations ------------------------------------------------------------------------
    metrics_token: str | None = Field(
        None,
        description="Bearer token `GET /metrics` requires; unset = open (keep it off the internet).",
    )
    metrics_dir: Path | None = Field(
        None,
        description="Where each server process writes its Prometheus values (`PROMETHEUS_MULTIPROC_DIR`); "
        "default `<DATA_DIR>/metrics`.",
    )
    worker_metrics_port: int | None = Field(
        None,
        description="`assistantd worker` serves `/metrics` and `/healthz` on this port (for a worker on "
        "a host of its own); unset = none (a worker sharing the API's data dir shows in the API's `/metrics`).",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Address `ASSISTANTD_WORKER_METRICS_PORT` listens on."
    )
    shutdown_drain_seconds: float = Field(
        20.0,
        ge=0,
        description="On SIGTERM, how long runs in flight may take to finish before they are "
        "handed off (back to `queued`, for another worker); keep it below the run lease (`ASSISTANTD_RUN_LEASE_SECONDS`).",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`json`: one JSON object per log line (timestamp, level, request id, project, "
        "run id, route, status, duration).",
    )

    @model_validator(mode="after")
    def _lease_outlives_renewals(self) -> Settings:
        if self.run_lease_renew_seconds >= self.run_lease_seconds:
            raise ValueError(
                f"ASSISTANTD_RUN_LEASE_RENEW_SECONDS ({self.run_lease_renew_seconds:g}) must be shorter than "
                f"ASSISTANTD_RUN_LEASE_SECONDS ({self.run_lease_seconds:g}); a third of it or less is safe."
            )
        if self.run_lease_renew_seconds + self.run_lease_margin_seconds >= self.run_lease_seconds:
            raise ValueError(
                f"ASSISTANTD_RUN_LEASE_RENEW_SECONDS ({self.run_lease_renew_seconds:g}) plus "
                f"ASSISTANTD_RUN_LEASE_MARGIN_SECONDS ({self.run_lease_margin_seconds:g}) must be shorter "
                f"than ASSISTANTD_RUN_LEASE_SECONDS ({self.run_lease_seconds:g}): a worker stops executing "
                "a run whose lease is within the margin of running out since its last renewal."
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the setting, or the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'assistantd.db').resolve()}"

    @property
    def resolved_metrics_dir(self) -> Path:
        return self.metrics_dir or self.data_dir / "metrics"

    @property
    def static_api_keys(self) -> list[str]:
        return [k.strip() for k in (self.api_keys or "").split(",") if k.strip()]
