"""``reid-pipeline serve``: the operator console (web pages + JSON API) over an identity store.

    reid-pipeline serve --store runs/demo_pets/identities.sqlite [--config cams.yaml] [--host H] [--port P]

Reads the store read-only (a run may be writing it meanwhile). ``--config`` supplies the encoder for photo
search, the camera list (sources shown redacted) and the ``ui:`` defaults for host, port and token. A
non-loopback ``--host`` needs a token (``--token``, ``REID_UI_TOKEN`` or ``ui.token``): without one the
command refuses to start with one line. While ``run`` works, ``ui: {enabled: true}`` serves the same
console with live camera tiles instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "serve the web console (cameras, identities, timelines, photo search, events, JSON API) for a store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=None, help="identity store (default: store.path of --config)")
    parser.add_argument("--config", type=Path, default=None, help="cams.yaml: encoder, cameras and ui: defaults")
    parser.add_argument("--host", default=None, help="bind address (default: ui.host or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: ui.port or 8080; 0 = any free)")
    parser.add_argument("--token", default=None,
                        help="required from clients (default: $REID_UI_TOKEN or ui.token); needed off loopback")
    parser.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                        help="another Host name the console answers to without a token, e.g. a reverse proxy's"
                             " (repeatable; default: $REID_UI_ALLOWED_HOSTS, comma-separated, else ui.allowed_hosts). Loopback names and"
                             " addresses are always accepted; with a token any Host is")
    parser.add_argument("--checkpoint", default="default",
                        help="encoder for photo search without --config: 'default' (an adapted store's deployed"
                             " version when it has one), 'imagenet' or a checkpoint path")


def encoder_factory(cfg, checkpoint: str, store_path: Path | None = None):
    """() -> AppearanceEncoder: the config's encoder, else ``checkpoint`` (built on the first search).

    An adapted store's deployed model version (``store_path``) replaces it, as ``run`` does with
    ``adapt.enabled``: with ``--config`` when its ``adapt.enabled``, without when ``checkpoint`` is
    ``default`` (an explicit checkpoint or ``imagenet`` is used as given)."""
    def build():
        if cfg is not None:
            from pipeline.runner.components import build_encoder

            enc = build_encoder(cfg)
            adopt = cfg.adapt.enabled
        else:
            from reid_models.encoder import AppearanceEncoder

            if checkpoint == "imagenet":
                return AppearanceEncoder.imagenet_baseline(device="auto")
            enc = AppearanceEncoder.from_checkpoint(None if checkpoint == "default" else Path(checkpoint),
                                                    device="auto")
            adopt = checkpoint == "default"
        if adopt and store_path is not None:
            from pipeline.adaptation.live import adopt_deployed_version
            from pipeline.store import IdentityStore

            with IdentityStore(store_path, mode="read") as store:
                adopt_deployed_version(store, enc)
        return enc

    return build


def run(args: argparse.Namespace) -> int:
    from pipeline.camconfig import check_ui_access, ui_allowed_hosts, ui_token
    from pipeline.core.errors import ConfigError, DataError
    from pipeline.web.server import ConsoleServer

    cfg = None
    if args.config is not None:
        from pipeline.camconfig import load_cams_config

        cfg = load_cams_config(args.config)
    ui = cfg.ui if cfg is not None else None
    host = args.host or (ui.host if ui else "127.0.0.1")
    port = args.port if args.port is not None else (ui.port if ui else 8080)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: {port} is not a port number (0-65535)")
    token, token_key = ui_token(args.token, ui)  # --token, else $REID_UI_TOKEN, else ui.token (as run reads it)
    check_ui_access(host, token, "--host", token_key)  # before anything is opened or loaded
    allowed = ui_allowed_hosts(getattr(args, "allow_host", None), ui)  # --allow-host, else $REID_UI_ALLOWED_HOSTS, else ui.allowed_hosts
    store = args.store or (Path(cfg.store.path) if cfg is not None else None)
    if store is None:
        raise ConfigError("serve: give --store FILE (or --config with store.path)")
    if store.is_dir():
        raise DataError(store, "is a folder, not an identity store (give the .sqlite file)")
    if not store.is_file():
        raise DataError(store, "no such identity store")
    cameras = {c.id: c.display_uri() for c in cfg.cameras} if cfg is not None else {}
    server = ConsoleServer(store, encoder_factory(cfg, args.checkpoint, store), host, port, token,
                           cameras=cameras, allowed_hosts=allowed)
    server.reserve()  # a taken port fails here, before the store is opened
    server.serve_forever()
    return 0
