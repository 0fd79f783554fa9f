"""Which backend serves which model, per the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistantd.core.settings import Settings
from assistantd.llm.base import ModelInvalidPrompt
from assistantd.llm.llama_cpp import LlamaCppBackend
from assistantd.llm.openai_compat import OpenAICompatBackend
from assistantd.llm.router import ModelsFileError, build_model_router


def settings(**values: object) -> Settings:
    # _env_file=None: a developer's .env must not leak into these tests.
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_base_url_sends_every_model_upstream() -> None:
    router = build_model_router(settings(llm_base_url="http://127.0.0.1:9/v1", llm_api_key="k"))
    try:
        backend, model = router.resolve("gpt-4o")
        other, other_model = router.resolve("anything")
        assert isinstance(backend, OpenAICompatBackend)
        assert backend.base_url == "http://127.0.0.1:9/v1"
        assert other is backend  # one backend, one connection pool
        assert (model, other_model) == ("gpt-4o", "anything")
    finally:
        await router.aclose()


async def test_llm_model_overrides_the_requested_name() -> None:
    router = build_model_router(settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="qwen2.5"))
    try:
        assert router.resolve("gpt-4o")[1] == "qwen2.5"
    finally:
        await router.aclose()


async def test_default_is_one_shared_embedded_model() -> None:
    router = build_model_router(settings(llm_context_size=4096, llm_threads=1))
    try:
        backend, model = router.resolve("gpt-4o")
        assert isinstance(backend, LlamaCppBackend)
        assert backend.context_window == 4096 and backend.n_threads == 1
        assert router.resolve("gpt-4o-mini")[0] is backend
        assert model == "gpt-4o"
    finally:
        await router.aclose()


MODELS_TOML = """
[models."gpt-4o"]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "ASSISTANTD_TEST_UPSTREAM_KEY"
model = "gpt-4o-2024-08-06"
context_window = 128000

[models."gpt-4o-mini"]
backend = "openai"
base_url = "http://127.0.0.1:9/v1/"
api_key_env = "ASSISTANTD_TEST_UPSTREAM_KEY"

[models."*"]
backend = "llama"
n_ctx = 2048
"""


async def test_models_file_routes_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANTD_TEST_UPSTREAM_KEY", "sk-secret")
    path = tmp_path / "models.toml"
    path.write_text(MODELS_TOML)
    router = build_model_router(settings(llm_models_file=path, llm_context_window=32000))
    try:
        big, big_name = router.resolve("gpt-4o")
        mini, mini_name = router.resolve("gpt-4o-mini")
        local, local_name = router.resolve("my-local-model")
        assert isinstance(big, OpenAICompatBackend) and big.context_window == 128000
        assert big_name == "gpt-4o-2024-08-06"
        assert isinstance(mini, OpenAICompatBackend) and mini.context_window == 32000  # the setting
        assert mini_name == "gpt-4o-mini"
        assert isinstance(local, LlamaCppBackend) and local.context_window == 2048
        assert local_name == "my-local-model"
        assert router.resolve("another-local")[0] is local
    finally:
        await router.aclose()


async def test_models_file_without_default_rejects_unknown_models(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models."local"]\nbackend = "llama"\n')
    router = build_model_router(settings(llm_models_file=path))
    try:
        with pytest.raises(ModelInvalidPrompt, match=r"model 'gpt-4o' is not served here.*local"):
            router.resolve("gpt-4o")
    finally:
        await router.aclose()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not toml [", "not valid TOML"),
        ('[models."x"]\nbackend = "mystery"\n', "invalid"),
        ('[models."x"]\nbackend = "openai"\n', "base_url"),
        ('[models."x"]\nbackend = "llama"\ngguf = "typo"\n', "gguf"),
        (
            '[models."x"]\nbackend = "openai"\nbase_url = "http://h/v1"\napi_key_env = "ASSISTANTD_TEST_UNSET_KEY"\n',
            r"\$ASSISTANTD_TEST_UNSET_KEY, which is not set",
        ),
    ],
)
def test_bad_models_file_fails_at_startup(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(content)
    with pytest.raises(ModelsFileError, match=message):
        build_model_router(settings(llm_models_file=path))
