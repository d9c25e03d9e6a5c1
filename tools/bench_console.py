"""Console benchmark (issue 14): page load times in headless Chromium, photo-search top-1 on 50 PETS probe
crops, and live-tile refresh rate vs pipeline fps on 2 cameras with and without the console.

1. **Gallery**: the PETS09-S2L1 gt demo store (pipeline/testing/gt_store.py: two virtual cameras split at
   x = 384, gt tracklets of >= 8 frames, real embeddings of the encoder) over all 795 frames, minus the probe's
   neighbourhood (same person, |frame - probe frame| < 35: the re-id bench's time protocol, which ignores
   exactly those gallery crops per query). The probes are searched in rounds, one probe per person per round
   (the k-th probe of every person in round k), each round against a gallery without its probes' neighbourhoods.
2. **Probes**: the re-id bench's PETS queries (tools/bench_reid.py: ``make-triplets PETS09-S2L1 --stride 2
   --min-vis 0 --split 0,0,1 --seed 0``, queries by ``reid_models.evaluate.query_gallery``: the middle crop of
   each of 5 time segments per identity), 50 of them evenly spread; each crop file is uploaded to
   ``POST /api/search``; hit = its gt id ranks first.
3. **Pages**: every page loaded ``--loads`` times in headless Debian chromium (Playwright); navigation time
   (start -> load event), median and max; console errors counted.
4. **Live**: ``reid-pipeline run`` on the 2-camera PETS split (YOLOv5n ONNX, ``--frames`` per camera), ``ui``
   off and on alternately (``--reps`` each); with ui on a browser watches /cameras: tile refresh = distinct
   frames shown per second per tile; pipeline fps = stage_times.json's fps_per_cam.

Usage::

    .venv/bin/python tools/bench_console.py [--out runs/bench_console] [--frames 150] [--reps 2] [--loads 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PAGES = ["/cameras", "/identities", "/identities/{gid}", "/search", "/events", "/api-docs"]
TARGETS = {"page_s": 1.0, "search_top1": 0.90, "tile_hz": 2.0, "fps_drop": 0.10}
CHROMIUM = "/usr/bin/chromium"


def probes(pets_reid: Path, shared: Path, n: int) -> list[dict]:
    """The re-id bench's PETS query crops, ``n`` evenly spread: [{path, gt_id, frame}]."""
    from pipeline.evaluation.pets_reid_set import ensure_pets_set
    from reid_models.datasets.index import load_index
    from reid_models.evaluate import EvalConfig, query_gallery

    ensure_pets_set(pets_reid, shared)  # the set of tools/bench_reid.py
    items = load_index(pets_reid, "test")
    with open(pets_reid / "index.csv", newline="", encoding="utf-8") as fh:
        gt_id = {str(pets_reid / r["path"]): int(r["local_id"]) for r in csv.DictReader(fh)}
    q = query_gallery(items, EvalConfig())[0]
    pick = q[np.unique(np.linspace(0, len(q) - 1, n).round().astype(int))]
    return [{"path": str(items[i].path), "gt_id": gt_id[str(items[i].path)], "frame": items[i].frame} for i in pick]


def rounds(probe_list: list[dict]) -> list[list[dict]]:
    """Round k holds the k-th probe (by frame) of every person: no two probes of one person share a gallery."""
    out: list[list[dict]] = []
    seen: dict[int, int] = {}
    for p in sorted(probe_list, key=lambda p: (p["gt_id"], p["frame"])):
        k = seen[p["gt_id"]] = seen.get(p["gt_id"], -1) + 1
        out += [[] for _ in range(k + 1 - len(out))]
        out[k].append(p)
    return out


def build_gallery(path: Path, pets: Path, encoder, probe_list: list[dict]) -> dict:
    from pipeline.testing.gt_store import build_gt_store

    exclude: dict[int, list[int]] = {}
    for p in probe_list:
        exclude.setdefault(p["gt_id"], []).append(p["frame"])
    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    t0 = time.perf_counter()
    truth = build_gt_store(pets, path, encoder, last_frame=795, exclude=exclude)
    return {"tracklets": len(truth), "identities": len(set(truth.values())), "build_s": time.perf_counter() - t0,
            "probes": len(probe_list), "probes_without_gallery_identity": sum(
                p["gt_id"] not in set(truth.values()) for p in probe_list)}


def merge_search(parts: list[dict]) -> dict:
    n = sum(p["probes"] for p in parts)
    times = [p["search_s_median"] for p in parts]
    return {"probes": n, "top1": sum(p["top1"] * p["probes"] for p in parts) / n,
            "top5": sum(p["top5"] * p["probes"] for p in parts) / n, "search_s_median": statistics.median(times),
            "search_s_max": max(p["search_s_max"] for p in parts), "results": [r for p in parts for r in p["results"]]}


def search_accuracy(url: str, probe_list: list[dict]) -> dict:
    import httpx

    hits, top5, times, rows = 0, 0, [], []
    with httpx.Client(base_url=url, timeout=120) as c:
        for p in probe_list:
            t0 = time.perf_counter()
            r = c.post("/api/search", files={"image": ("probe.jpg", Path(p["path"]).read_bytes(), "image/jpeg")},
                       data={"top": "5"})
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
            ranked = [i["global_id"] for i in r.json()["identities"]]
            hits += ranked[:1] == [p["gt_id"]]
            top5 += p["gt_id"] in ranked
            rows.append({**p, "ranked": ranked})
    n = len(probe_list)
    return {"probes": n, "top1": hits / n, "top5": top5 / n, "search_s_median": statistics.median(times),
            "search_s_max": max(times), "results": rows}


def page_times(browser, url: str, gid: int, loads: int, shots: Path) -> dict:
    out = {}
    for path in PAGES:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        ms = []
        for _ in range(loads):
            page.goto(url + path.format(gid=gid), wait_until="load")
            ms.append(page.evaluate("performance.getEntriesByType('navigation')[0].duration"))
        name = path.strip("/").replace("/", "_").replace("{gid}", str(gid))
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        out[path] = {"median_s": statistics.median(ms) / 1000, "max_s": max(ms) / 1000, "console_errors": errors}
        page.close()
    return out


def run_config(out: Path, cams: Path, shared: Path, frames: int, ui_port: int | None) -> Path:
    import yaml

    key = "ui" if ui_port else "plain"
    data = {"mode": "batch", "run_key": f"bench-{key}-{time.time():.0f}",
            "cameras": [{"id": c, "source": str(cams / c / "video.mp4")} for c in ("left", "right")],
            "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx"), "conf": 0.25},
            "tracker": "yolo",
            "encoder": {"checkpoint": "default", "every": 2, "threads": 1},
            "tracklets": {"min_length": 5, "partial_every_s": 10.0},
            "store": {"path": str(out / f"run_{key}.sqlite")}, "outputs": {"dir": str(out / f"run_{key}")}}
    if ui_port:
        data["ui"] = {"enabled": True, "port": ui_port}
    path = out / f"run_{key}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    for p in out.glob(f"run_{key}.sqlite*"):
        p.unlink()
    return path


def live_run(out: Path, cams: Path, shared: Path, frames: int, browser, ui: bool, shots: Path) -> dict:
    """One pipeline run in a subprocess; with ``ui`` a browser samples the tiles' distinct frames."""
    import httpx

    from pipeline.testing.rtsp import free_port

    port = free_port() if ui else None
    cfg = run_config(out, cams, shared, frames, port)
    cmd = [sys.executable, "-m", "pipeline", "run", str(cfg), "--max-frames", str(frames), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tiles = None
    if ui:
        url = f"http://127.0.0.1:{port}"
        while proc.poll() is None:
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/cameras", wait_until="load")
        samples = []  # (t, {cam: updates})
        while proc.poll() is None:
            try:
                counts = page.evaluate("Object.fromEntries([...document.querySelectorAll('img.live-tile')]"
                                       ".map(i => [i.dataset.cam, Number(i.dataset.updates)]))")
            except Exception:  # noqa: BLE001 - the server went away with the run
                break
            samples.append((time.monotonic(), counts))
            if len(samples) == 20:
                page.screenshot(path=str(shots / "cameras_live.png"), full_page=True)
            page.wait_for_timeout(500)
        page.close()
        steady = [s for s in samples if min(s[1].values(), default=0) > 0]  # from the first frame on both tiles
        if len(steady) >= 2:
            (t0, c0), (t1, c1) = steady[0], steady[-1]
            tiles = {cam: (c1[cam] - c0[cam]) / (t1 - t0) for cam in c1}
    log = proc.communicate()[0]
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{log[-3000:]}")
    timing = json.loads((out / f"run_{'ui' if ui else 'plain'}" / "stage_times.json").read_text())["timing"]
    return {"ui": ui, "fps_per_cam": timing["fps_per_cam"], "wall_s": timing["wall_s"], "tile_hz": tiles}


def tile_cost(video: Path, n: int = 40) -> dict:
    """What the console adds per processed frame, without load noise: the runner's publish (a reference swap)
    and the console thread's draw + JPEG encode of one tile (5 labelled boxes), medians over ``n`` frames."""
    import cv2

    from pipeline.web.live import LiveFrames

    cap = cv2.VideoCapture(str(video))
    frames = [f for ok, f in iter(cap.read, (False, None)) if ok][:n]
    cap.release()
    live = LiveFrames(["cam"])
    boxes = [(np.array([20.0 + 40 * i, 100, 35, 90]), f"G{i + 1}", i + 1) for i in range(5)]
    pub, enc = [], []
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        live.publish("cam", i, i / 7.0, f, boxes)
        t1 = time.perf_counter()
        live.jpeg("cam")
        pub.append(t1 - t0)
        enc.append(time.perf_counter() - t1)
    return {"frames": len(frames), "size": list(frames[0].shape[:2]), "publish_us_median": 1e6 * statistics.median(pub),
            "encode_ms_median": 1e3 * statistics.median(enc)}


def table(doc: dict) -> str:
    lines = ["| page | median s | max s | console errors |", "|---|---|---|---|"]
    for p, r in doc["pages"].items():
        lines.append(f"| {p} | {r['median_s']:.3f} | {r['max_s']:.3f} | {len(r['console_errors'])} |")
    s = doc["search"]
    lines += ["", f"photo search: top-1 {100 * s['top1']:.0f} % ({s['probes']} probes), top-5 {100 * s['top5']:.0f} %,"
              f" median {s['search_s_median']:.2f} s per search (max {s['search_s_max']:.2f} s)"]
    if doc.get("live"):
        lines += ["", "| run | ui | pipeline fps per camera (left / right) | tile refresh per s (left / right) |",
                  "|---|---|---|---|"]
        for i, r in enumerate(doc["live"]["runs"]):
            f, t = r["fps_per_cam"], r["tile_hz"] or {}
            tile = " / ".join(f"{t[c]:.2f}" for c in ("left", "right")) if t else "-"
            lines.append(f"| {i + 1} | {'on' if r['ui'] else 'off'} | {f['left']:.2f} / {f['right']:.2f} | {tile} |")
        lv = doc["live"]
        lines.append(f"\nmean fps per camera: ui off {lv['fps_off']:.2f}, ui on {lv['fps_on']:.2f} "
                     f"(drop {100 * lv['fps_drop']:.1f} %); tile refresh min {lv['tile_hz_min']:.2f}/s, "
                     f"tile refresh / pipeline fps {lv['tile_vs_fps']:.2f}")
        tc = lv["tile_cost"]
        lines.append(f"console work per processed frame: publish {tc['publish_us_median']:.1f} us (frame loop), "
                     f"draw + JPEG {tc['encode_ms_median']:.1f} ms (console thread) on {tc['size'][1]}x{tc['size'][0]}"
                     f" frames, vs {1000 / lv['fps_off']:.0f} ms of pipeline per frame and camera")
    v = doc["verdict"]
    lines.append("\ntargets: " + "; ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in v.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    from pipeline.core.paths import shared_dir
    from pipeline.web.server import ConsoleServer
    from reid_models.encoder import AppearanceEncoder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_console"))
    ap.add_argument("--pets-reid", type=Path, default=Path("runs/reid_data/pets_all"), help="= bench_reid --pets")
    ap.add_argument("--probes", type=int, default=50)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--frames", type=int, default=150, help="frames per camera of each live run")
    ap.add_argument("--reps", type=int, default=3, help="live runs with ui off and on, alternating")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--only-live", action="store_true",
                    help="re-measure only the live part; search and pages from --out's results.json")
    args = ap.parse_args(argv)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    shared = shared_dir()
    if shared is None:
        raise SystemExit("shared data folder not found (../shared or REID_SHARED)")
    out, shots = args.out.resolve(), args.out.resolve() / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    pets = shared / "data" / "MOT15" / "train" / "PETS09-S2L1"
    encoder = AppearanceEncoder.from_checkpoint(None, device="cpu")
    probe_list = [] if args.only_live else probes(args.pets_reid, shared, args.probes)
    doc = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
           "galleries": [], "args": {k: str(v) for k, v in vars(args).items()}}
    if args.only_live:
        earlier = json.loads((out / "results.json").read_text(encoding="utf-8"))
        doc.update({k: earlier[k] for k in ("galleries", "search", "pages")}, static_from=earlier["args"])
    parts = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        for k, group in enumerate(rounds(probe_list)):
            store = out / f"gallery_{k}.sqlite"
            doc["galleries"].append(build_gallery(store, pets, encoder, group))
            print(f"gallery {k}: {doc['galleries'][-1]}", flush=True)
            srv = ConsoleServer(store, lambda: encoder, port=0).start()
            try:
                parts.append(search_accuracy(srv.url, group))
                print(f"round {k}: top-1 {parts[-1]['top1']:.2f} of {len(group)}", flush=True)
                if k == 0:  # the pages, on the first round's gallery
                    gid = max(srv._console.store.identities(), key=lambda r: r.n_tracklets).global_id
                    doc["pages"] = page_times(browser, srv.url, gid, args.loads, shots)
            finally:
                srv.stop()
        if parts:
            doc["search"] = merge_search(parts)
        if not args.skip_live:
            from pipeline.virtual_cameras import build_virtual_cameras

            cams = out / "cams"
            if not (cams / "right" / "video.mp4").is_file():
                build_virtual_cameras(pets, cams, layout="two-regions", gap=0.1, frame_range=(1, args.frames),
                                      progress=False)
            runs = []
            for rep in range(args.reps):
                for ui in (False, True):
                    runs.append(live_run(out, cams, shared, args.frames, browser, ui, shots))
                    print(f"live run {len(runs)}: {runs[-1]}", flush=True)
            mean = lambda rs: float(np.mean([np.mean(list(r["fps_per_cam"].values())) for r in rs]))  # noqa: E731
            off, on = [r for r in runs if not r["ui"]], [r for r in runs if r["ui"]]
            tiles = [v for r in on for v in (r["tile_hz"] or {"none": 0.0}).values()]
            ratio = [r["tile_hz"][c] / r["fps_per_cam"][c] for r in on if r["tile_hz"] for c in r["tile_hz"]]
            doc["live"] = {"runs": runs, "fps_off": mean(off), "fps_on": mean(on),
                           "fps_drop": 1 - mean(on) / mean(off), "tile_hz_min": min(tiles),
                           "tile_vs_fps": float(np.mean(ratio)) if ratio else 0.0,
                           "tile_cost": tile_cost(cams / "left" / "video.mp4")}
        browser.close()
    v = {"pages < 1 s": all(r["max_s"] < TARGETS["page_s"] for r in doc["pages"].values()),
         "no console errors": not any(r["console_errors"] for r in doc["pages"].values()),
         "search top-1 >= 90 %": doc["search"]["top1"] >= TARGETS["search_top1"]}
    if "live" in doc:
        v["tiles >= 2/s"] = doc["live"]["tile_hz_min"] >= TARGETS["tile_hz"]
        v["fps drop <= 10 %"] = doc["live"]["fps_drop"] <= TARGETS["fps_drop"]
    doc["verdict"] = v
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    text = table(doc)
    (out / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
