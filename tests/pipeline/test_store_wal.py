"""The identity store's ``-wal`` file stays bounded under a batch run's checkpointer (s44 probe_store 1).

A batch run keeps a write transaction open between its resume checkpoints and opened the next one right after
each commit, so SQLite never found the moment to rewind the log: the ``-wal`` file grew by everything the run
wrote (28 MB in 80 s of two cameras, 803 MB in 45 s with ``checkpoint_every_s: 0``). Here the real
:class:`~pipeline.runner.checkpoint.Checkpointer` commits 40 checkpoints of ~256 KiB each: the log must stay
within a few commits' size, not grow to the 10 MiB they add up to.
"""

from __future__ import annotations

import os

from pipeline.runner.checkpoint import Checkpointer, RunState
from pipeline.store import IdentityStore


def test_batch_checkpoints_keep_the_wal_bounded(tmp_path):
    path = tmp_path / "ids.sqlite"
    store = IdentityStore(path)
    try:
        run_id = store.begin_run("wal-test")
        ck = Checkpointer(store, run_id, "fingerprint", every_s=0.0)
        ck.begin()
        sizes = []
        for i in range(40):
            state = RunState(cameras={}, matcher=None, assigner={}, timeline=os.urandom(256 * 1024))
            ck.commit(state)
            sizes.append(os.path.getsize(str(path) + "-wal"))
        ck.end()
    finally:
        store.close()
    assert max(sizes[10:]) < 4 * 1024 * 1024, sizes  # a few commits' pages, not the 10 MiB written


def test_query_id_beyond_sqlite_integers_is_a_usage_error(tmp_path, capsys):
    """s44 probe_store 6: ``query --id 9223372036854775808`` was an OverflowError traceback."""
    import pytest

    from pipeline.cli import main

    store = IdentityStore(tmp_path / "ids.sqlite")
    store.close()
    with pytest.raises(SystemExit) as e:
        main(["query", "--store", str(tmp_path / "ids.sqlite"), "--id", str(2**63)])
    assert e.value.code == 2 and "out of range for a stored id" in capsys.readouterr().err
