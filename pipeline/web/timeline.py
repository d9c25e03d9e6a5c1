"""An identity's timeline across cameras as SVG: one lane per camera, one bar per tracklet, and a dashed
line with the transit time for every hand-over between cameras (the route)."""

from __future__ import annotations

from html import escape

import numpy as np

LANE_H = 34
LEFT = 90
RIGHT = 20
TOP = 62
LABEL_ROWS = 3  # transit labels stack in up to 3 rows above the lanes; one that fits none is left to the route list
LABEL_W = 118  # px a label needs
AXIS_H = 28


def _ticks(t0: float, t1: float, n: int = 6) -> list[float]:
    span = max(t1 - t0, 1e-6)
    raw = span / n
    step = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = np.ceil(t0 / step) * step
    return [float(v) + 0.0 for v in np.round(np.arange(start, t1 + 1e-9, step), 9)]


def timeline_svg(detail: dict, width: int = 900) -> str:
    """SVG text for :func:`pipeline.web.data.identity_detail`'s result (tracklets, route)."""
    tracklets, cams = detail["tracklets"], detail["cameras"]
    t0, t1 = detail["first_seen"], detail["last_seen"]
    pad = max((t1 - t0) * 0.03, 0.5)
    t0, t1 = t0 - pad, t1 + pad
    plot_w = width - LEFT - RIGHT
    height = TOP + LANE_H * len(cams) + AXIS_H

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    lane = {c: i for i, c in enumerate(cams)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}"'
           f' viewBox="0 0 {width} {height}" role="img" aria-label="timeline of identity {detail["global_id"]}">',
           f'<text x="{LEFT}" y="15" class="tl-title">time (s) on the run clock; a bar = one tracklet;'
           ' dashed = moved between cameras</text>']
    for c, i in lane.items():
        y = TOP + i * LANE_H
        out.append(f'<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{LANE_H - 6}" class="tl-lane"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + LANE_H / 2}" text-anchor="end" class="tl-cam">{escape(c)}</text>')
    axis_y = TOP + LANE_H * len(cams)
    for t in _ticks(t0, t1):
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" y2="{axis_y}" class="tl-grid"/>')
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle" class="tl-tick">{t + 0.0:g}</text>')
    for tr in tracklets:
        y = TOP + lane[tr["cam_id"]] * LANE_H + 4
        w = max(x(tr["end_time"]) - x(tr["start_time"]), 3.0)
        tip = (f'tracklet {tr["tracklet_id"]}: camera {tr["cam_id"]}, track {tr["track_id"]},'
               f' {tr["start_time"]:.1f}-{tr["end_time"]:.1f} s')
        out.append(f'<a href="#tracklet-{tr["tracklet_id"]}"><rect x="{x(tr["start_time"]):.1f}" y="{y}"'
                   f' width="{w:.1f}" height="{LANE_H - 14}" rx="3" class="tl-bar"><title>{escape(tip)}</title>'
                   '</rect></a>')
    row_end = [float("-inf")] * LABEL_ROWS
    for hop in detail["route"]:
        xa, xb = x(hop["left"]), x(hop["arrived"])
        ya = TOP + lane[hop["from_cam"]] * LANE_H + LANE_H / 2 - 3
        yb = TOP + lane[hop["to_cam"]] * LANE_H + LANE_H / 2 - 3
        out.append(f'<line x1="{xa:.1f}" y1="{ya:.1f}" x2="{xb:.1f}" y2="{yb:.1f}" class="tl-hop"/>')
        mid = (xa + xb) / 2
        row = next((r for r in range(LABEL_ROWS) if mid - LABEL_W / 2 > row_end[r]), None)
        if row is None:
            continue
        row_end[row] = mid + LABEL_W / 2
        ly = TOP - 4 - 13 * row
        out.append(f'<line x1="{mid:.1f}" y1="{ly + 2}" x2="{mid:.1f}" y2="{TOP}" class="tl-hop-tick"/>')
        out.append(f'<text x="{mid:.1f}" y="{ly}" text-anchor="middle" class="tl-hop-label">'
                   f'{escape(hop["from_cam"])}→{escape(hop["to_cam"])} {hop["transit_s"]:+.1f} s</text>')
    out.append("</svg>")
    return "\n".join(out)
