"""The operator console: FastAPI app over the identity store and the runner's latest frames (docs/console.md).

``security`` (bind and token rules), ``live`` (latest annotated frame per camera, published by the runner),
``data`` (read-side queries the pages need), ``timeline`` (an identity's SVG timeline), ``search`` (photo
search: upload checks, probe embedding, ranking), ``app`` (routes and templates), ``server`` (uvicorn in a
thread, for ``run`` with ``ui.enabled``, or in the foreground for ``reid-pipeline serve``).
"""
