"""The annotated MP4 survives a hard kill and a resumed run does not overwrite it (issue 11, item 7a).

A real subprocess writes PETS frames with AnnotatedVideoWriter and is killed with SIGKILL before
``close()``; the file must still be read back by OpenCV. With only the pipeline killed, the
encoder finishes the file (every frame); with the encoder killed too, the fragments already on
disk stay readable. ``append=True`` (a resumed run) writes the next ``<cam>.partNNN.mp4``.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.sinks import AnnotatedVideoWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_frames import read_frames  # noqa: E402

WRITER = """
import sys, time
from pathlib import Path
import cv2, numpy as np
from pipeline.sinks import AnnotatedVideoWriter
frames, out, n, fps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
w = AnnotatedVideoWriter(out, fps=fps)
for i, f in enumerate(sorted(frames.glob("*.jpg"))[:n]):
    w.write(cv2.resize(cv2.imread(str(f)), (384, 288)), [(np.array([10.0, 10.0, 50.0, 90.0]), f"G{i}", i)])
print("WROTE", w.pid, flush=True)
time.sleep(600)  # killed before close()
"""



def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie whose parent was killed has exited


def _start_writer(pets_dir: Path, out: Path, n: int, fps: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(pets_dir / "img1"), str(out), str(n), str(fps)],
                            stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("WROTE"):
        proc.kill()
        pytest.fail(f"writer did not start: {line!r}")
    pid = line.split()[1]
    return proc, int(pid) if pid.isdigit() else -1


def test_pipeline_killed_encoder_finishes_every_frame(pets_dir, tmp_path):
    out = tmp_path / "video" / "cam0.mp4"
    proc, enc = _start_writer(pets_dir, out, 25, 7.0)
    assert enc > 0  # ffmpeg is on PATH here (CI installs it): the encoder is a separate process
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    deadline = time.monotonic() + 60
    while _alive(enc) and time.monotonic() < deadline:  # it sees end-of-input and writes the end of the file
        time.sleep(0.1)
    assert not _alive(enc)
    assert read_frames(out) == 25


def test_pipeline_and_encoder_killed_fragments_stay_readable(pets_dir, tmp_path):
    out = tmp_path / "cam0.mp4"
    proc, enc = _start_writer(pets_dir, out, 40, 10.0)
    try:
        seen, deadline = 0, time.monotonic() + 90
        while seen == 0 and time.monotonic() < deadline:  # readable while still being written: no trailer needed
            time.sleep(0.2)
            seen = read_frames(out) if out.exists() else 0
        assert seen > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        if enc > 0 and _alive(enc):
            os.kill(enc, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    assert 0 < seen <= read_frames(out) <= 40


def _write(path: Path, n: int, append: bool = False, size=(64, 96)) -> AnnotatedVideoWriter:
    w = AnnotatedVideoWriter(path, fps=7.0, append=append)
    for i in range(n):
        w.write(np.full((*size, 3), 20 * i, np.uint8), [(np.array([10.0, 10.0, 20.0, 30.0]), "G1", 1)])
    w.close()
    return w


def test_append_mode_starts_a_new_part_and_keeps_what_was_written(tmp_path):
    base = tmp_path / "video" / "cam0.mp4"
    assert _write(base, 3, append=True).path == base  # nothing there yet: the file itself
    assert _write(base, 2, append=True).path == tmp_path / "video" / "cam0.part001.mp4"
    assert _write(base, 4, append=True).path == tmp_path / "video" / "cam0.part002.mp4"
    assert [read_frames(base), read_frames(base.with_name("cam0.part001.mp4")),
            read_frames(base.with_name("cam0.part002.mp4"))] == [3, 2, 4]
    assert _write(base, 1).path == base and read_frames(base) == 1  # a fresh run starts over


def test_odd_frame_size_and_size_change(tmp_path):
    w = AnnotatedVideoWriter(tmp_path / "v.mp4", fps=5.0)
    w.write(np.zeros((65, 97, 3), np.uint8), [])
    w.write(np.zeros((130, 194, 3), np.uint8), [])  # a camera that came back at another resolution
    w.close()
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    ok, img = cap.read()
    assert ok and img.shape[:2] in ((65, 97), (66, 98))
    assert read_frames(tmp_path / "v.mp4") == 2


def test_without_ffmpeg_falls_back_to_opencv_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on PATH
    with caplog.at_level(logging.WARNING, logger="pipeline.sinks.video"):
        w = _write(tmp_path / "v.mp4", 3)
    assert w.pid is None
    assert any("ffmpeg" in r.getMessage() for r in caplog.records)
    assert read_frames(tmp_path / "v.mp4") == 3


def test_clean_close_is_an_ordinary_mp4(tmp_path):
    """After close() the fragments are remuxed into a plain MP4 (sample tables, index first)."""
    w = _write(tmp_path / "v.mp4", 9)
    assert w.pid is not None
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,nb_frames", "-of", "csv=p=0", str(tmp_path / "v.mp4")],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "h264,9"
    data = (tmp_path / "v.mp4").read_bytes()
    assert data.find(b"moov") < data.find(b"mdat") and b"moof" not in data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # no temporary file left
