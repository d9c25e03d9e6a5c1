"""The runner's side of online adaptation: crops into the store, a background worker, hot swaps.

:class:`LiveAdaptation` is created by the runner when ``adapt.enabled``:

* its :class:`~pipeline.adaptation.crops.CropKeeper` collects crops of open
  tracks; the identity assigner stores them with each final tracklet;
* with ``adapt.background`` it starts :func:`background_loop` in a separate
  *process* (spawned, ``nice``-d, ``adapt.threads`` torch threads) so training
  never holds the pipeline's GIL or its torch thread pool; the process talks to
  the runner only through the store (SQLite WAL allows both);
* :meth:`LiveAdaptation.poll` (every ``poll_s``) compares the store's deployed
  version with the encoder's and hot-swaps on a change (new version or a
  rollback): ``AppearanceEncoder.load_state`` (atomic), the assigner stores
  new tracklets under the new version, and the in-memory gallery prototypes
  are recomputed from the member tracklets' embeddings of that version.

Known limit: embeddings of tracks open during a swap mix the two versions
until those tracks end.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections import defaultdict

import numpy as np

from pipeline.adaptation.crops import CropKeeper
from pipeline.adaptation.settings import AdaptSettings
from pipeline.core.errors import ReidPipelineError

log = logging.getLogger(__name__)


def refresh_prototypes(store, matcher, version: str) -> dict:
    """Prototype of each identity with tracklets embedded by ``version`` := the mean of those embeddings,
    in the store (so that paged-out identities, an index rebuilt from the store and a restarted run see
    the new model's prototypes) and in the matcher's memory; an ANN index in force is rebuilt in the new
    space (:meth:`CrossCameraMatcher.replace_prototypes`). Returns {"in_memory", "paged_out",
    "index_rebuilt"}."""
    from reid_models.adaptation.trainer import mean_vector

    by_gid: dict[int, list[np.ndarray]] = defaultdict(list)
    for t in store.tracklets(model_version=version, with_arrays=False):
        if t.global_id is not None and version in t.embeddings:
            by_gid[t.global_id].append(t.embeddings[version])
    protos = {g: mean_vector(np.stack(v)) for g, v in by_gid.items()}
    store.set_prototypes(protos, model_version=version)  # tagged: a later run's gallery filters by version
    matcher.use_model_version(version)  # page the re-tagged identities, not the old model's
    return matcher.replace_prototypes(protos)


def swap_to(store, encoder, version: str) -> None:
    """Load ``version``'s stored weights into the running encoder (atomic ``load_state``)."""
    from reid_models.adaptation.weights import model_from_weights

    weights = store.model_weights(version)
    if weights is None:
        raise ReidPipelineError(f"{store.path}: model version {version!r} has no stored weights")
    model = model_from_weights(weights, f"{store.path}:{version}")
    encoder.load_state(model.state_dict(), version, camera_bn=model.camera_bn)  # with its per-camera statistics


def adopt_deployed_version(store, encoder) -> str | None:
    """Swap the store's deployed model version into ``encoder`` when it is another one with stored weights
    (an adapted store): what ``run`` does at start with ``adapt.enabled``, for the readers of a store
    (``serve``'s photo search, ``query --image``). Tracklets recorded after a hot swap carry embeddings of
    the deployed version only, so a probe embedded by the base model would never see them. Returns the
    adopted version, or None when the encoder already is it, the store has none, or cannot swap (ONNX)."""
    version = store.deployed_version()
    if version is None or version == encoder.version or store.model_weights(version) is None:
        return None
    if getattr(encoder, "model", None) is None:
        log.warning("%s: deployed model version %s not adopted: the encoder backend cannot load weights",
                    store.path, version)
        return None
    swap_to(store, encoder, version)
    return version


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the CLI's (pipeline/cli.py)


def _child_logging(level: int) -> None:
    """The spawned worker starts with bare logging (its lines would reach stderr unformatted through logging's
    last resort): the CLI's format at the runner's ``level``, credentials redacted."""
    from pipeline.sources.redact import RedactFilter

    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(level)


def background_loop(store_path: str, settings: dict, checkpoint: str | None, non_overlapping: bool,
                    stop, rounds_done=None, log_level: int = logging.WARNING) -> None:
    """Body of the background process: a round every ``interval_s`` once enough new tracklets have crops.
    ``log_level``: the runner's, for the worker's log lines (same format as the runner's)."""
    import os

    import torch

    _child_logging(log_level)

    from pipeline.adaptation.worker import adapt_once
    from pipeline.store import IdentityStore

    cfg = AdaptSettings.model_validate(settings)
    try:
        os.nice(cfg.nice)
    except OSError:
        pass
    torch.set_num_threads(cfg.threads)
    last = 0
    with IdentityStore(store_path, mode="shared") as store:  # the runner holds the writer lock
        while not stop.wait(cfg.interval_s):
            n = len(store.crop_counts())
            if n - last < cfg.min_new_tracklets:
                continue
            try:
                rep = adapt_once(store, cfg, checkpoint, non_overlapping, should_stop=stop.is_set)
                log.warning("adaptation round: %s (%d steps, %.0f s)", rep.reason, rep.steps, rep.total_s)
            except ReidPipelineError as exc:
                log.warning("adaptation round skipped: %s", exc)
            last = n
            if rounds_done is not None:
                with rounds_done.get_lock():
                    rounds_done.value += 1


class LiveAdaptation:
    """Owned by the runner for one run; see the module docstring."""

    def __init__(self, settings: AdaptSettings, store, encoder, matcher, assigner, keeper: CropKeeper,
                 checkpoint: str | None = None, non_overlapping: bool = True) -> None:
        """``keeper``: the crop keeper the assigner was built with (the runner feeds it every frame)."""
        self.settings = settings
        self.store, self.encoder, self.matcher, self.assigner = store, encoder, matcher, assigner
        self.checkpoint, self.non_overlapping = checkpoint, non_overlapping
        self.keeper = keeper
        self.swaps: list[dict] = []
        self._last_poll = -float("inf")
        self._proc = None
        self._stop = None
        self.rounds = None

    def start(self) -> None:
        """Register the running encoder as a version, adopt the store's deployed one, start the worker."""
        self._register_encoder()
        self.poll(force=True)
        if self.settings.background:
            ctx = mp.get_context("spawn")
            self._stop, self.rounds = ctx.Event(), ctx.Value("i", 0)
            self._proc = ctx.Process(
                target=background_loop, name="reid-adaptation", daemon=True,
                args=(str(self.store.path), self.settings.model_dump(), self.checkpoint, self.non_overlapping,
                      self._stop, self.rounds, logging.getLogger().getEffectiveLevel()))
            self._proc.start()
            log.info("adaptation worker started (pid %d)", self._proc.pid)

    def _register_encoder(self) -> None:
        from reid_models.adaptation.weights import checkpoint_bytes

        known = {v.version for v in self.store.model_versions()}
        if self.encoder.version in known or self.encoder.model is None:
            return
        blob = checkpoint_bytes(self.encoder.model, self.encoder.state_dict(), {"source": "pipeline encoder"},
                                camera_bn=self.encoder.camera_bn)
        self.store.add_model_version(self.encoder.version, weights=blob, metrics={"source": "pipeline encoder"},
                                     deployed=self.store.deployed_version() is None)

    def poll(self, force: bool = False) -> bool:
        """Hot-swap when the store's deployed version changed; True when it swapped."""
        now = time.monotonic()
        if not force and now - self._last_poll < self.settings.poll_s:
            return False
        self._last_poll = now
        version = self.store.deployed_version()
        if version is None or version == self.encoder.version:
            return False
        old = self.encoder.version
        t0 = time.perf_counter()
        swap_to(self.store, self.encoder, version)  # read the weights from the store + load_state
        t1 = time.perf_counter()
        self.assigner.model_version = version
        refreshed = refresh_prototypes(self.store, self.matcher, version)
        n = refreshed["in_memory"]
        self.matcher.reset_calibration()  # new weights, new distance scale: re-sample known-different pairs
        t2 = time.perf_counter()
        self.swaps.append({"from": old, "to": version, "prototypes_refreshed": n,
                           "paged_out_refreshed": refreshed["paged_out"], "index_rebuilt": refreshed["index_rebuilt"],
                           "t": time.time(),
                           "load_s": round(t1 - t0, 4), "prototypes_s": round(t2 - t1, 4),
                           "swap_s": round(t2 - t0, 4)})
        log.warning("re-id model hot-swapped %s -> %s (%d identity prototypes refreshed, %.3f s)", old, version, n,
                    t2 - t0)
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._proc is None:
            return
        self._stop.set()
        self._proc.join(timeout_s)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._proc = None

    def summary(self) -> dict:
        return {"swaps": self.swaps, "deployed_version": self.store.deployed_version(),
                "encoder_version": self.encoder.version,
                "background_rounds": None if self.rounds is None else int(self.rounds.value)}
