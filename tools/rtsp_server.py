#!/usr/bin/python3
"""A real RTSP server on loopback for tests and demos (GStreamer's gst-rtsp-server).

Run it with Debian's Python, not the project venv: the GObject bindings (``gi``)
live in Debian's dist-packages::

    /usr/bin/python3 tools/rtsp_server.py --port 8554 --mounts cam0 cam1
    /usr/bin/python3 tools/rtsp_server.py --port 8554 --video ../shared/data/videos/PETS09-S2L1.avi

Every mount serves the same clip re-encoded to H.264 (x264enc, or openh264enc when
x264 is missing) over RTP. The default clip is the PETS09-S2L1 JPEG frames looped
forever at their own frame rate (7 fps), so a client can watch for as long as it
likes; ``--video FILE`` serves a video file instead (played once per client).
``--user``/``--password`` turn on RTSP basic authentication.

Prints one line ``READY rtsp://127.0.0.1:PORT/`` on stdout once it listens;
SIGTERM or SIGINT stop it cleanly. Needs the Debian packages python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,ugly} (installed by .ci/run).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FRAMES = REPO_ROOT.parent / "shared" / "data" / "MOT15" / "train" / "PETS09-S2L1" / "img1"


def _encoder(Gst) -> str:
    """The H.264 encoder element chain available here (low latency, frequent key frames)."""
    if Gst.ElementFactory.find("x264enc") is not None:
        return "x264enc tune=zerolatency speed-preset=ultrafast bitrate=800 key-int-max=7"
    if Gst.ElementFactory.find("openh264enc") is not None:
        return "openh264enc bitrate=800000 gop-size=7"
    raise SystemExit("rtsp_server: no H.264 encoder (install gstreamer1.0-plugins-ugly)")


def build_launch(Gst, frames: Path | None, video: Path | None, fps: int, width: int) -> str:
    """The gst-launch description of one media: decode, scale, encode H.264, payload as pay0."""
    if video is not None:
        src = f'filesrc location="{video}" ! decodebin'
    else:
        assert frames is not None
        pattern = str(frames / "%06d.jpg")
        src = (
            f'multifilesrc location="{pattern}" index=1 start-index=1 loop=true '
            f'caps="image/jpeg,framerate={fps}/1" ! jpegdec'
        )
    height = int(round(width * 576 / 768 / 2)) * 2
    return (
        f"( {src} ! videoconvert ! videoscale ! video/x-raw,format=I420,width={width},height={height} "
        f"! {_encoder(Gst)} ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def _auth(GstRtspServer, factory, user: str, password: str, server) -> None:
    """Basic authentication: only ``user`` may access and construct the medium."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role(user, "media.factory.access", True)
    perms.add_permission_for_role(user, "media.factory.construct", True)
    factory.set_permissions(perms)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--mounts", nargs="+", default=["cam0", "cam1"], help="mount names (without '/')")
    p.add_argument("--frames", type=Path, default=DEFAULT_FRAMES, help="folder of NNNNNN.jpg frames (looped)")
    p.add_argument("--video", type=Path, default=None, help="serve this video file instead of the frames")
    p.add_argument("--fps", type=int, default=7, help="frame rate of the JPEG frames")
    p.add_argument("--width", type=int, default=384, help="output width (height keeps 4:3)")
    p.add_argument("--user", default=None)
    p.add_argument("--password", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    if args.video is not None and not args.video.is_file():
        raise SystemExit(f"rtsp_server: video not found: {args.video}")
    if args.video is None and not (args.frames / "000001.jpg").is_file():
        raise SystemExit(f"rtsp_server: no frames 000001.jpg in {args.frames}")
    launch = build_launch(Gst, args.frames, args.video, args.fps, args.width)

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for name in args.mounts:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)  # all clients of a mount watch one encoder
        if args.user:
            _auth(GstRtspServer, factory, args.user, args.password or "", server)
        mounts.add_factory("/" + name.strip("/"), factory)
    if server.attach(None) == 0:
        raise SystemExit(f"rtsp_server: cannot listen on {args.address}:{args.port}")

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://{args.address}:{server.get_bound_port()}/", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
