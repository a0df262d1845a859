"""Molecule scenarios of the platform's node-prerequisite roles, cilium and longhorn (one lab node each: converge,
idempotence, verify, then the role's reset), and of the egress ledger.

What a lab node can show: the Cilium preflight (this host's kernel and BPF filesystem, and the refusal of an older
kernel), its modules-at-boot file; Longhorn's prerequisites installed from
a real bundle repository (open-iscsi, nfs-common, multipath-tools from Debian's archive), iscsid's socket listening
and its service enabled, iscsiadm answering, iscsi_tcp listed for boot and multipathd's blacklist parsed by
`multipath -t`; and each role's tasks/reset.yml removing what it placed.
What it cannot (the node is a container sharing this host's kernel and /sys): loading iscsi_tcp, cls_bpf and
sch_ingress, starting iscsid.service (the host kernel has no iSCSI transport); the roles do each on a real host
(medai_longhorn_in_container / the cilium role's container switch).
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


def test_molecule_cilium_prerequisites_in_a_container_no_module_load(lab_image):
    _check(_molecule("cilium"))


@pytest.mark.network
def test_molecule_longhorn_prerequisites_in_a_container_iscsid_enabled_not_started_no_iscsi_tcp(lab_image, tmp_path_factory):
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
