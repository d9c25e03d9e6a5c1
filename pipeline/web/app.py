"""The console's FastAPI application: shared state, security middleware, error pages, and the two routers
(:mod:`pipeline.web.pages` for HTML, :mod:`pipeline.web.api` for JSON).

:func:`create_app` takes a :class:`Console` (the read-only store, the runner's :class:`LiveFrames` when a run
serves it, the photo search, redacted camera sources, the token). Errors never show a traceback: HTTP
errors become a short page (or ``{"detail": ...}`` under ``/api``), anything else a generic 500 with the
details in the server log only.
"""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.store import IdentityStore
from pipeline.web.live import LiveFrames
from pipeline.web.search import PhotoSearch, mib

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
    #: the address the server binds; with no token only requests whose Host names it, a loopback name or one of
    #: ``allowed_hosts`` are answered (DNS rebinding protection)
    bind_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    #: (st_dev, st_ino) of the store file when opened: /api/health reports a store deleted or replaced since
    store_id: tuple[int, int] | None = None


#: what a multipart upload may carry beyond the picture itself (boundaries, part headers, the box and top fields)
FORM_OVERHEAD = 64 * 1024
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class BodyLimit:
    """ASGI middleware: a request body larger than ``limit`` bytes is refused with 413 (``message``) as soon as
    the count passes it, while it streams in (chunked uploads have no Content-Length to check up front), so
    nothing beyond ``limit`` is ever read or spooled to disk."""

    def __init__(self, app, limit: int, message: str) -> None:
        self.app, self.limit, self.message = app, limit, message

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.exceptions import HTTPException

        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited, send)


INTERNAL = "internal error (the details are in the server's log)"


def validation_line(errors) -> str:
    """FastAPI's validation errors as one line for an HTML page: 'global_id: must be a whole number (got 'abc')'."""
    out = []
    for e in list(errors)[:3]:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("path", "query", "body", "header", "cookie")]
        name = ".".join(loc) or "request"
        kind = e.get("type", "")
        if kind.startswith("int_"):
            msg = "must be a whole number" if kind == "int_parsing" or kind == "int_from_float" else e.get("msg", "")
        elif kind == "missing":
            msg = "is missing"
        else:
            msg = str(e.get("msg", "is not valid")).lower()
        got = e.get("input")
        shown = f" (got {str(got)[:40]!r})" if isinstance(got, (str, int, float)) and kind != "missing" else ""
        out.append(f"{name}: {msg}{shown}")
    return "; ".join(out) or "the request is not valid"


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
    from fastapi.exception_handlers import request_validation_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from pipeline.web import api, pages
    from pipeline.web.security import COOKIE, host_allowed, same_origin, token_ok, trusted_hosts

    app = FastAPI(title="reid-pipeline console", version="1",
                  description="Identities, cameras, events and photo search of one identity store.",
                  docs_url=None, redoc_url=None)  # the API page is ours (FastAPI's loads Swagger UI from a CDN)
    app.state.console = console
    if console.store_id is None:
        try:
            st = console.store.path.stat()
            console.store_id = (st.st_dev, st.st_ino)
        except OSError:
            pass
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = fmt_time
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    limit = console.max_upload_bytes + FORM_OVERHEAD
    too_large = f"the upload is larger than the limit of {mib(console.max_upload_bytes)} per picture"
    app.add_middleware(BodyLimit, limit=limit, message=too_large)  # inside guard: its 413 is an HTTP error page
    hosts = trusted_hosts(console.bind_host, console.allowed_hosts)
    extra_origins = frozenset(h.strip().strip("[]").lower() for h in console.allowed_hosts)

    def _refuse(request: Request, status: int, msg: str):
        if request.url.path.startswith("/api"):
            response = JSONResponse({"detail": msg}, status_code=status)
        else:
            response = HTMLResponse(f"<!doctype html><title>{status}</title><p>{html.escape(msg)}</p>",
                                    status_code=status)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return _secure(response)

    def _secure(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # own form posts keep their Origin (see the POST check)
        return response

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = request.headers.get("host")
        if not console.token and not host_allowed(host, hosts):
            # DNS rebinding: a page of attacker.example re-pointed at 127.0.0.1 sends Host: attacker.example
            shown = (host or "")[:100]
            return _refuse(request, 400, f"Host {shown!r} is not an address of this console; open it as"
                                         f" http://127.0.0.1:<port> or http://localhost:<port>")
        query_token = request.query_params.get("token")
        if not token_ok(console.token, request.headers.get("authorization"), request.cookies.get(COOKIE),
                        query_token):
            msg = "authentication required: open the console with ?token=<token> or send Authorization: Bearer"
            return _refuse(request, 401, msg)
        if request.method in UNSAFE_METHODS:
            origin = request.headers.get("origin")
            source = origin if origin is not None else request.headers.get("referer")
            if source is not None and not same_origin(source, host, extra_origins):
                return _refuse(request, 403, f"cross-site request refused: {source[:100]!r} is not the origin of"
                                             " this console (post from the console's own page, or without an Origin)")
            length = request.headers.get("content-length")
            if length is not None and length.strip().isdigit() and int(length) > limit:
                return _refuse(request, 413, f"the upload is {mib(int(length))}; the limit is"
                                             f" {mib(console.max_upload_bytes)} per picture")
        try:
            response = await call_next(request)
        except Exception:  # logged once here (a 500 re-raised to uvicorn would print a second traceback)
            log.exception("console: %s %s failed", request.method, request.url.path)
            response = _error(request, 500, INTERNAL)
        if console.token and query_token:
            response.set_cookie(COOKIE, console.token, httponly=True, samesite="strict")
        return _secure(response)

    def _error(request: Request, status: int, detail: str):
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": detail}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"status": status, "detail": detail},
                                          status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        if request.url.path.startswith("/api"):  # the API keeps FastAPI's structured 422
            return await request_validation_exception_handler(request, exc)
        detail = validation_line(exc.errors())
        if request.url.path.rstrip("/") == "/search":  # the search form shows it above the form
            return templates.TemplateResponse(request, "search.html", {"page": "search", "result": None,
                                              "error": detail, "live": console.live is not None}, status_code=422)
        return _error(request, 422, detail)

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception):
        log.exception("console: %s %s failed", request.method, request.url.path)
        return _error(request, 500, INTERNAL)

    app.include_router(pages.router)
    app.include_router(api.router, prefix="/api")
    return app
