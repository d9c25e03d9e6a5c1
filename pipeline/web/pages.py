"""The console's HTML pages (server-rendered Jinja2; ``static/console.js`` adds live updates, drag and drop
and box drawing). Each page reads the same functions as the JSON API."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from pipeline.web import data
from pipeline.web.api import GlobalId, camera_list, console, read_upload, search_with_crop
from pipeline.web.timeline import timeline_svg

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    con = console(request)
    context.setdefault("live", con.live is not None)
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/cameras", status_code=307)


@router.get("/cameras")
def cameras_page(request: Request) -> HTMLResponse:
    con = console(request)
    return render(request, "cameras.html", page="cameras", cameras=camera_list(con),
                  warnings=con.live.warnings() if con.live else [])


@router.get("/identities")
def identities_page(request: Request) -> HTMLResponse:
    return render(request, "identities.html", page="identities", identities=data.gallery(console(request).store))


@router.get("/identities/{global_id}")
def identity_page(request: Request, global_id: GlobalId) -> HTMLResponse:
    store = console(request).store
    detail = data.identity_detail(store, global_id)
    if detail is None:
        alias = store.alias_of(global_id)
        if alias is not None:  # merged into another identity: show that one
            return RedirectResponse(f"/identities/{int(alias['current_id'])}", status_code=303)
        raise HTTPException(404, f"no identity {global_id} in this store")
    return render(request, "identity.html", page="identities", d=detail, svg=Markup(timeline_svg(detail)))


@router.get("/search")
def search_page(request: Request) -> HTMLResponse:
    return render(request, "search.html", page="search", result=None, error=None)


@router.post("/search")
async def search_submit(request: Request, image: UploadFile = File(...), box: str | None = Form(None),
                        top: int = Form(5, ge=1, le=50)) -> HTMLResponse:
    con = console(request)
    blob = await read_upload(image, con.max_upload_bytes)
    try:
        result, crop = await asyncio.to_thread(search_with_crop, con, blob, box, top)
    except HTTPException as exc:
        return render(request, "search.html", status=exc.status_code, page="search", result=None, error=exc.detail)
    return render(request, "search.html", page="search", result=result, error=None, box=box or "",
                  probe=probe_data_url(crop))


def probe_data_url(crop) -> str:
    """The searched picture (its box's pixels), as a small JPEG data: URL to show beside the results."""
    import base64

    import cv2

    from pipeline.runner.thumbnails import shrink

    ok, buf = cv2.imencode(".jpg", shrink(crop, 160), [int(cv2.IMWRITE_JPEG_QUALITY), 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


@router.get("/events")
def events_page(request: Request) -> HTMLResponse:
    return render(request, "events.html", page="events", events=data.events_after(console(request).store, 0, 50))


@router.get("/api-docs")
def api_page(request: Request) -> HTMLResponse:
    spec = request.app.openapi()
    routes = [{"method": m.upper(), "path": path, "summary": op.get("summary", ""),
               "params": [p["name"] for p in op.get("parameters", [])]}
              for path, ops in spec["paths"].items() for m, op in ops.items()]
    return render(request, "api.html", page="api", routes=routes, title=spec["info"]["title"])
