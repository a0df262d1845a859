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

try:
    from _pytest.nodeid import coerce_node_id  # pytest >= 9
except ImportError:  # pytest 8: the nodeid is a plain string
    coerce_node_id = None

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"

# Host tools installed by .ci/setup-host.sh (cosign, helm) and the project's containers.conf.
os.environ["PATH"] = f"{TOOLS / 'bin'}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"
os.environ.setdefault("CONTAINERS_CONF", str(TOOLS / "containers.conf"))
# medai's state defaults to /var/lib/medai: tests that set no MEDAI_HOME get a private one instead, one per
# pytest-xdist worker (a worker inherits the controller's environment, and the state lock is per MEDAI_HOME)
if "MEDAI_HOME" not in os.environ or os.environ.get("MEDAI_TEST_OWN_HOME"):
    os.environ["MEDAI_HOME"] = tempfile.mkdtemp(prefix="medai-test-home-")
    os.environ["MEDAI_TEST_OWN_HOME"] = "1"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """pytest-xdist work units (`-n 2 --dist loadgroup` in pyproject.toml): the `lab` tests and the tests that fill
    the OS package cache the lab's bundles read (apt runs there without its lock: the `debian_repo` fixture, or
    marked `xdist_group("serial")`) form one unit, so they run one after another in one worker while the other worker
    takes the rest; a test marked `xdist_group(name)` joins that group; every other module is one unit, so its module
    fixtures are set up once.
    The unit is the suffix `@name` that loadgroup reads from the nodeid; it is written here because pytest-xdist 3.8
    writes it where pytest 9 no longer reads it."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers only
        return
    for item in items:
        marked = item.get_closest_marker("xdist_group")
        if item.get_closest_marker("lab") or "debian_repo" in item.fixturenames:
            group = "serial"
        elif marked:
            group = str(marked.args[0] if marked.args else marked.kwargs.get("name", "default"))
        else:
            group = item.nodeid.split("::", 1)[0]
        _set_nodeid(item, f"{item.nodeid}@{group}")


def _set_nodeid(item: pytest.Item, nodeid: str) -> None:
    if coerce_node_id is not None:
        item._id = coerce_node_id(nodeid)
    else:
        item._nodeid = nodeid


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
