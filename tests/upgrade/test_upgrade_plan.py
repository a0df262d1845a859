"""`medai upgrade` on the control host: change list, refusals before any host is touched, the plan from recorded
cluster responses, and the journal that --resume continues from. No K3s here: execution of the steps runs only
in tests/upgrade/test_k3s_e2e.py (MEDAI_E2E_K3S)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from installer.bundle.artifacts import Artifact
from installer.core.errors import InstallError
from installer.core.hashing import sha256_bytes
from installer.deploy import platform_step
from installer.deploy.state import new_run
from installer.trust.keys import generate_keypair, load_private_key
from installer.upgrade.changes import change_list, k3s_version
from installer.upgrade.cluster_state import cluster_state
from installer.upgrade.journal import Journal, resumable_run
from installer.upgrade.run import UpgradeOptions, execute, make_plan
from tests.deploy.test_install_refusals import inventory, no_run_started
from tests.support.kube import RecordedKube
from tests.support.signed_bundle import make_signed_bundle
from tests.upgrade.test_decisions import load

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = b"upgrade-test-pass"
K3S_URL = "https://github.com/k3s-io/k3s/releases/download/{v}/k3s"


def version_bundle(root: Path, key, k3s: str, longhorn: str, model: bytes, extra_image: bool, base: Path | None = None):
    files = {
        "files/k3s": f"k3s {k3s}".encode(),
        f"charts/longhorn-{longhorn}.tgz": f"chart {longhorn}".encode(),
        "models/tiny/model.safetensors": model,
        "os/bookworm/Packages": b"Package: curl\nVersion: 7.88.1-10+deb12u" + longhorn.encode(),
    }
    arts = [
        Artifact(
            "file",
            "k3s",
            "files/k3s",
            len(files["files/k3s"]),
            sha256_bytes(files["files/k3s"]),
            ref=K3S_URL.format(v=k3s.replace("+", "%2B")),
        ),
        Artifact(
            "chart",
            "longhorn",
            f"charts/longhorn-{longhorn}.tgz",
            11,
            sha256_bytes(files[f"charts/longhorn-{longhorn}.tgz"]),
            ref=f"longhorn@{longhorn}",
            meta={"version": longhorn},
        ),
        Artifact(
            "model", "tiny", "models/tiny/model.safetensors", len(model), sha256_bytes(model), paths=["models/tiny/model.safetensors"]
        ),
        Artifact(
            "ospkgs", "bookworm", "os/bookworm/Packages", len(files["os/bookworm/Packages"]), sha256_bytes(files["os/bookworm/Packages"])
        ),
    ]
    # no manifest.yaml: its stand-in chart archives could not be rendered, and upgrade (like install) renders and
    # gates every chart of a bundle's manifest (that gate on real charts: test_upgrade_gate.py)
    return make_signed_bundle(root, key, files, arts, base=base)


def values_manifest(extra_image: bool) -> str:
    """The chart values part of a manifest, for the change list alone."""
    return (
        f"apiVersion: medai/v1\nkind: Bundle\nspec:\n  charts:\n  - name: longhorn\n    values: {{replicas: {2 if extra_image else 3}}}\n"
    )


@pytest.fixture
def site(tmp_path, monkeypatch):
    k, pub = generate_keypair(tmp_path / "site", PASSWORD)
    key = load_private_key(k, PASSWORD)
    home = tmp_path / "home"
    monkeypatch.setenv("MEDAI_HOME", str(home))
    v1 = version_bundle(tmp_path / "v1", key, "v1.33.5+k3s1", "1.9.2", b"weights-1", False)
    v2 = version_bundle(tmp_path / "v2", key, "v1.34.2+k3s1", "1.10.0", b"weights-2", True)
    inv = inventory(tmp_path)
    return tmp_path, key, pub, home, v1, v2, inv


def test_change_list_names_every_kind_of_change(site):
    _, _, _, _, v1, v2, _ = site
    old, new = v1.read_index().to_json(), v2.read_index().to_json()
    # images as the index lists them (these hand-made bundles carry no OCI layout)
    busybox = {"kind": "image", "name": "busybox", "ref": "docker.io/library/busybox:1.36", "digest": "sha256:" + "a" * 64}
    old["artifacts"].append(busybox)
    new["artifacts"] += [busybox, {"kind": "image", "name": "nginx", "ref": "docker.io/library/nginx:1.27", "digest": "sha256:" + "b" * 64}]
    assert k3s_version(new) == "v1.34.2+k3s1"
    cl = change_list(old, new, values_manifest(False), values_manifest(True))
    lines = cl.lines()
    assert "K3s v1.33.5+k3s1 -> v1.34.2+k3s1" in lines
    assert "chart longhorn 1.9.2 -> 1.10.0 (values changed)" in lines
    assert f"image added docker.io/library/nginx:1.27@sha256:{'b' * 64}" in lines
    assert any(line.startswith("model tiny:") for line in lines)
    assert any(line.startswith("OS packages bookworm: changed") for line in lines)
    assert change_list(old, old).empty


def medai(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "MEDAI_HOME": str(home), "COLUMNS": "300"}
    return subprocess.run(
        [sys.executable, "-m", "installer.cli.main", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_plan_prints_changes_and_says_the_cluster_was_not_read(site):
    tmp, _, pub, home, v1, v2, inv = site
    r = medai(
        "upgrade", "--inventory", str(inv), "--bundle", str(v2.root), "--key", str(pub), "--current", str(v1.root), "--plan", home=home
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "change: K3s v1.33.5+k3s1 -> v1.34.2+k3s1" in r.stdout
    assert "nodes: not planned:" in r.stdout and "kubeconfig" in r.stdout
    assert no_run_started(home)


def test_differential_on_the_wrong_base_is_refused_before_any_host_naming_both_digests(site):
    tmp, key, pub, home, v1, v2, inv = site
    other = version_bundle(tmp / "other", key, "v1.33.5+k3s1", "1.9.1", b"weights-0", False)
    diff = version_bundle(tmp / "v2diff", key, "v1.34.2+k3s1", "1.10.0", b"weights-1", True, base=v1.root)
    assert "files/k3s" in {f["path"] for f in diff.read_index()["files"]}
    assert "models/tiny/model.safetensors" in {f["path"] for f in diff.read_index()["fromBase"]}
    rec = new_run("install", inv, other.index, home=home)  # the cluster runs `other`, not v1
    rec.finish("successful")
    r = medai(
        "upgrade", "--inventory", str(inv), "--bundle", str(diff.root), "--key", str(pub), "--current", str(v1.root), "--yes", home=home
    )
    v1_sha = hashlib.sha256(v1.index.read_bytes()).hexdigest()
    other_sha = hashlib.sha256(other.index.read_bytes()).hexdigest()
    assert r.returncode == 2 and v1_sha in r.stderr and other_sha in r.stderr and "no host was touched" in r.stderr
    assert len(list((home / "runs").iterdir())) == 1  # only the install record: no upgrade run started
    # with v1 installed, the same differential plans (the union is verified first)
    new_run("install", inv, v1.index, home=home).finish("successful")
    r = medai(
        "upgrade", "--inventory", str(inv), "--bundle", str(diff.root), "--key", str(pub), "--current", str(v1.root), "--plan", home=home
    )
    assert r.returncode == 0 and f"differential on base index sha256 {v1_sha}" in r.stdout, r.stdout + r.stderr
    # the steps run from a private union copy: the differential's files plus those pinned from v1, each hash-checked
    plan = make_plan(UpgradeOptions(inv, diff.root, pub, current=v1.root, plan_only=True), Console(file=open(os.devnull, "w")))
    from installer.deploy.plan import build_plan

    union = json.loads((plan.bundle / "index.json").read_bytes())
    staged = {f["dest"] for f in build_plan(union, plan.bundle, tmp / "cache", plan.index_sha256).files}
    assert {"files/k3s", "models/tiny/model.safetensors"} <= staged
    assert (plan.bundle / "models/tiny/model.safetensors").read_bytes() == b"weights-1"
    assert plan.index_sha256 == hashlib.sha256(diff.index.read_bytes()).hexdigest()


def _recorded_cluster(monkeypatch, nodes: str = "nodes-ready.json", longhorn: bool = True) -> RecordedKube:
    """The recorded API responses behind the platform's adapter seam: the upgrade reads them as it reads a cluster."""
    lists = {("v1", "Node"): load(nodes)["items"], ("v1", "Pod"): load("pods.json")["items"],
             ("policy/v1", "PodDisruptionBudget"): load("pdbs.json")["items"]}
    if longhorn:
        lists[("longhorn.io/v1beta2", "Volume")] = load("longhorn-volumes.json")["items"]
    kube = RecordedKube(lists, {"/readyz/etcd": load("readyz-etcd-ok.txt")})
    monkeypatch.setattr(platform_step, "adapters", lambda kubeconfig, bundle: (None, kube))
    return kube


def test_cluster_state_is_read_through_the_one_kubernetes_adapter(monkeypatch):
    _recorded_cluster(monkeypatch)
    state = cluster_state("site1")
    assert state == {"nodes": {"items": load("nodes-ready.json")["items"]}, "pods": {"items": load("pods.json")["items"]},
                     "pdbs": {"items": load("pdbs.json")["items"]}, "readyzEtcd": load("readyz-etcd-ok.txt"),
                     "longhorn": {"items": load("longhorn-volumes.json")["items"]}}
    _recorded_cluster(monkeypatch, longhorn=False)
    assert cluster_state("site1")["longhorn"] is None  # Longhorn's CRD not installed: no volume to check


def test_plan_from_recorded_cluster_state_and_preflight_stops_before_a_run(site, monkeypatch):
    tmp, _, pub, home, v1, v2, inv = site
    _recorded_cluster(monkeypatch)
    opts = UpgradeOptions(inv, v2.root, pub, current=v1.root, plan_only=True, batch=2)
    plan = make_plan(opts, Console(file=open(os.devnull, "w")))
    assert plan.steps() == [
        "snapshot",
        "server:srv-1",
        "server:srv-2",
        "server:srv-3",
        "agents:agent-1,agent-2",
        "agents:gpu-1",
        "releases",
    ]
    lines = plan.lines()
    assert "preflight: longhorn volume pvc-3bd7: degraded (a drain would leave it without a replica)" in lines
    assert any(line.startswith("blocking PDB: node agent-1: PodDisruptionBudget medai-db/postgres") for line in lines)
    assert "--disable-eviction" not in plan.drains["agent-1"]
    with pytest.raises(InstallError, match="preflight failed, nothing was touched: longhorn volume pvc-3bd7"):
        execute(opts, plan, Console(file=open(os.devnull, "w")))
    assert no_run_started(home)


def test_skew_refusal_reaches_the_operator(site, monkeypatch):
    tmp, _, pub, home, v1, v2, inv = site
    _recorded_cluster(monkeypatch, "nodes-agent-behind.json")
    with pytest.raises(InstallError, match="skips minor"):
        make_plan(UpgradeOptions(inv, v2.root, pub, current=v1.root, plan_only=True), Console(file=open(os.devnull, "w")))


def test_a_plan_without_a_cluster_names_the_missing_kubeconfig(site):
    tmp, _, pub, home, v1, v2, inv = site
    plan = make_plan(UpgradeOptions(inv, v2.root, pub, current=v1.root, plan_only=True), Console(file=open(os.devnull, "w")))
    assert plan.rollout is None
    assert plan.cluster_note.endswith(": no admin kubeconfig (written by a successful medai install)"), plan.cluster_note


def test_journal_resumes_at_the_first_step_not_done(site, tmp_path):
    _, _, _, home, _, v2, inv = site
    rec = new_run("upgrade", inv, v2.index, home=home)
    j = Journal.create(rec.dir, ["snapshot", "server:s0", "agents:a1"], {"indexSha256": "x"})
    j.done("snapshot", {"file": "medai-run.db"})
    # SIGKILL here: the record stays "running"; the next new_run sweeps it to "interrupted"
    new_run("verify", inv, None, home=home).finish("successful")
    assert json.loads((rec.dir / "run.json").read_text())["result"] == "interrupted"
    assert resumable_run(inv, home=home) == rec.dir
    assert Journal.load(rec.dir).pending == ["server:s0", "agents:a1"]
    rec.finish("successful")
    assert resumable_run(inv, home=home) is None


def test_install_refuses_a_differential_before_any_host(site):
    tmp, key, pub, home, v1, v2, inv = site
    diff = version_bundle(tmp / "v2diff", key, "v1.34.2+k3s1", "1.10.0", b"weights-1", True, base=v1.root)
    r = medai("install", "--inventory", str(inv), "--bundle", str(diff.root), "--key", str(pub), "--yes", home=home)
    assert r.returncode == 2 and "no successful install" in r.stderr and no_run_started(home)


def test_a_plan_from_media_reads_the_stick_once_into_the_one_private_copy(site, monkeypatch):
    """`medai upgrade --bundle /media/usb`: the stick (a real FAT32 image, read-only) is opened as install opens it,
    part by part into the verified private copy; no second, imported copy."""
    from installer.media.export import ExportOptions, export_bundle
    from tests.support.fat32 import make_image, mounted

    tmp, key, pub, home, v1, v2, inv = site
    _recorded_cluster(monkeypatch)
    stick, mnt = make_image(tmp / "stick.img", "64M"), tmp / "mnt"
    with mounted(stick, mnt):
        export_bundle(ExportOptions(bundle=v2.root, targets=[mnt], sign_key=key, max_file_size=64 * 1024, parity=0))
    with mounted(stick, mnt, read_only=True):
        plan = make_plan(UpgradeOptions(inv, mnt, pub, current=v1.root, plan_only=True, batch=2),
                         Console(file=open(os.devnull, "w")))
    assert plan.index_sha256 == hashlib.sha256(v2.index.read_bytes()).hexdigest()
    assert plan.bundle == home / "bundles" / plan.index_sha256[:32]
    assert sorted(p.name for p in (home / "bundles").iterdir()) == [plan.index_sha256[:32]]
    assert plan.steps()[0] == "snapshot"
