"""The daemon guard the root conftest runs after the last test: it finds a gpg-agent a GNUPGHOME under the run's
temporary directory started, and stopping it leaves none."""
from __future__ import annotations

import subprocess

from tests.support.daemons import gpg_agents_under, stop_gpg_agent, wait_gone


def test_an_agent_started_under_a_directory_is_found_and_stopping_it_leaves_none(tmp_path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(["gpg-connect-agent", "--homedir", str(home), "/bye"], check=True, capture_output=True, timeout=30)
    try:
        found = gpg_agents_under(tmp_path)
        assert list(found.values()) == [str(home)], found
        assert gpg_agents_under(tmp_path / "elsewhere") == {}
    finally:
        stop_gpg_agent(home)
    assert wait_gone(tmp_path) == {}
