"""The Ray executor (``executor.kind: ray`` in cams.yaml; docs/scaling.md).

messages.py (what camera actors send the matcher), camera_actor.py (one camera: source -> detector ->
encoder -> tracker -> tracklets), matcher_runner.py (the matcher + store actor: the local runner with
its cameras replaced by remote ones), executor.py (connects to the cluster, places the actors, restarts
the matcher). ``ray`` is imported inside functions only.
"""
