"""The console's FastAPI application: shared state, security middleware, error pages, and the two routers
(:mod:`pipeline.web.pages` for HTML, :mod:`pipeline.web.api` for JSON).

:func:`create_app` takes a :class:`Console` (the read-only store, the runner's :class:`LiveFrames` when a run
serves it, the photo search, redacted camera sources, the token). Errors never show a traceback: HTTP
errors become a short page (or ``{"detail": ...}`` under ``/api``), anything else a generic 500 with the
details in the server log only.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.store import IdentityStore
from pipeline.web.live import LiveFrames
from pipeline.web.search import PhotoSearch

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


@dataclass
class Console:
    """What the app serves. ``cameras``: cam id -> source with credentials redacted (from the config)."""

    store: IdentityStore
    search: PhotoSearch
    live: LiveFrames | None = None
    cameras: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    max_upload_bytes: int = 8 * 1024 * 1024
    stopping: threading.Event = field(default_factory=threading.Event)


def fmt_time(t: float | None) -> str:
    """Run-clock seconds as '12.3 s'; wall-clock times (live runs) as 'YYYY-MM-DD HH:MM:SS'."""
    import time

    if t is None:
        return "-"
    if t > 1e9:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    return f"{t:.1f} s"


def create_app(console: Console):
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from pipeline.web import api, pages
    from pipeline.web.security import COOKIE, token_ok

    app = FastAPI(title="reid-pipeline console", version="1",
                  description="Identities, cameras, events and photo search of one identity store.",
                  docs_url=None, redoc_url=None)  # the API page is ours (FastAPI's loads Swagger UI from a CDN)
    app.state.console = console
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = fmt_time
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        query_token = request.query_params.get("token")
        if not token_ok(console.token, request.headers.get("authorization"), request.cookies.get(COOKIE),
                        query_token):
            msg = "authentication required: open the console with ?token=<token> or send Authorization: Bearer"
            if request.url.path.startswith("/api"):
                return JSONResponse({"detail": msg}, status_code=401)
            return HTMLResponse(f"<!doctype html><title>401</title><p>{msg}</p>", status_code=401)
        response = await call_next(request)
        if console.token and query_token:
            response.set_cookie(COOKIE, console.token, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def _error(request: Request, status: int, detail: str):
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": detail}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"status": status, "detail": detail},
                                          status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception):
        log.exception("console: %s %s failed", request.method, request.url.path)
        return _error(request, 500, "internal error (the details are in the server's log)")

    app.include_router(pages.router)
    app.include_router(api.router, prefix="/api")
    return app
