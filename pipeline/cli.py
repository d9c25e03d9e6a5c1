"""The ``reid-pipeline`` console script: an explicit table of subcommands.

Errors that are the user's (bad config, missing file, malformed data) are
:class:`~pipeline.core.errors.ReidPipelineError`; they are printed as one line and
the process exits with status 2. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sqlite3
import sys
from types import ModuleType

from pipeline.core.errors import ReidPipelineError

#: subcommand name -> module implementing it (see pipeline/commands/__init__.py)
COMMANDS: dict[str, str] = {
    "run": "pipeline.commands.run",
    "query": "pipeline.commands.query",
    "track": "pipeline.commands.track",
    "eval": "pipeline.commands.evaluate",
    "benchmark": "pipeline.commands.benchmark",
    "eval-mc": "pipeline.commands.eval_mc",
    "detect": "pipeline.commands.detect",
    "make-triplets": "pipeline.commands.make_triplets",
    "train": "pipeline.commands.train",
    "eval-reid": "pipeline.commands.eval_reid",
    "embed": "pipeline.commands.embed",
    "export": "pipeline.commands.export",
    "adapt": "pipeline.commands.adapt",
    "virtual-cameras": "pipeline.commands.virtual_cameras",
    "recluster": "pipeline.commands.recluster",
    "serve": "pipeline.commands.serve",
}


def _load(module_path: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        if exc.name == module_path:  # the command is not part of this build
            return None
        raise


def version_text() -> str:
    """``reid-pipeline X.Y.Z; re-id default <version> (<model>)``: the installed package's version and the
    shipped re-id model's (the version the store records, i.e. its file hash; read from ``default.json``,
    without importing torch)."""
    import json
    from importlib.metadata import PackageNotFoundError, version

    import reid_models

    try:
        text = f"reid-pipeline {version('reid-pipeline')}"
    except PackageNotFoundError:
        text = "reid-pipeline (not installed)"
    meta_path = os.path.join(os.path.dirname(reid_models.__file__), "weights", "default.json")
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        return f"{text}; re-id default {meta['sha256_12']} ({meta['model_name']})"
    except (OSError, ValueError, KeyError):
        return f"{text}; re-id default: missing"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reid-pipeline",
        description="Multi-camera person tracking and re-identification.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug, and OpenCV/FFmpeg's own messages)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_path in COMMANDS.items():
        module = _load(module_path)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _store_of(args: argparse.Namespace) -> str:
    """The identity store a command works on: ``--store``, else the config's ``store.path`` (``run``)."""
    if getattr(args, "store", None) is not None:
        return f"identity store {args.store}"
    try:
        from pipeline.camconfig import load_cams_config

        return f"identity store {load_cams_config(args.config).store.path}"
    except Exception:  # noqa: BLE001 - no config to name it by
        return "the identity store"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    if args.verbose < 2:  # OpenCV's and FFmpeg's own retry chatter (one line per failed connect) stays off
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # stderr unless -vv; the camera's state says it once
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pipeline.sources.redact import RedactFilter, redact_text  # credentials never reach a log or an error

    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactFilter())
    try:
        return int(args._run(args) or 0)
    except ReidPipelineError as exc:
        print(f"reid-pipeline: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:  # locked, closed, a programming error: not the file's content
            raise
        # damage the open does not detect ("database disk image is malformed" from a page read later)
        print(f"reid-pipeline: error: {redact_text(_store_of(args))}: damaged SQLite file ({exc}); restore it from"
              " a backup (or try: sqlite3 FILE .recover)", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave cannot be made or written (a file where a folder goes, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"reid-pipeline: error: {redact_text(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reid-pipeline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
