"""``executor.kind: ray``: connect to the Ray cluster, place the actors, drive and restart the matcher.

Placement: one :class:`~pipeline.distributed.camera_actor.CameraWorker` actor per camera, spread over the
nodes (``SPREAD``; each asks ``executor.camera_num_cpus`` / ``camera_num_gpus``); one
:class:`~pipeline.distributed.matcher_runner.MatcherActor`, which writes the SQLite store and the outputs,
pinned to this node (``address: local``) or to the head node of a cluster, which outlives the workers (run
``reid-pipeline run`` on the head, or put ``store.path`` / ``outputs.dir`` on storage the head reaches).
Every actor has ``max_restarts``; a matcher lost mid-run is called again and resumes from the store's last checkpoint. Actors are named
(``camera-<id>``, ``matcher``) in the namespace ``reid-<run key>`` so tools and tests can find them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

from pipeline.camconfig import CamsConfig, ExecutorConfig
from pipeline.core.errors import ReidPipelineError
from pipeline.runner.signals import stop_on_signals

log = logging.getLogger(__name__)
HEAD_RESOURCE = "node:__internal_head__"  # Ray's marker resource of the head node


class RayRunError(ReidPipelineError):
    """The matcher actor's run ended with one of the project's errors (its message, one line)."""


class MatcherLostError(ReidPipelineError):
    """The matcher actor died more often than ``executor.max_restarts`` allows."""


def namespace(run_key: str) -> str:
    """The Ray namespace of a run's named actors."""
    return f"reid-{run_key}"


CONNECT_TIMEOUT_S = 30.0  # how long a cluster address may take to accept a connection
_LOCAL_TOKEN = secrets.token_hex(16)  # the private cluster's auth token (one per process: Ray caches it)


class _PrivateCluster:
    """What ``address: local`` changed for its private cluster, undone by :meth:`undo` after ``ray.shutdown``:
    the loopback-only switch, the auth token in the environment (instead of a file in ``~/.ray``) and the
    cluster's own temp dir (its session logs and sockets, removed)."""

    def __init__(self) -> None:
        import ray._private.ray_constants as rc

        self.temp_dir = tempfile.mkdtemp(prefix="reidray", dir="/tmp" if os.path.isdir("/tmp") else None)  # short: sockets
        self.saved_env = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        if self.saved_env["RAY_AUTH_TOKEN"] is None and self.saved_env["RAY_AUTH_MODE"] is None:
            os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=_LOCAL_TOKEN)
            _refresh_auth()
        # Ray binds its servers (GCS, raylet, workers, agents, metrics) to 127.0.0.1 only when the node's address
        # is loopback, which it allows only where "clusters" are off (its macOS/Windows default); on Linux it
        # would otherwise replace 127.0.0.1 by the machine's LAN address and listen on every interface.
        self.saved_flag = rc.ENABLE_RAY_CLUSTER
        rc.ENABLE_RAY_CLUSTER = False

    def undo(self) -> None:
        import ray._private.ray_constants as rc

        rc.ENABLE_RAY_CLUSTER = self.saved_flag
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _refresh_auth()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _refresh_auth() -> None:
    """Ray's process-wide auth mode and token caches re-read the environment (as ``ray.init`` does when it turns
    token authentication on; best effort: private Ray APIs)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception:  # noqa: BLE001 - a Ray without them reads the environment at first use
        pass


def _host_port(address: str) -> tuple[str, int]:
    """``host:port`` (``ray://`` stripped, ``[v6]`` unbracketed) of ``executor.address``."""
    hp = address.removeprefix("ray://")
    host, _, port = hp.rpartition(":")
    return host.strip("[]"), int(port)


def _wait_answers(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Until something accepts a TCP connection at ``address`` (at most ``timeout`` s): Ray itself retries an
    unreachable GCS forever. Raises a one-line :class:`ReidPipelineError` naming ``executor.address``."""
    host, port = _host_port(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout)):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ReidPipelineError(f"executor.address: {address}: no Ray cluster answers there "
                                        f"(waited {timeout:.0f} s: {exc.strerror or exc})") from None
            time.sleep(1.0)


def _connect_error(address: str, exc: BaseException) -> ReidPipelineError:
    """One line for a failed ``ray.init(address=...)`` (Ray's own message names its CLI flags)."""
    if address == "auto":
        return ReidPipelineError("executor.address: auto: no Ray cluster was started on this machine (ray start "
                                 "--head, or ray start --address HEAD:PORT); or give executor.address: host:port")
    token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    hint = ("" if token else "; a cluster with token authentication needs RAY_AUTH_MODE=token and its "
            "RAY_AUTH_TOKEN in this environment (RAY_AUTH_TOKEN is not set)")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ReidPipelineError(f"executor.address: {address}: cannot connect to the Ray cluster ({first}){hint}")


def connect(ex: ExecutorConfig, ns: str, need_cpus: float = 1.0) -> _PrivateCluster | bool:
    """``ray.init`` for ``executor.address`` (local: a private one-node cluster without dashboard, every server
    on 127.0.0.1, its temp dir removed by :func:`disconnect`); truthy when this call connected (and
    :func:`run_on_ray` must :func:`disconnect`). A cluster address that nothing answers at within
    :data:`CONNECT_TIMEOUT_S`, or that refuses us, is a one-line error naming ``executor.address``."""
    import ray

    if ray.is_initialized():
        return False
    kw = {"namespace": ns, "logging_level": logging.WARNING, "log_to_driver": True}
    if ex.address == "local":  # logical CPUs enough for every actor (they share the machine's cores)
        private = _PrivateCluster()
        try:
            ray.init(include_dashboard=False, num_cpus=max(os.cpu_count() or 1, math.ceil(need_cpus)),
                     _node_ip_address="127.0.0.1", _temp_dir=private.temp_dir, **kw)
        except BaseException:
            private.undo()
            raise
        return private
    if ex.address.startswith("ray://") and importlib.util.find_spec("grpc") is None:  # what Ray Client checks
        raise ReidPipelineError(f"executor.address: {ex.address}: Ray Client (ray://) needs the package ray[client] "
                                "(pip install 'ray[client]'), which is not installed; or give the cluster's GCS "
                                "address host:port")
    if ex.address != "auto":
        _wait_answers(ex.address)
    try:
        ray.init(address=ex.address, **kw)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        raise _connect_error(ex.address, exc) from None
    return True


def disconnect(own: _PrivateCluster | bool) -> None:
    """``ray.shutdown`` after :func:`connect` connected; a private cluster's changes are undone."""
    import ray

    if own:
        ray.shutdown()
    if isinstance(own, _PrivateCluster):
        own.undo()


def check_resources(cfg: CamsConfig) -> None:
    """A clear error when the cluster's logical CPUs / GPUs cannot hold every actor at once (Ray would
    otherwise wait for them forever)."""
    import ray

    ex, n = cfg.executor, len(cfg.cameras)
    have = ray.cluster_resources()
    for res, need in (("CPU", n * ex.camera_num_cpus + ex.matcher_num_cpus), ("GPU", n * ex.camera_num_gpus)):
        if need > have.get(res, 0.0) + 1e-9:
            raise ReidPipelineError(
                f"executor: {n} cameras x {res.lower()} {getattr(ex, 'camera_num_' + res.lower() + 's')}"
                f"{' + matcher ' + str(ex.matcher_num_cpus) if res == 'CPU' else ''} = {need:g} {res}s, but the Ray"
                f" cluster has {have.get(res, 0.0):g}; lower executor.camera_num_{res.lower()}s or add nodes")


def run_key_of(cfg: CamsConfig) -> tuple[CamsConfig, str]:
    """(config, run key): live runs without ``run_key`` get one fixed here, so a restarted matcher
    continues the same run."""
    if cfg.run_key is None and cfg.mode == "live":
        cfg = cfg.model_copy(update={"run_key": f"live-{time.time():.0f}"})
    return cfg, cfg.run_key or f"batch-{cfg.fingerprint()}"


def start_actors(cfg: CamsConfig, out_dir: Path | None, max_frames: int | None) -> tuple[dict, object, dict]:
    """Create the camera actors and the matcher actor (after every camera built its models); returns
    (camera actors by id, matcher actor, camera id -> info: pid and node)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from pipeline.distributed.camera_actor import CameraWorker
    from pipeline.distributed.matcher_runner import MatcherActor

    ex = cfg.executor
    cam_cls = ray.remote(CameraWorker)
    workers = {
        c.id: cam_cls.options(name=f"camera-{c.id}", num_cpus=ex.camera_num_cpus, num_gpus=ex.camera_num_gpus,
                              max_restarts=ex.max_restarts, scheduling_strategy="SPREAD").remote(cfg, c.id, max_frames)
        for c in cfg.cameras
    }
    infos = ray.get([w.info.remote() for w in workers.values()])  # models built; a bad weights file fails here
    failed = [i for i in infos if i.get("init_error")]
    if failed:  # the project's own one-line error, as the local runner gives it
        raise ReidPipelineError(f"camera {failed[0]['cam_id']}: {failed[0]['init_error']}")
    versions = {i["encoder_version"] for i in infos}
    if len(versions) != 1:
        raise ReidPipelineError(f"the camera actors loaded different encoder versions: {sorted(versions)}")
    if ex.address == "local":
        place = {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                       soft=False)}
    else:  # the head node: it outlives the workers (and holds the store when the driver runs there)
        place = {"resources": {HEAD_RESOURCE: 0.001}}
    matcher = ray.remote(MatcherActor).options(
        name="matcher", num_cpus=ex.matcher_num_cpus, max_restarts=ex.max_restarts, max_concurrency=2, **place,
    ).remote(cfg, workers, versions.pop(), None if out_dir is None else str(out_dir), max_frames)
    return workers, matcher, {i["cam_id"]: {"pid": i["pid"], "node_id": i["node_id"], "threads": i["threads"]}
                              for i in infos}


def run_on_ray(cfg: CamsConfig, out_dir: Path | None = None, max_frames: int | None = None,
               progress: bool = True) -> tuple[dict, str]:
    """Run ``cfg`` on the Ray cluster of ``cfg.executor``; returns (summary, stage table) like the local runner."""
    import ray

    cfg, run_key = run_key_of(cfg)
    ex = cfg.executor
    own = connect(ex, namespace(run_key), len(cfg.cameras) * ex.camera_num_cpus + ex.matcher_num_cpus)
    workers: dict = {}
    matcher = None
    try:
        check_resources(cfg)
        workers, matcher, placed = start_actors(cfg, out_dir, max_frames)
        ready = time.time()  # every actor built its models: the frame loop starts (tools/bench_ray.py)
        summary, table = _drive(cfg, matcher, [c.id for c in cfg.cameras], progress)
        summary.setdefault("executor", {})["actors_ready_at"] = ready
        _record_placement(summary, workers, placed)
        return summary, table + "\n" + _camera_line(summary["executor"]["cameras_ended"])
    finally:
        for actor in [*workers.values(), matcher]:
            if actor is not None:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        disconnect(own)


def _record_placement(summary: dict, workers: dict, placed: dict) -> None:
    """Where each camera ran at the start and at the end (pid, node): summary['executor'] and
    <out>/ray_executor.json (a camera whose pid changed was restarted; whose node changed, moved)."""
    import ray

    ended = {}
    for cid, w in workers.items():
        try:
            i = ray.get(w.info.remote(), timeout=30)
            ended[cid] = {"pid": i["pid"], "node_id": i["node_id"],
                          "stage_s": ray.get(w.timing.remote(), timeout=30)}  # since its last (re)start
        except Exception as exc:  # noqa: BLE001 - a lost camera at the very end is reported, not raised
            ended[cid] = {"error": type(exc).__name__}
    ex = summary.setdefault("executor", {})
    ex.update(cameras_started=placed, cameras_ended=ended, nodes=len({v.get("node_id") for v in ended.values()}))
    out = Path(summary["out_dir"]) / "ray_executor.json"
    out.write_text(json.dumps(ex, indent=1), encoding="utf-8")


def _camera_line(ended: dict) -> str:
    """The camera actors' own stage seconds (the table above is the matcher's: its decode row is the wait
    for camera results)."""
    total: dict[str, float] = {}
    for info in ended.values():
        for stage, sec in (info.get("stage_s") or {}).items():
            total[stage] = total.get(stage, 0.0) + sec
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in total.items()) or "none reported"
    return (f"camera actors (summed over {len(ended)} cameras): {parts}; "
            "the table above is the matcher actor's (its decode row = waiting for camera results)")


def _drive(cfg: CamsConfig, matcher, cam_ids: list[str], progress: bool) -> tuple[dict, str]:
    """Call the matcher's run until it returns; a lost matcher is called again (it resumes from the store)."""
    import ray

    bars = _bars(cam_ids) if progress else {}
    restarts = 0
    try:
        with _stop_on_signal(matcher):
            while True:
                ref = matcher.run.remote()
                try:
                    summary, table = _wait(ref, matcher, bars)
                except ray.exceptions.RayTaskError:  # the run itself raised (not the actor lost): as is
                    raise
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                    restarts += 1
                    if 0 <= cfg.executor.max_restarts < restarts:
                        raise MatcherLostError(f"the matcher actor died {restarts} times "
                                               f"(executor.max_restarts {cfg.executor.max_restarts})") from None
                    log.warning("matcher actor lost (%s); it resumes from the store's last checkpoint",
                                type(exc).__name__)
                    _wait_restarted(matcher)
                    continue
                if "error" in summary:  # the run's own one-line error (config, data, lost camera)
                    raise RayRunError(summary["error"])
                break
    finally:
        for bar in bars.values():
            bar.close()
    summary.setdefault("executor", {})["matcher_restarts"] = restarts
    return summary, table


def _wait_restarted(matcher, timeout: float = 300.0) -> None:
    """Until Ray has restarted the matcher actor (its ``info`` answers); a permanently dead one raises."""
    import ray

    deadline = time.monotonic() + timeout
    while True:
        try:
            ray.get(matcher.info.remote(), timeout=30)
            return
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
            if time.monotonic() > deadline:
                raise MatcherLostError(f"the matcher actor did not come back within {timeout:.0f} s") from None
            time.sleep(0.5)
        except ray.exceptions.ActorDiedError:
            raise MatcherLostError("the matcher actor is gone (executor.max_restarts used up)") from None


def _wait(ref, matcher, bars: dict) -> tuple[dict, str]:
    import ray

    while True:
        ready, _ = ray.wait([ref], timeout=1.0)
        if bars:
            try:
                for cid, n in ray.get(matcher.progress.remote(), timeout=5).items():
                    bars[cid].update(n - bars[cid].n)
            except Exception:  # noqa: BLE001 - progress is best effort (the matcher may be restarting)
                pass
        if ready:
            return ray.get(ref)


def _bars(cam_ids: list[str]) -> dict:
    from tqdm import tqdm

    return {cid: tqdm(desc=cid, unit="fr", position=i, leave=True) for i, cid in enumerate(cam_ids)}


def _stop_on_signal(matcher):
    """SIGINT/SIGTERM -> the matcher stops gracefully (open tracklets flushed); restored afterwards."""
    return stop_on_signals(matcher.request_stop.remote)
