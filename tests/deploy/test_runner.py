"""State directory, run records, secret handling and the ansible-runner wrapper (real ansible-runner, local host)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from rich.console import Console

from installer.core.errors import InstallError
from installer.deploy import state
from installer.deploy.plan import build_plan
from installer.deploy.runner import find_secrets, run_playbook
from tests.support.lab_bundles import make_bundle


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def test_state_dir_defaults_to_the_system_path_never_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDAI_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert state.state_dir() == Path("/var/lib/medai")


def test_cluster_token_generated_once_private(home):
    t1 = state.cluster_token("lab")
    t2 = state.cluster_token("lab")
    assert t1 == t2 and len(t1) == 64
    f = home / "secrets" / "lab" / "token"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "secrets").stat().st_mode) == 0o700
    assert state.cluster_token("other") != t1


def test_run_record(home, tmp_path):
    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    bundle = make_bundle(tmp_path / "bundle")
    rec = state.new_run("install", inv, bundle / "index.json")
    data = json.loads((rec.dir / "run.json").read_text())
    assert data["result"] == "running" and data["who"] and data["inventory"]["path"] == str(inv)
    assert len(data["inventory"]["sha256"]) == 64 and len(data["bundleIndexSha256"]) == 64
    rec.finish("successful", {"changed": 0})
    data = json.loads((rec.dir / "run.json").read_text())
    assert data["result"] == "successful" and data["summary"] == {"changed": 0} and data["finished"]
    assert stat.S_IMODE(rec.dir.stat().st_mode) == 0o700


def test_find_secrets_across_chunk_border(tmp_path):
    secret = "s3cr3t-" + "x" * 40
    big = tmp_path / "a" / "big.log"
    big.parent.mkdir()
    pad = (1 << 20) - 10
    big.write_bytes(b"." * pad + secret.encode() + b"\n")
    (tmp_path / "clean.txt").write_text("nothing here")
    assert find_secrets(tmp_path, [secret]) == [str(big)]
    assert find_secrets(tmp_path, ["short"]) == []  # too short to be a generated secret


def test_plan_from_bundle(tmp_path):
    from installer.deploy.working_copy import verified_working_copy

    vb = verified_working_copy(make_bundle(tmp_path / "b"), None, True, tmp_path / "state")
    plan = build_plan(vb.index, vb.root, tmp_path / "cache", vb.index_sha256)
    by_name = {f["name"]: f for f in plan.files}
    assert by_name["gpu-notes.txt"]["groups"] == ["gpu"]
    assert by_name["site-ca.pem"]["groups"] == ["all"]
    assert plan.k3s_airgap_images == ["files/k3s-airgap-images-amd64.tar"]
    assert not plan.k3s_present and plan.extravars()["medai_k3s_present"] is False
    assert all(Path(f["src"]).is_file() and len(f["sha256"]) == 64 for f in plan.files)


LOCAL_INV = "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: {py}\n"


def _playbook(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "play.yml"
    p.write_text(body)
    return p


def _run(home, tmp_path, play: Path, token: str):
    import sys
    inv = tmp_path / "inv.yml"
    inv.write_text(LOCAL_INV.format(py=sys.executable))
    rec = state.new_run("test", inv)
    out = tmp_path / "console.txt"
    with open(out, "w") as fh:
        console = Console(file=fh, width=200)
        try:
            summary = run_playbook(rec, str(play), inv, {"plain": "visible"}, {"medai_k3s_token": token}, console=console)
        finally:
            fh.flush()
    return rec, summary, out.read_text()


def test_runner_keeps_secret_out_of_artifacts(home, tmp_path):
    token = state.cluster_token("runner")
    target = tmp_path / "written-token"
    play = _playbook(tmp_path, f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: use the secret
      ansible.builtin.copy:
        content: "{{{{ medai_k3s_token }}}}"
        dest: {target}
        mode: "0600"
      no_log: true
    - name: a normal task
      ansible.builtin.debug:
        msg: "{{{{ plain }}}}"
""")
    rec, summary, console = _run(home, tmp_path, play, token)
    assert summary.status == "successful" and summary.changed == 1 and summary.hosts == 1
    assert target.read_text() == token  # the secret reached the task
    assert not (rec.dir / "secret-vars.json").exists()
    events = list((rec.runner_dir / "artifacts" / "run" / "job_events").iterdir())
    assert events, "the runner artifacts are kept"
    assert find_secrets(rec.dir, [token]) == [] and token not in console
    assert "changed" in console and "use the secret" in console
    assert token not in (rec.runner_dir / "artifacts" / "run" / "command").read_text()


def test_runner_fails_loudly_when_a_task_leaks_the_secret(home, tmp_path):
    token = state.cluster_token("leaky")
    play = _playbook(tmp_path, """
- hosts: all
  gather_facts: false
  tasks:
    - name: careless task without no_log
      ansible.builtin.debug:
        msg: "token is {{ medai_k3s_token }}"
""")
    with pytest.raises(InstallError, match="SECRET LEAK"):
        _run(home, tmp_path, play, token)


def test_sweep_after_a_killed_run(home, tmp_path):
    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    killed = state.new_run("install", inv)
    (killed.dir / state.SECRET_VARS).write_text('{"medai_k3s_token": "x"}')
    state.new_run("install", inv)
    assert not (killed.dir / state.SECRET_VARS).exists()
    assert json.loads((killed.dir / "run.json").read_text())["result"] == "interrupted"


def test_kubeconfig_points_at_the_first_server_without_a_vip_and_is_private(home, tmp_path):
    import yaml as _yaml

    from installer.deploy.install import save_kubeconfig
    from installer.deploy.inventory import load_inventory

    inv = load_inventory(Path(__file__).resolve().parents[2] / "inventories/example/site.yml")
    fetched = home / "secrets" / inv.cluster / "kubeconfig.fetched-x"
    fetched.parent.mkdir(parents=True)
    fetched.write_text(_yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "default",
        "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "users": [{"name": "default", "user": {"client-key-data": "S0VZ"}}]}))
    dest = save_kubeconfig(inv, fetched)
    assert dest == home / "kubeconfig-radiology-prod" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    doc = _yaml.safe_load(dest.read_text())
    assert inv.site.medai_api_vip is None  # the example site holds the API on its first server (docs/install.md)
    assert doc["clusters"][0]["cluster"]["server"] == f"https://{inv.hosts[inv.servers[0]].address}:6443" == "https://10.20.0.11:6443"
    assert doc["contexts"][0]["context"]["cluster"] == "radiology-prod"
    assert not fetched.exists()


def test_runner_env_is_allow_listed_and_every_known_secret_is_scanned(home, tmp_path, monkeypatch):
    """Ansible-runner writes its environment into artifacts/run/command; ours holds secrets."""
    password = "key-password-" + "p" * 20
    cloud = "cloud-secret-" + "c" * 20
    monkeypatch.setenv("MEDAI_KEY_PASSWORD", password)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cloud)
    token = state.cluster_token("envscan")
    play = _playbook(tmp_path, """
- hosts: all
  gather_facts: false
  tasks:
    - name: the environment the playbook sees
      ansible.builtin.command: env
      register: seen
      no_log: true
    - name: it holds no secret of ours
      ansible.builtin.assert:
        that: ["'key-password-' not in seen.stdout", "'cloud-secret-' not in seen.stdout"]
""")
    rec, summary, console = _run(home, tmp_path, play, token)
    assert summary.status == "successful", console
    command = json.loads((rec.runner_dir / "artifacts" / "run" / "command").read_text())
    assert "MEDAI_KEY_PASSWORD" not in command["env"] and "AWS_SECRET_ACCESS_KEY" not in command["env"]
    assert password not in json.dumps(command) and cloud not in json.dumps(command)
    assert os.environ["MEDAI_KEY_PASSWORD"] == password  # our own environment is restored afterwards

    # a generated secret (here: a Vault unseal key file) and the key password are in the scan, in every file
    unseal = home / "secrets" / "envscan" / "vault-init.json"
    unseal.write_text(json.dumps({"unseal_keys_b64": ["unseal-" + "u" * 30], "root_token": "hvs." + "r" * 24}))
    from installer.deploy.runner import run_secrets

    needles = run_secrets({"medai_k3s_token": token})
    assert {token, password, "unseal-" + "u" * 30, "hvs." + "r" * 24} <= set(needles)
    (rec.dir / "runner" / "artifacts" / "run" / "stray.log").write_text("oops unseal-" + "u" * 30)
    assert find_secrets(rec.dir, needles) == [str(rec.dir / "runner" / "artifacts" / "run" / "stray.log")]
