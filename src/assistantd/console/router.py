"""Serves the console's static files at `/console` and redirects `/` there."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"

#: Scripts and styles only from the server itself (no inline script, no CDN); images from
#: the server or blob: URLs (file content fetched with the key). `connect-src 'self'`: the
#: page talks to this server only, so a key typed into it goes nowhere else.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class ConsoleFiles(StaticFiles):
    """StaticFiles with the console's security headers; revalidated on every load, so an
    upgraded server never runs an old module beside a new one."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"
        return response


router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


def install_console(app: FastAPI) -> None:
    """Mount the console (`/console/`, `/console` redirects) and the `/` redirect."""
    app.include_router(router)
    app.mount("/console", ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
