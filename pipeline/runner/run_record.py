"""What determines a batch run's results, recorded with its run so that a re-run can tell whether it may reuse it.

A run's results (tracklets, identities, events) follow from its **settings** (the config sections that change
detection, tracking, embedding or matching; not where outputs go, the store, the console, health, the executor or
thread counts) and its **inputs** (what each camera's file or image folder holds). :class:`RunRecord` holds both:
the settings flattened to dotted key paths (``matching.threshold``), and per camera a cheap content fingerprint of
its input (:func:`input_fingerprint`: size plus a SHA-1 of the first MiB of a file; the names and sizes of a
folder's files), so a recording replaced at the same path is a different input while a copy with a new
modification time is not.

The runner (:mod:`pipeline.runner.loop`) stores the record beside the run row (``runs.record_json``) and
compares it with :func:`changes` before reusing a run key: a run without an explicit ``run_key`` gets its key
from :func:`default_run_key` (config and inputs), so other settings or other footage make another run; an
explicit ``run_key`` whose stored run was made with other settings or inputs is refused (:class:`RunMismatchError`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError

#: top-level config sections that do not change a run's results
NON_RESULT_SECTIONS = ("run_key", "store", "outputs", "health", "ui", "executor", "demo")
#: dotted keys (regular expressions) inside the result sections that do not change results either
NON_RESULT_KEYS = re.compile(r"^(detector\.(threads|streams|model_cache)|encoder\.(threads|batch_size)"
                             r"|adapt\.(threads|nice|poll_s)|cameras\.\d+\.give_up_after_s)$")
HEAD_BYTES = 1 << 20  # the part of a file hashed: what tells two recordings apart cheaply
_MAX_LISTED = 4  # changed keys named in one error line


class RunMismatchError(ConfigError):
    """An explicit ``run_key`` whose stored run was made with other settings or inputs (one line)."""


def input_fingerprint(source: str) -> dict | None:
    """A cheap content fingerprint of a local file ({size, head_sha1}) or folder ({files, listing_sha1}: the
    names and sizes of its files); None for a stream, a webcam or anything that is not on disk."""
    p = Path(source)
    try:
        if p.is_file():
            h = hashlib.sha1()
            with open(p, "rb") as f:
                h.update(f.read(HEAD_BYTES))
            return {"size": p.stat().st_size, "head_sha1": h.hexdigest()}
        if p.is_dir():
            files = sorted((e.name, e.stat().st_size) for e in p.iterdir() if e.is_file())
            listing = hashlib.sha1(json.dumps(files).encode()).hexdigest()
            return {"files": len(files), "listing_sha1": listing}
    except OSError:
        return None
    return None


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}.{i}", out)
    else:
        out[prefix] = value


def result_settings(config: dict) -> dict[str, Any]:
    """The settings of a config dump (``CamsConfig.model_dump(mode="json")``, credentials redacted) that change a
    run's results, flattened to dotted keys."""
    out: dict[str, Any] = {}
    _flatten({k: v for k, v in config.items() if k not in NON_RESULT_SECTIONS}, "", out)
    return {k: v for k, v in out.items() if not NON_RESULT_KEYS.match(k)}


@dataclass(frozen=True)
class RunRecord:
    """What determines a run's results: its result settings (dotted keys) and its cameras' input fingerprints."""

    settings: dict[str, Any]
    inputs: dict[str, dict | None] = field(default_factory=dict)

    @classmethod
    def of(cls, config: dict, sources: dict[str, str]) -> RunRecord:
        """The record of a config dump (credentials redacted) and its cameras' resolved sources (camera id ->
        path or URI; fingerprints taken now)."""
        return cls(result_settings(config), {cid: input_fingerprint(src) for cid, src in sources.items()})

    def digest(self) -> str:
        """A short hash of settings and inputs."""
        blob = json.dumps({"settings": self.settings, "inputs": self.inputs}, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps({"settings": self.settings, "inputs": self.inputs, "digest": self.digest()}, sort_keys=True)

    @classmethod
    def from_stored(cls, config_json: str | None, record_json: str | None) -> RunRecord | None:
        """The record of a stored run: ``record_json`` when the run has one, else the settings of its stored
        config with no input fingerprints (a run made before records existed); None when neither can be read."""
        for text, from_config in ((record_json, False), (config_json, True)):
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = None
            if isinstance(data, dict) and data:
                if from_config:
                    return cls(result_settings(data), {})
                return cls(dict(data.get("settings") or {}), dict(data.get("inputs") or {}))
        return None


def default_run_key(config_fingerprint: str, record: RunRecord) -> str:
    """A batch run's key when the config sets none: the config's fingerprint and the inputs' content, so a
    changed config or a replaced recording makes another run."""
    inputs = json.dumps(record.inputs, sort_keys=True)
    return f"batch-{hashlib.sha1((config_fingerprint + inputs).encode()).hexdigest()[:12]}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def changes(old: RunRecord, new: RunRecord) -> list[str]:
    """What differs between a stored run's record and this run's, as short phrases (empty: the same run).

    Keys that only one side has (a setting added or removed by another program version) are not compared, nor
    the inputs of a run recorded without fingerprints."""
    out = [f"{k} {_short(old.settings[k])} -> {_short(new.settings[k])}"
           for k in sorted(old.settings.keys() & new.settings.keys()) if old.settings[k] != new.settings[k]]
    for cam in sorted(old.inputs.keys() & new.inputs.keys()):
        a, b = old.inputs[cam], new.inputs[cam]
        if a is not None and b is not None and a != b:
            what = f"{a.get('size')} -> {b.get('size')} bytes" if "size" in a and a.get("size") != b.get("size") \
                else "same size, other content" if "size" in a else "other files"
            out.append(f"camera {cam}'s input changed ({what})")
    return out


def mismatch_message(run_key: str, store: str | Path, diffs: list[str]) -> str:
    """The one line refusing an explicit ``run_key`` whose stored run had other settings or inputs."""
    shown = "; ".join(diffs[:_MAX_LISTED]) + (f"; and {len(diffs) - _MAX_LISTED} more" if len(diffs) > _MAX_LISTED
                                              else "")
    return (f"run_key {run_key!r} in {store} was made with other settings or inputs ({shown}); reusing it would"
            " keep its old results: set a new run_key (or remove run_key), or use a fresh store.path")
