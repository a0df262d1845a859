"""The platform roles' Molecule scenarios (one lab node each: converge, idempotence, verify).

What the lab node can show: the Cilium preflight (this host's kernel and BPF filesystem, and the refusal of an
older kernel), MetalLB's assertions, and Longhorn's prerequisites installed from a real bundle repository
(open-iscsi, nfs-common, multipath-tools from Debian's archive), iscsid's socket listening, iscsiadm answering
and multipathd's blacklist parsed by `multipath -t`. What it cannot: loading iscsi_tcp and starting
iscsid.service itself (the node is a container sharing this host's kernel, which has no iSCSI transport); the
role does both on a real host.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import OsPackages

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MEDAI_TEST_CACHE", Path.home() / ".cache" / "medai-test"))


def _molecule(role: str, **env) -> subprocess.CompletedProcess:
    full = dict(os.environ, MEDAI_SRC=str(ROOT), ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1", **env)
    return subprocess.run(["molecule", "test", "-s", "default"], cwd=ROOT / "roles" / role, env=full,
                          capture_output=True, text=True, timeout=900)


def _check(r: subprocess.CompletedProcess) -> None:
    out = (r.stdout + r.stderr).replace("\x1b", "")
    assert r.returncode == 0, out[-6000:]
    assert "idempotence: Executed: Successful" in out, out[-6000:]


@pytest.mark.parametrize("role", ["cilium", "metallb"])
def test_molecule_node_side(role, lab_image):
    _check(_molecule(role))


@pytest.mark.network
def test_molecule_longhorn_prerequisites(lab_image, tmp_path_factory):
    from installer.collect.ospkgs import collect_os_packages

    layout = BundleLayout.at(tmp_path_factory.mktemp("longhorn-os"))
    collect_os_packages(layout, OsPackages(release="debian-12", packages=[
        "chrony", "auditd", "python3-apt", "open-iscsi", "nfs-common", "multipath-tools"]), cache_dir=CACHE / "ospkgs")
    _check(_molecule("longhorn", MEDAI_OS_TEST_BUNDLE=str(layout.root)))


@pytest.mark.network
def test_molecule_egress_ledger(lab_image, tmp_path_factory):
    """nftables from a bundle repository; a deliberate attempt to 192.0.2.2 in a namespace the test creates on the
    node is counted and reported naming node and destination; absent removes the table."""
    from installer.collect.ospkgs import collect_os_packages

    layout = BundleLayout.at(tmp_path_factory.mktemp("egress-os"))
    collect_os_packages(layout, OsPackages(release="debian-12", packages=[
        "chrony", "auditd", "python3-apt", "nftables", "iproute2"]), cache_dir=CACHE / "ospkgs")
    _check(_molecule("egress", MEDAI_OS_TEST_BUNDLE=str(layout.root)))
