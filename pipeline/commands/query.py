"""``reid-pipeline query``: ask the identity store where/when an identity was seen, or who matches a probe image.

    reid-pipeline query --store FILE --list
    reid-pipeline query --store FILE --id 7
    reid-pipeline query --store FILE --image probe.jpg [--box x,y,w,h] [--top 10] [--checkpoint default|imagenet|PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.commands.argtypes import positive_int, store_id
from pipeline.core.errors import ConfigError, DataError

HELP = "query the identity store: --list, --id GID (where and when), --image PROBE (image-to-video search)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, required=True, help="identity store (SQLite) written by run")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="summary: counts, cameras, runs, identities")
    what.add_argument("--id", type=store_id, dest="gid", help="a global identity: cameras, time ranges, tracklets")
    what.add_argument("--image", type=Path, help="a probe person image: rank stored tracklets and identities")
    parser.add_argument("--box", default=None, help="crop the probe image to x,y,w,h (tlwh pixels) first")
    parser.add_argument("--top", type=positive_int, default=10, help="how many results to show (--image)")
    parser.add_argument("--cam", default=None, help="search only this camera's tracklets (--image)")
    parser.add_argument("--checkpoint", default="default",
                        help="encoder for the probe: 'default' (an adapted store's deployed version when it has one),"
                             " 'imagenet' or a checkpoint path (--image)")
    parser.add_argument("--model-version", default=None,
                        help="stored embedding version to compare with (default: the encoder's version)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _open_store(path: Path):
    """Read-only: works while a run holds the store's writer lock."""
    from pipeline.store import IdentityStore

    if not path.is_file():
        raise DataError(path, "no such identity store")
    return IdentityStore(path, mode="read")


def _probe_crop(path: Path, box: str | None):
    from pipeline.core.images import read_image

    image = read_image(path)
    if image is None:
        raise DataError(path, "cannot read the probe image")
    if box is None:
        return image
    import numpy as np

    from pipeline.core.types import crop_tlwh

    try:
        tlwh = np.array([float(v) for v in box.split(",")], dtype=np.float64)
        if tlwh.shape != (4,):
            raise ValueError
    except ValueError:
        raise ConfigError(f"--box: expected x,y,w,h, got {box!r}") from None
    if not np.isfinite(tlwh).all():
        raise ConfigError(f"--box {box}: x,y,w,h must be finite numbers of pixels")
    crop = crop_tlwh(image, tlwh, min_size=2)
    if crop is None:
        raise ConfigError(f"--box {box}: empty crop of a {image.shape[1]}x{image.shape[0]} image")
    return crop


def _encoder(checkpoint: str):
    from reid_models.encoder import AppearanceEncoder

    if checkpoint == "imagenet":
        return AppearanceEncoder.imagenet_baseline(device="auto")
    return AppearanceEncoder.from_checkpoint(None if checkpoint == "default" else Path(checkpoint), device="auto")


def run(args: argparse.Namespace) -> int:
    from pipeline import query

    store = _open_store(args.store)
    try:
        if args.list:
            result = query.store_summary(store)
            text = _format_summary(result)
        elif args.gid is not None:
            result = query.identity_report(store, args.gid)
            text = _format_identity(result)
        else:
            crop = _probe_crop(args.image, args.box)
            encoder = _encoder(args.checkpoint)
            if args.checkpoint == "default" and args.model_version is None:  # an adapted store: its deployed model
                from pipeline.adaptation.live import adopt_deployed_version

                adopt_deployed_version(store, encoder)
            probe = encoder.embed_crops([crop])[0]
            result = query.rank_tracklets(store, probe, args.model_version or encoder.version, args.top, args.cam)
            text = _format_ranking(result)
    finally:
        store.close()
    print(json.dumps(result, indent=1) if args.json else text)
    return 0


def _format_summary(r: dict) -> str:
    c = r["counts"]
    lines = [f"{r['store']}: {c['identities']} identities, {c['tracklets']} tracklets, cameras {r['cameras']},"
             f" {c['runs']} run(s), deployed model {r['deployed_version']}"]
    for i in r["identities"]:
        lines.append(f"  id {i['global_id']:5d}  {i['first_seen']:9.1f}s .. {i['last_seen']:9.1f}s"
                     f"  {i['tracklets']:3d} tracklets  cameras {','.join(i['cameras'])}")
    return "\n".join(lines)


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _format_identity(r: dict) -> str:
    lines = []
    src = r.get("resolved_from")
    if src is not None:
        lines.append(f"identity {src['id']} was merged into identity {r['global_id']} (change {src['change_id']},"
                     f" at {src['t']:.1f}s); showing identity {r['global_id']}")
    lines.append(f"identity {r['global_id']}: seen {r['first_seen']:.1f}s .. {r['last_seen']:.1f}s,"
                 f" route {' -> '.join(r['route'])}")
    if r.get("absorbed"):
        lines.append(f"  absorbed ids: {', '.join(str(g) for g in r['absorbed'])}")
    for cam, ranges in r["cameras"].items():
        lines.append(f"  {cam}: " + ", ".join(f"{a:.1f}-{b:.1f}s" for a, b in ranges))
    for t in r["tracklets"]:
        lines.append(f"    tracklet {t['tracklet_id']} cam {t['cam_id']} track {t['track_id']}"
                     f" frames {t['frames'][0]}-{t['frames'][1]} ({t['start_time']:.1f}-{t['end_time']:.1f}s)"
                     f"  distance {_num(t.get('distance'), '.4f')}  p(same) {_num(t.get('probability'), '.2f')}")
    for c in r.get("changes", []):
        what = (f"merge: {c['from']} absorbed into {c['into']}" if c["kind"] == "merge"
                else f"split: from {c['from']} into {c['into']}")
        decided = c["payload"].get("decided_t")
        when = f"at {c['t']:.1f}s" + (f", decided at {decided:.1f}s" if decided is not None else "")
        lines.append(f"  change {c['change_id']} {when} ({c['cam_id']}): {what},"
                     f" {len(c['tracklets'])} tracklet(s) moved, distance {_num(c['distance'], '.4f')},"
                     f" p(same) {_num(c['probability'], '.2f')}")
    return "\n".join(lines)


def _format_ranking(r: dict) -> str:
    lines = [f"model version {r['model_version']}: top identities"]
    for i in r["identities"]:
        lines.append(f"  #{i['rank']:<3d} id {i['global_id']:5d}  distance {i['distance']:.3f}  ({i['cam_id']})")
    lines.append("top tracklets")
    for t in r["tracklets"]:
        lines.append(f"  #{t['rank']:<3d} tracklet {t['tracklet_id']} cam {t['cam_id']} track {t['track_id']}"
                     f" id {t['global_id']}  distance {t['distance']:.3f}  {t['start_time']:.1f}-{t['end_time']:.1f}s")
    return "\n".join(lines)
