"""`GET /v1/models` and `GET /v1/models/{model}`, from the settings' model routing.

Frameworks and SDK helpers probe these before they start. The list holds the names the
router serves by name (`llm.router.model_catalog`); when every other name is served too
(a `"*"` entry, an upstream, the embedded default) any name retrieves as a model, since a
run with it would work. `created` is when this process first read its model settings.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from assistantd.api.deps import Caller
from assistantd.context import app_context
from assistantd.core.errors import NotFound
from assistantd.core.http import JSONResponse
from assistantd.core.ids import now_seconds
from assistantd.llm.router import ModelCatalog, ServedModel, model_catalog

router = APIRouter(prefix="/v1/models", tags=["models"])


def _catalog(request: Request) -> tuple[ModelCatalog, int]:
    ctx = app_context(request)
    if ctx.model_catalog is None:
        ctx.model_catalog = (model_catalog(ctx.settings), now_seconds())
    return ctx.model_catalog


def _wire(model: ServedModel, created: int) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": created, "owned_by": model.owned_by}


@router.get("")
async def list_models(request: Request, caller: Caller) -> JSONResponse:
    catalog, created = _catalog(request)
    return JSONResponse({"object": "list", "data": [_wire(m, created) for m in catalog.models]})


@router.get("/{model:path}")
async def retrieve_model(model: str, request: Request, caller: Caller) -> JSONResponse:
    catalog, created = _catalog(request)
    found = catalog.find(model)
    if found is None:
        raise NotFound(f"The model '{model}' does not exist", param="model", code="model_not_found")
    return JSONResponse(_wire(found, created))
