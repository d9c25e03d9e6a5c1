"""The console's JSON API (documented by ``/openapi.json`` and the ``/api-docs`` page).

Every route reads through :class:`pipeline.web.app.Console`; nothing here writes to the store. Camera
sources are only ever shown redacted (:func:`pipeline.sources.redact.redact_uri`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from pipeline.core.errors import ReidPipelineError
from pipeline.sources.redact import redact_uri
from pipeline.web import data
from pipeline.web.search import UploadError, decode_image, parse_box, probe_crop
from pipeline.web.security import INT64_MAX, INT64_MIN
from pipeline.web.timeline import timeline_svg

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}
#: ids as SQLite stores them (signed 64-bit): anything outside is a 422, never a query that overflows
GlobalId = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX, description="an identity's global id")]
TrackletId = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX, description="a tracklet id")]
EventId = Annotated[int, Query(ge=0, le=INT64_MAX)]


def console(request: Request):
    return request.app.state.console


def camera_list(con) -> list[dict]:
    """Known cameras (config, live run, store) with live health when a run serves the console."""
    stored = {c["cam_id"]: c for c in data.cameras(con.store)}
    ids = list(dict.fromkeys([*con.cameras, *(con.live.cam_ids if con.live else []), *stored]))
    health = con.live.health() if con.live else {}
    status = con.live.status() if con.live else {}
    out = []
    for cid in ids:
        h = health.get(cid)
        row = {"cam_id": cid, "source": redact_uri(con.cameras.get(cid, "")) or None,
               "live": con.live is not None and cid in con.live.cam_ids,
               "stored": stored.get(cid, {"tracklets": 0, "identities": 0, "last_seen": None}),
               "health": None, "frame": status.get(cid)}
        if h is not None:
            hd = dataclasses.asdict(h)
            hd["uri"] = redact_uri(hd.get("uri") or "")
            row["health"] = hd
        out.append(row)
    return out


def store_state(con) -> str | None:
    """None while the store file the console opened is still there; else one line saying what happened to it."""
    path = con.store.path
    try:
        st = os.stat(path)
    except OSError:
        return f"the identity store {path} is gone (deleted or moved while the console runs)"
    opened = getattr(con, "store_id", None)
    if opened is not None and (st.st_dev, st.st_ino) != opened:
        return f"the identity store {path} was replaced by another file; restart the console to read it"
    return None


@router.get("/health", summary="Liveness: whether a running pipeline feeds this console and its store is there")
def health(request: Request) -> dict:
    con = console(request)
    problem = store_state(con)
    if problem is not None:
        return JSONResponse({"status": "error", "detail": problem, "live": con.live is not None,
                             "store": con.store.path.name}, status_code=503, headers=NO_STORE)
    return {"status": "ok", "live": con.live is not None, "store": con.store.path.name}


@router.get("/cameras", summary="Cameras with fps, drops, reconnects and frame age (live runs)")
def cameras(request: Request) -> list[dict]:
    return camera_list(console(request))


@router.get("/warnings", summary="The running pipeline's warnings an operator should act on (e.g. an overlap to declare)")
def warnings(request: Request) -> dict:
    con = console(request)
    return {"live": con.live is not None, "warnings": con.live.warnings() if con.live else []}


@router.get("/cameras/{cam_id}/frame.jpg", summary="The latest annotated frame of a camera (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 204: {}})
async def camera_frame(request: Request, cam_id: str,
                       after: int | None = Query(None, ge=INT64_MIN, le=INT64_MAX,
                                                 description="wait (up to wait_s) for a newer frame than this"),
                       wait_s: float = Query(2.0, ge=0.0, le=10.0)) -> Response:
    con = console(request)
    if con.live is None or cam_id not in con.live.cam_ids:
        raise HTTPException(404, f"no live camera {cam_id!r} (serve without a running pipeline has no frames)")
    deadline = time.monotonic() + wait_s
    while (after is not None and con.live.frame_index(cam_id) in (after, None) and time.monotonic() < deadline
           and not con.stopping.is_set()):
        await asyncio.sleep(0.04)  # long poll: one request per new frame instead of polling at a fixed rate
    got = con.live.jpeg(cam_id)
    if got is None:
        return Response(status_code=204, headers=NO_STORE)
    index, jpeg = got
    return Response(jpeg, media_type="image/jpeg", headers={**NO_STORE, "X-Frame-Index": str(index)})


@router.get("/identities", summary="Identities, most recently seen first: first/last seen, cameras, tracklet count")
def identities(request: Request, limit: int | None = Query(None, ge=1, le=100_000,
                                                          description="at most this many (default: all)"),
               offset: int = Query(0, ge=0, le=2**31, description="skip this many first (paging)")) -> list[dict]:
    rows = data.gallery(console(request).store)
    return rows[offset:] if limit is None else rows[offset:offset + limit]


def _detail(con, gid: int) -> dict | None:
    return data.identity_detail(con.store, gid)


def _follow_alias(request: Request, con, gid: int, missing: str | None = None) -> RedirectResponse:
    """An identity merged into another (``identity_aliases``): a 307 to the same URL under the surviving id, so
    links published before the merge (MQTT ``thumbnail_url``) keep working; 404 (``missing``, else 'no identity
    N in this store') for an id that is no alias."""
    alias = con.store.alias_of(gid)
    if alias is None:
        raise HTTPException(404, missing or f"no identity {gid} in this store")
    current = int(alias["current_id"])
    path = request.url.path
    prefix = f"/api/identities/{gid}"
    target = f"/api/identities/{current}" + (path[len(prefix):] if path.startswith(prefix) else "")
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(target, status_code=307, headers={"X-Merged-Into": str(current)})


@router.get("/identities/{global_id}", summary="One identity: route, transit times, tracklets, merges/splits"
            " (an id merged into another answers 307 to the surviving one)")
def identity(request: Request, global_id: GlobalId):
    con = console(request)
    d = _detail(con, global_id)
    return d if d is not None else _follow_alias(request, con, global_id)


@router.get("/identities/{global_id}/timeline.svg", summary="An identity's timeline across cameras (SVG)",
            response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
def identity_timeline(request: Request, global_id: GlobalId) -> Response:
    con = console(request)
    d = _detail(con, global_id)
    if d is None:
        return _follow_alias(request, con, global_id)
    return Response(timeline_svg(d), media_type="image/svg+xml")


def _jpeg(blob: bytes, token: bool) -> Response:
    # a token-protected thumbnail must not be kept by a shared cache
    return Response(blob, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=10" if token
                                                            else "max-age=10"})


@router.get("/identities/{global_id}/thumbnail.jpg", summary="An identity's thumbnail (JPEG; an id merged into"
            " another answers 307 to the surviving one)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def identity_thumbnail(request: Request, global_id: GlobalId) -> Response:
    con = console(request)
    blob = data.identity_thumbnail(con.store, global_id)
    if blob is None:
        return _follow_alias(request, con, global_id, f"no thumbnail for identity {global_id}")
    return _jpeg(blob, bool(con.token))


@router.get("/tracklets/{tracklet_id}/thumbnail.jpg", summary="A tracklet's thumbnail (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def tracklet_thumbnail(request: Request, tracklet_id: TrackletId) -> Response:
    con = console(request)
    blob = data.tracklet_thumbnail(con.store, tracklet_id)
    if blob is None:
        raise HTTPException(404, f"no thumbnail for tracklet {tracklet_id}")
    return _jpeg(blob, bool(con.token))


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of an upload (enough to tell that it is too large)."""
    return await upload.read(limit + 1)


def search_with_crop(con, blob: bytes, box: str | None, top: int):
    """Decode, crop, embed and rank -> (result, the probe crop); UploadError / ReidPipelineError become HTTP
    errors. The upload is decoded once (header-checked first, :func:`pipeline.web.search.decode_image`)."""
    try:
        crop = probe_crop(decode_image(blob, con.max_upload_bytes), parse_box(box))
        return con.search.search(con.store, crop, top), crop
    except UploadError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except ReidPipelineError as exc:
        raise HTTPException(409, str(exc)) from None


def run_search(con, blob: bytes, box: str | None, top: int) -> dict:
    """:func:`search_with_crop`'s result alone."""
    return search_with_crop(con, blob, box, top)[0]


@router.post("/search", summary="Search by photo: top identities with distance and the moments they were seen")
async def search(request: Request, image: UploadFile = File(..., description="a picture of a person"),
                 box: str | None = Form(None, description="optional x,y,w,h (pixels) of the person"),
                 top: int = Form(5, ge=1, le=50)) -> dict:
    con = console(request)
    blob = await read_upload(image, con.max_upload_bytes)
    return await asyncio.to_thread(run_search, con, blob, box, top)


@router.get("/events", summary="Events (appear, handover, leave, merge, split) after an event id")
def events(request: Request, after: EventId = 0, limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
    return data.events_after(console(request).store, after, limit)


@router.get("/events/stream", summary="Live events as server-sent events (text/event-stream)",
            response_class=StreamingResponse)
async def events_stream(request: Request, after: EventId = 0) -> StreamingResponse:
    """Each event carries ``id: <event_id>``; a reconnecting EventSource sends the last one it got as
    ``Last-Event-ID``, which takes precedence over ``after`` (the standard SSE resume), so no event is sent twice."""
    con = console(request)
    resume = request.headers.get("last-event-id", "").strip()
    if resume.isdigit() and 0 < int(resume) <= INT64_MAX:
        after = int(resume)

    async def gen():
        last = after
        if last == 0:
            latest = await asyncio.to_thread(data.events_after, con.store, 0, 1)
            last = latest[-1]["event_id"] if latest else 0
        yield "retry: 2000\n\n"
        idle = 0
        while not con.stopping.is_set() and not await request.is_disconnected():
            rows = await asyncio.to_thread(data.events_after, con.store, last, 200)
            for ev in rows:
                last = ev["event_id"]
                yield f"id: {last}\nevent: {ev['kind']}\ndata: {json.dumps(ev)}\n\n"
            idle = 0 if rows else idle + 1
            if idle and idle % 30 == 0:  # a comment line every 15 s keeps proxies from closing the stream
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(gen(), media_type="text/event-stream", headers=NO_STORE)
