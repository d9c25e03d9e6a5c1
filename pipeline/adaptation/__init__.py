"""Online adaptation of the re-id encoder from the identity store (seed 002 §3.2).

* :mod:`.settings` — the ``adapt:`` section of cams.yaml;
* :mod:`.crops` — keeps a few crops per open track so finished tracklets carry them into the store;
* :mod:`.data` — stored tracklets + crops -> training/hold-out sets;
* :mod:`.worker` — one adaptation round: mine, fine-tune, guardrail, version, re-embed, deploy;
* :mod:`.live` — the runner's side: background process, hot swap of deployed versions.
"""
