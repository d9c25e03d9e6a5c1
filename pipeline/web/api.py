"""The console's JSON API (documented by ``/openapi.json`` and the ``/api-docs`` page).

Every route reads through :class:`pipeline.web.app.Console`; nothing here writes to the store. Camera
sources are only ever shown redacted (:func:`pipeline.sources.redact.redact_uri`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from pipeline.core.errors import ReidPipelineError
from pipeline.sources.redact import redact_uri
from pipeline.web import data
from pipeline.web.search import UploadError, decode_image, parse_box, probe_crop
from pipeline.web.timeline import timeline_svg

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}


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


@router.get("/health", summary="Liveness: whether a running pipeline feeds this console")
def health(request: Request) -> dict:
    con = console(request)
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
                       after: int | None = Query(None, description="wait (up to wait_s) for a newer frame than this"),
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


@router.get("/identities", summary="All identities: first/last seen, cameras, tracklet count")
def identities(request: Request) -> list[dict]:
    return data.gallery(console(request).store)


def _detail(con, gid: int) -> dict:
    d = data.identity_detail(con.store, gid)
    if d is None:
        raise HTTPException(404, f"no identity {gid} in this store")
    return d


@router.get("/identities/{global_id}", summary="One identity: route, transit times, tracklets, merges/splits")
def identity(request: Request, global_id: int) -> dict:
    return _detail(console(request), global_id)


@router.get("/identities/{global_id}/timeline.svg", summary="An identity's timeline across cameras (SVG)",
            response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
def identity_timeline(request: Request, global_id: int) -> Response:
    return Response(timeline_svg(_detail(console(request), global_id)), media_type="image/svg+xml")


def _jpeg(blob: bytes | None, what: str) -> Response:
    if blob is None:
        raise HTTPException(404, f"no thumbnail for {what}")
    return Response(blob, media_type="image/jpeg", headers={"Cache-Control": "max-age=10"})


@router.get("/identities/{global_id}/thumbnail.jpg", summary="An identity's thumbnail (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def identity_thumbnail(request: Request, global_id: int) -> Response:
    return _jpeg(data.identity_thumbnail(console(request).store, global_id), f"identity {global_id}")


@router.get("/tracklets/{tracklet_id}/thumbnail.jpg", summary="A tracklet's thumbnail (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def tracklet_thumbnail(request: Request, tracklet_id: int) -> Response:
    return _jpeg(data.tracklet_thumbnail(console(request).store, tracklet_id), f"tracklet {tracklet_id}")


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of an upload (enough to tell that it is too large)."""
    return await upload.read(limit + 1)


def run_search(con, blob: bytes, box: str | None, top: int) -> dict:
    """Decode, crop, embed and rank; UploadError / ReidPipelineError become HTTP errors."""
    try:
        crop = probe_crop(decode_image(blob, con.max_upload_bytes), parse_box(box))
        return con.search.search(con.store, crop, top)
    except UploadError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except ReidPipelineError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/search", summary="Search by photo: top identities with distance and the moments they were seen")
async def search(request: Request, image: UploadFile = File(..., description="a picture of a person"),
                 box: str | None = Form(None, description="optional x,y,w,h (pixels) of the person"),
                 top: int = Form(5, ge=1, le=50)) -> dict:
    con = console(request)
    blob = await read_upload(image, con.max_upload_bytes)
    return await asyncio.to_thread(run_search, con, blob, box, top)


@router.get("/events", summary="Events (appear, handover, leave, merge, split) after an event id")
def events(request: Request, after: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
    return data.events_after(console(request).store, after, limit)


@router.get("/events/stream", summary="Live events as server-sent events (text/event-stream)",
            response_class=StreamingResponse)
async def events_stream(request: Request, after: int = Query(0, ge=0)) -> StreamingResponse:
    con = console(request)

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
