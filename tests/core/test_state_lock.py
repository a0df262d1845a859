"""One state lock per MEDAI_HOME: a second command that writes state fails at once, naming
the holder's PID and command; the kernel lets go of a dead holder's lock."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from installer.core import statelock
from installer.core.errors import StateError
from installer.deploy.state import new_run

HOLDER = """
import sys, time
from pathlib import Path
from installer.deploy.state import new_run
inv = Path(sys.argv[1])
rec = new_run("install", inv, home=Path(sys.argv[2]))
(rec.dir / "secret-vars.json").write_text("{}")
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def inv(tmp_path):
    p = tmp_path / "site.yml"
    p.write_text("all: {}\n")
    return p


def test_second_concurrent_command_fails_at_once_naming_the_holder(tmp_path, inv):
    home = tmp_path / "home"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(inv), str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(StateError, match=rf"{home / '.lock'}: the state directory is in use by PID {holder.pid} "
                                             r"\(.*\)"):
            new_run("upgrade", inv, home=home)
        assert time.monotonic() - started < 2
        run = next((home / "runs").iterdir())
        assert (run / "secret-vars.json").exists(), "the second command swept the first one's secret vars"
    finally:
        holder.kill()
        holder.wait()
    # the holder died (SIGKILL): its lock went with it; the next command sweeps its record as interrupted
    rec = new_run("verify", inv, home=home)
    assert not (run / "secret-vars.json").exists()
    rec.finish("successful")
    assert not statelock.holding(home)


def test_the_lock_counts_nested_holders_in_one_process(tmp_path, inv):
    home = tmp_path / "home"
    outer = new_run("upgrade", inv, home=home)
    inner = new_run("verify", inv, home=home)
    inner.finish("successful")
    inner.finish("successful")  # finishing twice lets go once
    assert statelock.holding(home)
    outer.finish("successful")
    assert not statelock.holding(home)
