"""`GET /v1/models` and `GET /v1/models/{model}` over the official SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from assistantd.core.settings import Settings
from assistantd.llm.router import BUNDLED_MODEL_ID, ModelCatalog, ServedModel, model_catalog
from assistantd.testing.server import Server, make_settings, start_server

MODELS_TOML = """
[models."gpt-4o"]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "ASSISTANTD_TEST_UPSTREAM_KEY"
model = "gpt-4o-2024-08-06"

[models."local-qwen"]
backend = "llama"
gguf_path = "/models/qwen2.5-3b-instruct-q4_k_m.gguf"
"""


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose models file names two models and has no `"*"` entry."""
    data_dir = tmp_path_factory.mktemp("models-api")
    path = data_dir / "models.toml"
    path.write_text(MODELS_TOML)
    srv, stop = start_server(make_settings(data_dir, llm_models_file=path, sandbox_pool_size=0))
    try:
        yield srv
    finally:
        stop()


def test_list_and_retrieve_the_models_file_names(file_server: Server) -> None:
    with file_server.client("alpha") as client:
        page = client.models.list()
        assert [(m.id, m.object, m.owned_by) for m in page.data] == [
            ("gpt-4o", "model", "upstream"),
            ("local-qwen", "model", "assistantd"),
        ]
        assert all(isinstance(m.created, int) and m.created > 0 for m in page.data)
        got = client.models.retrieve("local-qwen")
        assert got == page.data[1]


def test_unknown_model_is_404_in_openais_words(file_server: Server) -> None:
    with file_server.client("beta") as client, pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-3.5-turbo")
    assert e.value.body == {
        "message": "The model 'gpt-3.5-turbo' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_raw_wire_and_authentication(file_server: Server) -> None:
    base = file_server.base_url
    r = httpx.get(
        f"{base}/models", headers={"Authorization": f"Bearer {file_server.keys['alpha']}"}
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"object", "data"} and body["object"] == "list"
    assert set(body["data"][0]) == {"id", "object", "created", "owned_by"}
    for path in ("/models", "/models/gpt-4o"):
        assert httpx.get(f"{base}{path}").status_code == 401
        assert (
            httpx.get(f"{base}{path}", headers={"Authorization": "Bearer sk-wrong"}).status_code
            == 401
        )


def test_embedded_default_serves_every_name(server: Server) -> None:
    """No models file, no upstream: the bundled model is listed, and any name is served."""
    with server.client("alpha") as client:
        assert [(m.id, m.owned_by) for m in client.models.list().data] == [
            (BUNDLED_MODEL_ID, "assistantd")
        ]
        got = client.models.retrieve("gpt-4o")
        assert (got.id, got.object, got.owned_by) == ("gpt-4o", "model", "assistantd")
        assert client.models.retrieve("Qwen/Qwen2.5-7B-Instruct").id == "Qwen/Qwen2.5-7B-Instruct"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_catalog_follows_the_routing_precedence(tmp_path: Path) -> None:
    up = ServedModel("qwen2.5", "upstream")
    assert model_catalog(
        settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="qwen2.5")
    ) == ModelCatalog((up,), "upstream")
    # An upstream without llm_model takes any name: nothing to list by name.
    bare = model_catalog(settings(llm_base_url="http://127.0.0.1:9/v1"))
    assert bare.models == () and bare.find("anything") == ServedModel("anything", "upstream")
    path = tmp_path / "models.toml"
    path.write_text(MODELS_TOML + '[models."*"]\nbackend = "llama"\n')
    catalog = model_catalog(settings(llm_models_file=path, llm_gguf_path=tmp_path / "mine.gguf"))
    assert [m.id for m in catalog.models] == ["gpt-4o", "local-qwen", "mine"]
    assert catalog.find("other") == ServedModel("other", "assistantd")
    # The upstream wins over the file, as in the router.
    both = model_catalog(settings(llm_models_file=path, llm_base_url="http://h/v1", llm_model="x"))
    assert [m.id for m in both.models] == ["x"]
    # A "*" entry sent upstream under one name lists that name.
    path.write_text(
        '[models."*"]\nbackend = "openai"\nbase_url = "http://h/v1"\nmodel = "llama3"\n'
    )
    assert model_catalog(settings(llm_models_file=path)) == ModelCatalog(
        (ServedModel("llama3", "upstream"),), "upstream"
    )
    assert model_catalog(settings()).models == (ServedModel(BUNDLED_MODEL_ID, "assistantd"),)
