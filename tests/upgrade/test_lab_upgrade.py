"""`medai upgrade` between two bundle versions on a podman lab (1 server + 1 agent), v2 differential on v1:
the union assembled, staged files replaced and checked, the roles idempotent across the versions, and --resume
after SIGKILL converging. The bundles carry no K3s binary (none can be fetched here), so the upgrade is the
`hosts` step: no snapshot, drain or restart, which
run only in test_k3s_e2e.py. OS packages between two repositories: the second test (network: the bundles' Debian
repository) raises a local package from 1.0 to 2.0 through the os role's --only-upgrade step."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

import tests.support.lab_bundles as deploy_bundles
from installer.bundle.index import dumps
from installer.bundle.layout import BundleLayout
from installer.trust.differential import prune_to_base
from installer.trust.keys import generate_keypair, load_private_key
from installer.trust.signing import sign_index
from tests.support.lab import LAB_VARS, node_exec
from tests.support.medai_cli import medai, medai_argv, medai_env, runs

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
SIGNING: dict = {}  # the module's signing key, for bundles a test builds itself
CA_V2 = b"-----BEGIN CERTIFICATE-----\nmedai test site CA, version 2 (not a real certificate)\n-----END CERTIFICATE-----\n"


def signed(root: Path, key, files: dict, base: Path | None = None) -> Path:
    """tests/support/lab_bundles.py's bundle with ``files``, signed; with ``base``, made differential on it."""
    saved = dict(deploy_bundles.FILES)
    deploy_bundles.FILES.clear()
    deploy_bundles.FILES.update(files)
    try:
        deploy_bundles.make_bundle(root)
    finally:
        deploy_bundles.FILES.clear()
        deploy_bundles.FILES.update(saved)
    layout = BundleLayout.at(root)
    if base is not None:
        doc = json.loads(layout.index.read_bytes())
        header = prune_to_base(layout, base / "index.json", {})
        pinned = {f["path"] for f in header["fromBase"]}
        doc.update(header, files=[f for f in doc["files"] if f["path"] not in pinned])
        layout.index.write_bytes(dumps(doc))
    sign_index(layout, layout.index.read_bytes(), key)
    return root


@pytest.fixture(scope="module")
def site(lab_nodes, tmp_path_factory):
    lab = lab_nodes(servers=1, agents=1, gpu_agents=0)
    tmp = tmp_path_factory.mktemp("upgrade-lab")
    k, pub = generate_keypair(tmp / "site", b"lab-upgrade")
    key = load_private_key(k, b"lab-upgrade")
    SIGNING["key"] = key
    v1 = signed(tmp / "v1", key, dict(deploy_bundles.FILES))
    v2_files = dict(deploy_bundles.FILES)
    v2_files["site-ca.pem"] = (CA_V2, ["all"])
    v2_files["release-notes.txt"] = (b"bundle v2\n", ["all"])
    # the airgap image archive of v1 is replaced by another one in v2: the old one must leave the nodes
    v2_files.pop("k3s-airgap-images-amd64.tar")
    v2_files["k3s-airgap-images-amd64-v2.tar"] = (b"placeholder archive of bundle v2\n", ["all"])
    v2 = signed(tmp / "v2", key, v2_files, base=v1)  # differential: only the changed and the new file inside
    inv = lab.inventory(tmp / "site.yml", cluster_name="lab-upgrade", bundle_dir=v1, extra_vars=LAB_VARS)
    home = tmp / "home"
    r = medai(home, "install", "--inventory", str(inv), "--key", str(pub), "--tags", "preflight,stage,k3s", "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    yield lab, inv, v1, v2, pub, home
    lab.destroy()


def staged_sha(node, rel: str) -> str:
    return node_exec(node, f"sha256sum /var/lib/medai/bundle/{rel}").stdout.split()[0]


def test_upgrade_replaces_staged_files_then_resume_after_sigkill_converges(site):
    lab, inv, v1, v2, pub, home = site
    args = ("upgrade", "--inventory", str(inv), "--bundle", str(v2), "--key", str(pub), "--current", str(v1))
    carried = {f["path"] for f in json.loads((v2 / "index.json").read_text())["files"]}
    assert carried == {"files/site-ca.pem", "files/release-notes.txt", "files/k3s-airgap-images-amd64-v2.tar"}
    r = medai(home, *args, "--plan")
    assert r.returncode == 0 and "step: hosts" in r.stdout and "file site-ca.pem: changed" in r.stdout, r.stdout + r.stderr
    assert "differential on base index sha256" in r.stdout
    # SIGKILL the upgrade while its hosts step runs, then --resume
    p = subprocess.Popen(medai_argv(*args, "--yes"), cwd=ROOT, env=medai_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(rec["command"] == "upgrade" for rec in runs(home)) and list((home / "runs").glob("*-upgrade-*/runner")):
            break
        time.sleep(0.2)
    time.sleep(2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = medai(home, *args, "--resume", "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    ups = [rec for rec in runs(home) if rec["command"] == "upgrade"]
    assert len(ups) == 1 and ups[0]["result"] == "successful" and ups[0].get("resumed") == 1
    index = json.loads((v2 / "index.json").read_text())
    sha = {f["path"]: f["sha256"] for f in index["files"] + index["fromBase"]}
    for n in lab.nodes:
        assert staged_sha(n, "files/site-ca.pem") == sha["files/site-ca.pem"]
        assert staged_sha(n, "files/release-notes.txt") == sha["files/release-notes.txt"]
        images = node_exec(n, "ls /var/lib/rancher/k3s/agent/images").stdout.split()
        assert images == ["k3s-airgap-images-amd64-v2.tar"], images  # v1's archive removed, v2's in place
    # the roles are idempotent across the two versions: installing the assembled v2 over the upgraded hosts changes
    # nothing (the union copy's index is derived, so it is installed by hashes, without --key)
    union = next((home / "bundles").glob("*-union"))
    r = medai(home, "install", "--inventory", str(inv), "--bundle", str(union), "--insecure-skip-signature", "--tags", "stage,k3s", "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert runs(home)[-1]["summary"]["changed"] == 0, runs(home)[-1]["summary"]["per_host"]


def node_version(node, pkg: str) -> str:
    return node_exec(node, f"dpkg-query -W -f='${{Version}}' {pkg}", check=False).stdout.strip()


@pytest.mark.network  # the bundles' Debian repository: apt-get update against deb.debian.org (cached .debs)
def test_upgrade_raises_installed_os_packages_from_the_new_repository(site, tmp_path):
    """OS packages between two repositories: v1 carries medai-lab-probe 1.0 (a local .deb built with dpkg-deb),
    v2 the same package at 2.0. The upgrade's hosts step raises it from the new bundle's repository only."""
    lab, inv, _v1, _v2, pub, home = site
    key = SIGNING["key"]
    os1 = deploy_bundles.make_bundle(tmp_path / "os1", full=True, extra_debs=(deploy_bundles.probe_deb(tmp_path, "1.0"),))
    sign_index(BundleLayout.at(os1), (os1 / "index.json").read_bytes(), key)
    os2 = deploy_bundles.make_bundle(tmp_path / "os2", full=True, extra_debs=(deploy_bundles.probe_deb(tmp_path, "2.0"),))
    sign_index(BundleLayout.at(os2), (os2 / "index.json").read_bytes(), key)
    r = medai(home, "install", "--inventory", str(inv), "--bundle", str(os1), "--key", str(pub), "--tags", "os", "--yes", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    for n in lab.nodes:
        assert node_version(n, "medai-lab-probe") == "1.0"
    chrony_before = {n.hostname: node_version(n, "chrony") for n in lab.nodes}
    args = ("upgrade", "--inventory", str(inv), "--bundle", str(os2), "--key", str(pub), "--current", str(os1))
    r = medai(home, *args, "--plan")
    assert r.returncode == 0 and "step: hosts" in r.stdout and "OS packages debian-12: changed" in r.stdout, r.stdout + r.stderr
    r = medai(home, *args, "--yes", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "apt-get --only-upgrade install" in r.stdout
    for n in lab.nodes:
        assert node_version(n, "medai-lab-probe") == "2.0"  # the version really rose, from the bundle's repository
        assert node_exec(n, "cat /usr/share/medai-lab-probe/version").stdout.strip() == "2.0"
        assert node_version(n, "chrony") == chrony_before[n.hostname]  # same version in both repositories: untouched
        assert node_exec(n, "test -e /usr/sbin/policy-rc.d", check=False).returncode == 1
    # idempotent: the os role over the upgraded hosts with the v2 repository changes nothing
    r = medai(home, "install", "--inventory", str(inv), "--bundle", str(os2), "--key", str(pub), "--tags", "os", "--yes", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert runs(home)[-1]["summary"]["changed"] == 0, runs(home)[-1]["summary"]["per_host"]
