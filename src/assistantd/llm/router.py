"""Which backend serves which requested model, from the settings.

Three setups, the first that applies wins:

1. `llm_base_url` set: every model goes to that OpenAI-compatible endpoint, as `llm_model`
   or, when unset, under the name the client asked for.
2. `llm_models_file` set: a TOML file maps model names (exact, or `"*"` for the rest) to
   backends; see `ModelsFile` and the README.
3. Neither: every model is the embedded llama.cpp model (one shared instance).

Backends are created on first use; entries with the same connection (same base URL and
key, or same GGUF file) share one backend, so one connection pool or one loaded model.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.settings import Settings
from .base import ModelBackend, ModelInvalidPrompt, ModelRouter
from .openai_compat import OpenAICompatBackend

DEFAULT_MODEL_KEY = "*"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenAIModelEntry(_Entry):
    """`backend = "openai"`: an OpenAI-compatible chat-completions endpoint."""

    backend: Literal["openai"]
    base_url: str
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    api_key: str | None = Field(None, description="The key itself; prefer api_key_env.")
    model: str | None = Field(None, description="Name sent upstream; default: the requested name.")
    timeout: float | None = None
    max_retries: int | None = None
    context_window: int | None = None
    vision: bool | None = Field(
        None,
        description="The model takes images; false = text placeholders. Default: `llm_vision`.",
    )


class LlamaModelEntry(_Entry):
    """`backend = "llama"`: a GGUF file run in-process by llama.cpp."""

    backend: Literal["llama"]
    gguf_path: Path | None = Field(
        None, description="Default: `llm_gguf_path`, else the bundled model."
    )
    n_ctx: int | None = None
    n_threads: int | None = None
    max_response_tokens: int | None = Field(None, ge=1)


ModelEntry = Annotated[OpenAIModelEntry | LlamaModelEntry, Field(discriminator="backend")]


class ModelsFile(BaseModel):
    """The `llm_models_file` TOML: `[models."<name>"]` tables, `"*"` matching any other name."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelEntry]


class ModelsFileError(ValueError):
    """The models file is missing, not TOML, or does not describe valid backends."""


def load_models_file(path: Path) -> ModelsFile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelsFileError(f"cannot read the models file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelsFileError(f"the models file {path} is not valid TOML: {exc}") from exc
    try:
        parsed = ModelsFile.model_validate(data)
    except ValidationError as exc:
        raise ModelsFileError(f"the models file {path} is invalid:\n{exc}") from exc
    if not parsed.models:
        raise ModelsFileError(f'the models file {path} has no [models."<name>"] entries')
    return parsed


# A route: how to build the backend (and the key under which equal backends are shared),
# and the model name to send it (None = the requested name).
_BackendFactory = Callable[[], ModelBackend]


@dataclass(frozen=True, slots=True)
class _Route:
    backend_key: Hashable
    factory: _BackendFactory
    model: str | None


class ConfiguredModelRouter(ModelRouter):
    """Routes model names to lazily-built, shared backends."""

    def __init__(self, routes: Mapping[str, _Route], *, source: str) -> None:
        self._routes = dict(routes)
        self._source = source
        self._backends: dict[Hashable, ModelBackend] = {}

    def resolve(self, requested_model: str) -> tuple[ModelBackend, str]:
        route = self._routes.get(requested_model) or self._routes.get(DEFAULT_MODEL_KEY)
        if route is None:
            served = ", ".join(sorted(self._routes))
            raise ModelInvalidPrompt(
                f"model {requested_model!r} is not served here; {self._source} lists: {served} "
                f'(add a [models."{requested_model}"] or [models."*"] entry to serve it)'
            )
        backend = self._backends.get(route.backend_key)
        if backend is None:
            backend = self._backends[route.backend_key] = route.factory()
        return backend, route.model or requested_model

    async def aclose(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.aclose()


def _openai_route(
    base_url: str,
    api_key: str | None,
    model: str | None,
    timeout: float,
    max_retries: int,
    context_window: int | None = None,
    vision: bool = True,
) -> _Route:
    def build() -> ModelBackend:
        return OpenAICompatBackend(
            base_url,
            api_key,
            timeout,
            max_retries,
            context_window=context_window,
            supports_images=vision,
        )

    key = ("openai", base_url.rstrip("/"), api_key, timeout, max_retries, context_window, vision)
    return _Route(backend_key=key, factory=build, model=model)


def _llama_route(
    gguf_path: Path | None, n_ctx: int, n_threads: int | None, max_response_tokens: int
) -> _Route:
    def build() -> ModelBackend:
        # Imported here: llama-cpp-python is an optional extra, loaded only when used.
        from .llama_cpp import LlamaCppBackend

        return LlamaCppBackend(gguf_path, n_ctx, n_threads, max_response_tokens=max_response_tokens)

    resolved = gguf_path.expanduser().resolve() if gguf_path else None
    key = ("llama", resolved, n_ctx, n_threads, max_response_tokens)
    return _Route(backend_key=key, factory=build, model=None)


def _route_for_entry(
    name: str, entry: OpenAIModelEntry | LlamaModelEntry, settings: Settings, path: Path
) -> _Route:
    if isinstance(entry, LlamaModelEntry):
        return _llama_route(
            entry.gguf_path or settings.llm_gguf_path,
            entry.n_ctx or settings.llm_context_size,
            entry.n_threads or settings.llm_threads,
            entry.max_response_tokens or settings.llm_max_response_tokens,
        )
    api_key = entry.api_key
    if entry.api_key_env:
        api_key = os.environ.get(entry.api_key_env)
        if not api_key:
            raise ModelsFileError(
                f'models file {path}: [models."{name}"] reads its API key from '
                f"${entry.api_key_env}, which is not set"
            )
    return _openai_route(
        entry.base_url,
        api_key,
        entry.model,
        entry.timeout if entry.timeout is not None else settings.llm_timeout_seconds,
        entry.max_retries if entry.max_retries is not None else settings.llm_max_retries,
        entry.context_window or settings.llm_context_window,
        entry.vision if entry.vision is not None else settings.llm_vision,
    )


def build_model_router(settings: Settings) -> ModelRouter:
    """The router the settings describe (see the module docstring). Raises `ModelsFileError`."""
    if settings.llm_base_url:
        route = _openai_route(
            settings.llm_base_url,
            settings.llm_api_key,
            settings.llm_model,
            settings.llm_timeout_seconds,
            settings.llm_max_retries,
            settings.llm_context_window,
            settings.llm_vision,
        )
        return ConfiguredModelRouter(
            {DEFAULT_MODEL_KEY: route}, source=f"ASSISTANTD_LLM_BASE_URL ({settings.llm_base_url})"
        )
    if settings.llm_models_file:
        path = settings.llm_models_file
        models = load_models_file(path).models
        routes = {
            name: _route_for_entry(name, entry, settings, path) for name, entry in models.items()
        }
        return ConfiguredModelRouter(routes, source=f"the models file {path}")
    route = _llama_route(
        settings.llm_gguf_path,
        settings.llm_context_size,
        settings.llm_threads,
        settings.llm_max_response_tokens,
    )
    return ConfiguredModelRouter({DEFAULT_MODEL_KEY: route}, source="the embedded model")


#: The id `/v1/models` gives the bundled GGUF (a `gguf_path` is named by its file name).
BUNDLED_MODEL_ID = "gemma-3-270m"
_LOCAL, _UPSTREAM = "assistantd", "upstream"


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One entry of `GET /v1/models`: a name the router serves, and who runs it
    (`assistantd` for llama.cpp in-process, `upstream` for an OpenAI-compatible endpoint)."""

    id: str
    owned_by: str


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    """The model names the settings route, for `GET /v1/models`.

    `other_names_owner`: set when every other name is served too (a `"*"` entry, an
    upstream, or the embedded default), so that any name retrieves as a model.
    """

    models: tuple[ServedModel, ...]
    other_names_owner: str | None

    def find(self, model_id: str) -> ServedModel | None:
        listed = next((m for m in self.models if m.id == model_id), None)
        if listed is None and self.other_names_owner is not None:
            return ServedModel(model_id, self.other_names_owner)
        return listed


def _gguf_model_id(gguf_path: Path | None) -> str:
    return gguf_path.stem if gguf_path else BUNDLED_MODEL_ID


def model_catalog(settings: Settings) -> ModelCatalog:
    """What `build_model_router` routes, by name, with the same precedence: the upstream's
    `llm_model`, else the models file's names (its `"*"` entry as the model it runs, when
    that has a name), else the embedded default. Raises `ModelsFileError`."""
    if settings.llm_base_url:
        listed = (ServedModel(settings.llm_model, _UPSTREAM),) if settings.llm_model else ()
        return ModelCatalog(listed, _UPSTREAM)
    if settings.llm_models_file:
        entries = load_models_file(settings.llm_models_file).models
        found: dict[str, ServedModel] = {}
        other: str | None = None
        for name, entry in entries.items():
            owner = _LOCAL if isinstance(entry, LlamaModelEntry) else _UPSTREAM
            model_id: str | None = name
            if name == DEFAULT_MODEL_KEY:
                other = owner
                model_id = (
                    _gguf_model_id(entry.gguf_path or settings.llm_gguf_path)
                    if isinstance(entry, LlamaModelEntry)
                    else entry.model
                )
            if model_id is not None:
                found.setdefault(model_id, ServedModel(model_id, owner))
        return ModelCatalog(tuple(found.values()), other)
    return ModelCatalog((ServedModel(_gguf_model_id(settings.llm_gguf_path), _LOCAL),), _LOCAL)
