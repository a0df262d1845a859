"""`medai reset` after a whole `medai install` on a podman lab (1 server + 1 agent, --internal network): every
file each role placed is gone, the packages installed from the bundle stay, and a second reset changes nothing.

The install is the whole site.yml (preflight, os, egress ledger, stage, the platform's node prerequisites, K3s,
hardening, compliance) from a bundle whose Debian repository carries what the roles need (tests/support/
lab_bundles.FULL_PACKAGES, open-iscsi, nfs-common and multipath-tools included), so the longhorn and cilium
roles run here as on a site. Limits of a lab node (a container sharing this host's kernel): K3s is configured,
never started (no K3s binary in the bundle), so its uninstall script does not exist and the K3s files are removed
by name; iscsi_tcp, cls_bpf and sch_ingress are not loaded and iscsid.service is enabled, not started; the GPU
and Vault roles are skipped (no GPU host, no K3s), so their reset has nothing to remove. The
release uninstall of `medai reset` (installer/deploy/install.py) is skipped: no kubeconfig was fetched.

Network: building the bundle's OS repository runs apt-get update against deb.debian.org (cached .debs reused)."""
from __future__ import annotations

import pytest

from tests.support.lab import LAB_VARS, node_exec
from tests.support.lab_bundles import make_bundle
from tests.support.medai_cli import SITE_KEY, medai, runs, sign

pytestmark = [pytest.mark.lab, pytest.mark.network]

# What each role places on every node (the server's and the agent's K3s unit differ: below).
PLACED = {
    "os": ["/etc/modules-load.d/medai.conf", "/etc/sysctl.d/90-medai-k3s.conf", "/var/lib/medai-os"],
    "egress": ["/etc/medai/egress.nft"],
    "stage": ["/var/lib/medai/bundle/files/site-ca.pem"],
    "cilium": ["/etc/modules-load.d/medai-cilium.conf"],
    "longhorn": ["/etc/modules-load.d/medai-longhorn.conf", "/etc/multipath.conf"],
    "k3s": ["/etc/rancher/k3s/config.yaml", "/etc/rancher/k3s/cluster-token", "/var/lib/rancher/k3s/agent/images"],
    "hardening": ["/etc/sysctl.d/60-medai-hardening.conf", "/etc/sudoers.d/50-medai-hardening",
                  "/etc/sudoers.d/50-medai-requiretty", "/etc/sudoers.d/50-medai-umask"],
    "compliance": ["/var/lib/medai/compliance"],
}
# Removed even though this lab never places them (the roles are skipped here): their absence is still checked.
NEVER_HERE = ["/etc/medai/gpu.json", "/usr/local/share/ca-certificates/medai-site-root.crt", "/usr/local/bin/k3s"]


def _exists(node, paths: list[str]) -> list[str]:
    out = node_exec(node, "for p in " + " ".join(paths) + "; do test -e $p && echo $p; done; true").stdout
    return out.split()


@pytest.fixture(scope="module")
def installed(lab_nodes, tmp_path_factory):
    lab = lab_nodes(servers=1, agents=1)
    tmp = tmp_path_factory.mktemp("reset-lab")
    bundle = make_bundle(tmp / "bundle", full=True)
    sign(bundle, tmp)
    # the bundle carries nftables, open-iscsi and nfs-common: the egress ledger and Longhorn's prerequisites run
    lab_vars = {k: v for k, v in LAB_VARS.items() if k not in ("medai_egress_ledger", "medai_longhorn_storage")}
    inv = lab.inventory(tmp / "site.yml", cluster_name="lab-reset", bundle_dir=bundle, extra_vars=lab_vars)
    home = tmp / "home"
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), "--yes", timeout=1800)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    yield lab, inv, home
    lab.destroy()


def _placed(node) -> list[str]:
    k3s_unit = "/etc/systemd/system/k3s.service" if node.role == "server" else "/etc/systemd/system/k3s-agent.service"
    return [p for paths in PLACED.values() for p in paths] + [k3s_unit]


def test_install_placed_each_roles_files(installed):
    lab, _inv, _home = installed
    for node in lab.nodes:
        placed = _placed(node)
        assert sorted(_exists(node, placed)) == sorted(placed), node.hostname
        assert "# BEGIN medai longhorn" in node_exec(node, "cat /etc/multipath.conf").stdout
        assert node_exec(node, "systemctl is-enabled iscsid.service").stdout.split() == ["enabled"]


def test_reset_removes_everything_and_a_second_reset_changes_nothing(installed):
    lab, inv, home = installed
    r = medai(home, "reset", "--inventory", str(inv), "--yes", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    first = runs(home)[-1]
    assert first["command"] == "reset" and first["result"] == "successful" and first["summary"]["changed"] > 0
    for node in lab.nodes:
        left = _exists(node, _placed(node) + NEVER_HERE + ["/var/lib/medai", "/etc/medai", "/etc/rancher", "/var/lib/rancher",
                                                             "/etc/systemd/system/multi-user.target.wants/sys-fs-bpf.mount"])
        assert left == [], f"{node.hostname}: left after reset: {left}"
        # the packages came from the bundle's repository and stay (docs/install.md, reset)
        status = node_exec(node, "dpkg-query -W -f='${Status}\\n' open-iscsi nfs-common chrony").stdout.split("\n")
        assert [s for s in status if s] == ["install ok installed"] * 3, status
        assert node_exec(node, "systemctl show -p LoadState --value k3s k3s-agent").stdout.split() == ["not-found"] * 2

    r2 = medai(home, "reset", "--inventory", str(inv), "--yes", timeout=900)
    assert r2.returncode == 0, (r2.stdout + r2.stderr)[-4000:]
    second = runs(home)[-1]
    assert second["command"] == "reset" and second["result"] == "successful"
    assert second["summary"]["changed"] == 0, second["summary"]["per_host"]
