"""The one skeleton of a recorded command (installer.deploy.state.recorded) and a record running again (reopen):
the record is finished once, the state lock is held exactly while the command runs."""
from __future__ import annotations

import json

import pytest

from installer.core import statelock
from installer.core.errors import InstallError
from installer.deploy.state import recorded


@pytest.fixture
def inv(tmp_path):
    p = tmp_path / "site.yml"
    p.write_text("all: {}\n")
    return p


def _saved(record) -> dict:
    return json.loads((record.dir / "run.json").read_text())


def test_a_recorded_command_is_finished_once_and_lets_the_lock_go(tmp_path, inv):
    home = tmp_path / "home"
    with recorded("certs", inv, ok="ok", home=home) as rec:
        assert statelock.holding(home) and _saved(rec)["result"] == "running"
        rec.data["summary"] = {"certificates": 3}
    assert not statelock.holding(home)
    assert {k: _saved(rec)[k] for k in ("result", "summary")} == {"result": "ok", "summary": {"certificates": 3}}

    with pytest.raises(InstallError), recorded("rollback", inv, home=home) as rec:
        raise InstallError("K3s restore failed: srv1: etcd restore: exit 1\nsecond line not kept")
    assert not statelock.holding(home)
    assert (_saved(rec)["result"], _saved(rec)["error"]) == ("failed", "K3s restore failed: srv1: etcd restore: exit 1")

    with pytest.raises(KeyboardInterrupt), recorded("backup-create", inv, home=home) as rec:
        raise KeyboardInterrupt
    assert (_saved(rec)["result"], _saved(rec)["error"]) == ("failed", "KeyboardInterrupt")


def test_a_step_may_finish_the_record_itself_and_reopen_takes_the_lock_again(tmp_path, inv):
    home = tmp_path / "home"
    with pytest.raises(InstallError), recorded("reset", inv, home=home) as rec:
        rec.finish("failed", error="platform: release vault: uninstall: timed out")  # the platform step's own
        assert not statelock.holding(home)
        rec.reopen()  # the reset goes on to the hosts: running again, under the lock
        assert statelock.holding(home) and "finished" not in _saved(rec) and _saved(rec)["result"] == "running"
        raise InstallError("reset failed (1 failed): srv1: unreachable")
    assert not statelock.holding(home)
    assert _saved(rec)["error"] == "reset failed (1 failed): srv1: unreachable"
