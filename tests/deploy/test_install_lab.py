"""`medai install` end to end on a podman lab: 1 server + 1 agent + 1 GPU agent on an --internal network.

K3s itself is not executed here (no K3s binary can be fetched on these machines): the bundle carries no `k3s`
file, so every role runs for real up to the service start, which is skipped by design. See test_e2e_k3s.py.

The runs here use `--tags preflight,stage,k3s` (this area's roles). The os, hardening and compliance roles need a
bundle with a Debian repository and SCAP content and a minutes-long OpenSCAP scan per node; they are proven by
their own Molecule scenarios (tests/deploy/test_role_os.py, tests/compliance) so CI stays inside its time budget.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support.lab import LAB_VARS, node_exec
from tests.support.lab_bundles import make_bundle
from tests.support.medai_cli import OPERATOR_KEY_PASSWORD, SITE_KEY, medai, medai_argv, medai_env, runs, sign

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]



TAGS = ("--tags", "preflight,stage,k3s")


def ssh_logins(node) -> int:
    out = node_exec(node, "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey' || true").stdout
    return int(out.strip() or 0)


@pytest.fixture(scope="module")
def site(lab_nodes, tmp_path_factory):
    lab = lab_nodes(servers=1, agents=1, gpu_agents=1)
    tmp = tmp_path_factory.mktemp("install-lab")
    bundle = make_bundle(tmp / "bundle")
    sign(bundle, tmp)
    inv = lab.inventory(tmp / "site.yml", cluster_name="lab-install", bundle_dir=bundle, extra_vars=LAB_VARS)
    yield lab, inv, bundle, tmp / "home", tmp
    lab.destroy()


def test_refusals_touch_no_host(site):
    lab, inv, bundle, home, tmp = site
    server = lab.servers[0]
    node_exec(server, "echo untouched > /root/medai-marker")
    before_marker = node_exec(server, "stat -c %Y:%s /root/medai-marker").stdout
    before_logins = [ssh_logins(n) for n in lab.nodes]

    bad = tmp / "bad.yml"
    doc = yaml.safe_load(inv.read_text())
    doc["all"]["children"]["gpu"]["hosts"][lab.servers[0].hostname] = {}
    bad.write_text(yaml.safe_dump(doc))
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(bad), "--yes")
    assert r.returncode == 2 and "gpu host is not in agents" in r.stderr

    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), "--bundle", str(tmp / "missing"), "--yes")
    assert r.returncode == 2 and "bundle directory not found" in r.stderr

    tampered = make_bundle(tmp / "tampered")
    sign(tampered, tmp)
    (tampered / "files" / "gpu-notes.txt").write_text("swapped on the USB stick\n")
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), "--bundle", str(tampered), "--yes")
    assert r.returncode == 2 and "bundle refused" in r.stderr and "files/gpu-notes.txt" in r.stderr

    assert runs(home) == []

    assert [ssh_logins(n) for n in lab.nodes] == before_logins, "a refused install must not open an SSH session"
    assert node_exec(server, "stat -c %Y:%s /root/medai-marker").stdout == before_marker
    assert node_exec(server, "test -e /var/lib/medai", check=False).returncode == 1

    # the egress ledger is on unless the inventory says otherwise: a node without nft is refused, naming it
    ledger_on = tmp / "ledger-on.yml"
    doc = yaml.safe_load(inv.read_text())
    doc["all"]["vars"]["medai_egress_ledger"] = True
    ledger_on.write_text(yaml.safe_dump(doc))
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(ledger_on), "--tags", "preflight", "--yes")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and f"egress: {server.hostname}: nft not found" in out, out[-2000:]
    assert runs(home)[-1]["egress"]["result"] == "not run"
    assert node_exec(server, "test -e /etc/medai/egress.nft", check=False).returncode == 1
    shutil.rmtree(home / "runs")  # the later tests count this module's runs from zero


def _assert_no_secret(home: Path, token: str, *texts: str) -> None:
    """Every secret the run knew (the cluster token, the exported key password) is absent from the output and
    from every file of every run record (run.json, ansible-runner's artifacts incl. its command/env file)."""
    for secret in (token, OPERATOR_KEY_PASSWORD):
        for t in texts:
            assert secret not in t
        hits = subprocess.run(["grep", "-rlF", secret, str(home / "runs")], capture_output=True, text=True)
        assert hits.returncode == 1 and hits.stdout == "", f"a secret was found in {hits.stdout}"


def test_install_converges_and_keeps_secrets(site):
    lab, inv, bundle, home, tmp = site
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), *TAGS, "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    token = (home / "secrets" / "lab-install" / "token").read_text().strip()
    assert len(token) == 64
    first = runs(home)[-1]
    assert first["result"] == "successful" and first["summary"]["changed"] > 0
    assert first["summary"]["hosts"] == 3 and first["summary"]["failed"] == 0
    assert "hosts=3" in r.stdout and "K3s is configured but not started" in r.stdout

    server, agent, gpu = lab.servers[0], lab.agents[0], lab.gpu[0]
    # nodes really have no route out: the default route points at an address nobody owns
    assert node_exec(server, "timeout 5 python3 -c \"import socket; socket.create_connection(('1.1.1.1', 443), 3)\"",
                     check=False).returncode != 0
    cfg = yaml.safe_load(node_exec(server, "cat /etc/rancher/k3s/config.yaml").stdout)
    assert cfg["cluster-init"] is True and cfg["flannel-backend"] == "none" and "token" not in cfg
    assert lab.address(100) in cfg["tls-san"]
    acfg = yaml.safe_load(node_exec(agent, "cat /etc/rancher/k3s/config.yaml").stdout)
    assert acfg["server"] == f"https://{server.ip}:6443" and "node-taint" not in acfg and "cluster-init" not in acfg
    gcfg = yaml.safe_load(node_exec(gpu, "cat /etc/rancher/k3s/config.yaml").stdout)
    assert gcfg["node-label"] == ["nvidia.com/gpu.present=true"]
    assert gcfg["node-taint"] == ["gpu=true:NoSchedule"]
    for n in lab.nodes:
        assert node_exec(n, "cat /etc/rancher/k3s/cluster-token").stdout.strip() == token
        assert node_exec(n, "stat -c %a /etc/rancher/k3s/cluster-token /etc/rancher/k3s/config.yaml").stdout.split() == ["600", "600"]
        assert node_exec(n, "systemctl show -p LoadState --value k3s k3s-agent").stdout.count("loaded") == 1
    # stage: gpu-only file on the GPU agent only, checksums as in index.json
    index = json.loads((bundle / "index.json").read_text())
    sha = {f["path"]: f["sha256"] for f in index["files"]}
    assert node_exec(gpu, "sha256sum /var/lib/medai/bundle/files/gpu-notes.txt").stdout.split()[0] == sha["files/gpu-notes.txt"]
    assert node_exec(agent, "test -e /var/lib/medai/bundle/files/gpu-notes.txt", check=False).returncode == 1
    assert node_exec(agent, "sha256sum /var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar").stdout.split()[0] \
        == sha["files/k3s-airgap-images-amd64.tar"]

    r2 = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), *TAGS, "--yes")
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr
    second = runs(home)[-1]
    assert second["summary"]["changed"] == 0, second["summary"]["per_host"]
    _assert_no_secret(home, token, r.stdout, r.stderr, r2.stdout, r2.stderr)


def test_sigkill_mid_run_then_rerun_converges(site):
    lab, inv, bundle, home, tmp = site
    agent = lab.agents[0]
    # undo part of the install so the run has work to do while it is killed
    node_exec(agent, "rm -rf /var/lib/medai /etc/rancher/k3s/config.yaml /var/lib/rancher/k3s/agent/images")
    out = open(tmp / "killed.log", "w")
    proc = subprocess.Popen(
        medai_argv("install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), *TAGS, "--yes"),
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=medai_env(home),
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if "Stage |" in (tmp / "killed.log").read_text():
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    out.close()
    killed = runs(home)[-1]
    # ansible-playbook (own pty, SIGHUP ignored) must not outlive medai and keep changing hosts unseen
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-f", killed["id"]], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "ansible-playbook outlived the killed medai process"
        time.sleep(0.5)
    assert killed["result"] == "running"  # nothing could finish the record or delete the secret vars file
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), *TAGS, "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert [x["result"] for x in runs(home) if x["id"] == killed["id"]] == ["interrupted"]
    assert (
        node_exec(
            agent, "test -s /etc/rancher/k3s/config.yaml && test -s /var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar"
        ).returncode
        == 0
    )
    # converged: a check-mode run (which reports what it would change, with diffs) finds nothing to do
    c = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), *TAGS, "--check")
    assert c.returncode == 0, c.stdout[-3000:] + c.stderr
    assert runs(home)[-1]["command"] == "install-check"
    assert runs(home)[-1]["summary"]["changed"] == 0, runs(home)[-1]["summary"]["per_host"]
    token = (home / "secrets" / "lab-install" / "token").read_text().strip()
    _assert_no_secret(home, token, (tmp / "killed.log").read_text(), r.stdout, c.stdout)


def test_reset_removes_everything(site):
    lab, inv, bundle, home, tmp = site
    r = medai(home, "reset", "--inventory", str(inv), "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    for n in lab.nodes:
        assert (
            node_exec(
                n,
                "test -e /etc/rancher || test -e /var/lib/medai || test -e /var/lib/rancher || "
                "test -e /etc/systemd/system/k3s.service || test -e /etc/systemd/system/k3s-agent.service",
                check=False,
            ).returncode
            == 1
        )
