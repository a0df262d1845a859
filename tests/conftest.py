"""Shared fixtures: real servers on loopback. Area-specific fixtures live beside their tests."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.support.daemons import stop_gpg_agent, wait_gone
from tests.support.images import seeded_registry  # noqa: F401  (session fixture: demo images in `registry`)
from tests.support.lab import lab_image, lab_nodes  # noqa: F401  (lab fixtures, see docs/lab.md)
from tests.support.os_repo import debian_repo  # noqa: F401  (session fixture: Debian 12 packages, network)
from tests.support.servers import run_file_server, run_registry
from tests.support.sources import demo_sources  # noqa: F401  (chart repo, files, tiny model on loopback)

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"

# Host tools installed by .ci/setup-host.sh (cosign, helm) and the project's containers.conf.
os.environ["PATH"] = f"{TOOLS / 'bin'}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"
os.environ.setdefault("CONTAINERS_CONF", str(TOOLS / "containers.conf"))
# medai's state defaults to /var/lib/medai: tests that set no MEDAI_HOME get a private one instead
os.environ.setdefault("MEDAI_HOME", tempfile.mkdtemp(prefix="medai-test-home-"))


@pytest.fixture(scope="session", autouse=True)
def no_daemon_left_behind(tmp_path_factory):
    """After the last test: every gpg-agent a test's GNUPGHOME started (under this run's temporary directory) has
    been stopped by its fixture; one still running is stopped here and fails the run, naming its GNUPGHOME."""
    yield
    base = tmp_path_factory.getbasetemp()
    left = sorted(set(wait_gone(base, timeout=2.0).values()))
    for home in left:
        stop_gpg_agent(home)
    assert not left, f"gpg-agent left running (stop it at teardown: gpgconf --homedir HOME --kill all): {', '.join(left)}"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """Anonymous Debian docker-registry on 127.0.0.1 (plain HTTP, as allowed for loopback)."""
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    """docker-registry with htpasswd basic auth (user medai / password from the fixture)."""
    with run_registry(tmp_path_factory.mktemp("auth-registry"), "medai", "s3cret-registry-pass") as reg:
        yield reg


@pytest.fixture(scope="session")
def file_server(tmp_path_factory):
    """HTTP server with Range support over a directory the test fills (FileServer.root)."""
    root = tmp_path_factory.mktemp("www")
    with run_file_server(root) as srv:
        yield srv
