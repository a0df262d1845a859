"""`medai verify` end to end on a lab node (systemd container on an internal network, reached over SSH):
oscap runs ON the node with the datastream carried in a signed bundle, before and after the hardening role.

K3s is not running on the node: the K3s CIS checks read config files the test writes; API checks are skipped.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from installer.bundle.artifacts import Artifact
from installer.bundle.index import write_index
from installer.bundle.layout import BundleLayout
from installer.core.hashing import sha256_file
from installer.trust.keys import SigningKey, public_key_pem
from tests.compliance.conftest import DEBIAN_DS
from tests.support.debrepo import install_repo
from tests.support.k3s_fixtures import shell_script
from tests.support.lab import node_exec

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
RULE = "xccdf_org.ssgproject.content_rule_"
# The role's toggles that are on by default and fail on a minbase node: each must flip from fail to pass.
# (package_pam_pwquality_installed and accounts_password_pam_retry pass before: the os role's packages, installed
# here as it would from the bundle, bring pam_pwquality with retry=3.)
FIXED_BY_HARDENING = [
    "directory_permissions_etc_sudoersd", "sudo_add_ignore_dot",
    "accounts_password_pam_minlen", "accounts_password_pam_dcredit", "accounts_password_pam_ucredit",
    "accounts_password_pam_lcredit", "accounts_password_pam_ocredit", "accounts_password_pam_minclass",
    "accounts_password_pam_unix_remember", "accounts_password_pam_unix_rounds_password_auth",
    "set_password_hashing_algorithm_logindefs", "accounts_password_set_max_life_root",
    # The profile's failing medium rules the role remediates
    "sudo_add_requiretty", "sudo_add_umask", "accounts_passwords_pam_faillock_deny",
    "accounts_passwords_pam_faillock_interval", "accounts_passwords_pam_faillock_unlock_time",
]
WAIVERS = """\
waivers:
  - rule: sudo_add_noexec
    scope: {groups: [servers]}
    justification: Ansible become runs python through sudo; NOEXEC would stop every later run
    expires: 2099-12-31
  - rule: sudoers_no_root_target
    scope: all
    justification: operators need root sudo for break-glass; reviewed by the ISO
    expires: 2099-12-31
"""


def signed_bundle(root: Path) -> Path:
    """A minimal bundle: the Debian 12 datastream as a file entry, index.json and its signature."""
    layout = BundleLayout.at(root)
    (root / "files").mkdir(parents=True)
    ds = root / "files" / DEBIAN_DS.name
    shutil.copy(DEBIAN_DS, ds)
    art = Artifact(kind="file", name=ds.name, path=f"files/{ds.name}", size=ds.stat().st_size, sha256=sha256_file(ds))
    data = write_index(layout, {"name": "compliance-test", "version": "0.0.1"}, [art], {})
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    (root / "index.json.sig").write_bytes(base64.b64encode(key.sign(data)))
    pub = root.parent / "site.pub"
    pub.write_bytes(public_key_pem(key.public))
    return pub


def medai_verify(env, *args) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["medai", "verify", *args], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


def failed(report: dict) -> set[str]:
    return {r["short"] for h in report["hosts"] for r in h["rules"] if r["source"] == "oscap" and r["result"] == "fail"}


def test_verify_before_and_after_hardening_k3s_not_running(lab_nodes, local_repo, tmp_path):
    lab = lab_nodes(servers=1)
    node = lab.nodes[0]
    install_repo(node.name, local_repo)  # stands in for the bundle's OS repo (openscap-scanner, libpam-pwquality)
    # the os role installs the hardening role's packages from the bundle; hardening itself never reaches a source
    node_exec(node, "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpam-pwquality openscap-scanner >/dev/null")
    node_exec(node, shell_script(compliant=True))  # K3s server config files only: K3s is not installed
    inv = lab.inventory(tmp_path / "site.yml")
    bundle = tmp_path / "bundle"
    pub = signed_bundle(bundle)
    (tmp_path / "waivers.yml").write_text(WAIVERS)
    env = dict(os.environ, MEDAI_HOME=str(tmp_path / "home"), NO_COLOR="1")
    common = ["--inventory", str(inv), "--bundle", str(bundle), "--key", str(pub)]

    (tmp_path / "no-waivers.yml").write_text("waivers: []\n")  # instead of medai's default waivers
    before = medai_verify(env, *common, "--out", str(tmp_path / "before"), "--fail-on", "high",
                          "--waivers", str(tmp_path / "no-waivers.yml"))
    assert before.returncode == 1, before.stdout[-3000:] + before.stderr[-2000:]
    assert "gate failed" in before.stdout and RULE + "sudo_add_noexec" in before.stdout
    rep_before = json.loads((tmp_path / "before" / "evidence.json").read_text())
    assert rep_before["bundle"]["signature"].startswith("verified with")
    assert rep_before["bundle"]["indexSha256"] == sha256_file(bundle / "index.json")
    assert rep_before["hosts"][0]["datastream"]["sha256"] == sha256_file(DEBIAN_DS)
    assert (tmp_path / "before" / "hosts" / node.hostname / "oscap.html").stat().st_size > 10000
    k3s = {r["id"]: r["result"] for r in rep_before["hosts"][0]["rules"] if r["source"] == "k3s"}
    assert k3s["k3s_1.2.29_secrets_encryption"] == "pass" and k3s["k3s_5.2.x_namespace_psa_labels"] == "skipped"

    play = tmp_path / "harden.yml"
    play.write_text("- hosts: all\n  become: true\n  roles: [hardening]\n")
    h = subprocess.run(["ansible-playbook", "-i", str(inv), str(play)], capture_output=True, text=True, timeout=600,
                       env=dict(env, ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_HOST_KEY_CHECKING="False"))
    assert h.returncode == 0, h.stdout[-3000:]

    after = medai_verify(env, *common, "--out", str(tmp_path / "after"), "--fail-on", "high", "--waivers", str(tmp_path / "waivers.yml"))
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-2000:]
    rep_after = json.loads((tmp_path / "after" / "evidence.json").read_text())
    fb, fa = failed(rep_before), failed(rep_after)
    assert set(FIXED_BY_HARDENING) <= fb  # they failed before …
    assert not set(FIXED_BY_HARDENING) & fa  # … and pass after
    passed_after = {r["short"] for r in rep_after["hosts"][0]["rules"] if r["result"] == "pass"}
    assert set(FIXED_BY_HARDENING) <= passed_after
    assert rep_after["totals"]["fail"] < rep_before["totals"]["fail"]
    assert rep_after["totals"]["fail"] == rep_before["totals"]["fail"] - len(FIXED_BY_HARDENING)
    eff = {r["short"]: r["effective"] for r in rep_after["hosts"][0]["rules"]}
    assert eff["sudoers_no_root_target"] == "waived" and eff["sudo_add_noexec"] == "waived"
    assert rep_after["totals"]["waived"] == 2
    html = (tmp_path / "after" / "evidence.html").read_text()
    assert "Gate <b>PASSED</b>" in html and "operators need root sudo for break-glass" in html

    # the run record holds the report's SHA-256
    runs = sorted((tmp_path / "home" / "runs").iterdir())
    rec = json.loads((runs[-1] / "run.json").read_text())
    assert rec["evidence"]["sha256"]["evidence.json"] == sha256_file(tmp_path / "after" / "evidence.json")
    assert rec["result"] == "successful"

    # medai's defaults (no --fail-on, no --waivers): the gate fails on medium and the default waivers apply. No
    # unwaived failure at medium or above is left, and no rule that passed before fails now.
    d = medai_verify(env, *common, "--out", str(tmp_path / "defaults"))
    assert d.returncode == 0, d.stdout[-3000:] + d.stderr[-2000:]
    rep_d = json.loads((tmp_path / "defaults" / "evidence.json").read_text())
    assert rep_d["failOn"] == "medium" and rep_d["gate"]["banner"] is None
    assert rep_d["totals"]["unwaivedBySeverity"]["high"] == 0 and rep_d["totals"]["unwaivedBySeverity"]["medium"] == 0
    assert rep_d["totals"]["pass"] >= rep_before["totals"]["pass"] + len(FIXED_BY_HARDENING)
    eff_d = {r["short"]: r["effective"] for r in rep_d["hosts"][0]["rules"]}
    assert {k for k, v in eff_d.items() if v == "waived"} == {"sudo_add_noexec", "sudoers_explicit_command_args", "sudoers_no_root_target"}
    assert "unwaived by severity: high=0, medium=0" in d.stdout

    # same host, the test's waivers: --fail-on medium instead of high turns the exit code to 1
    # (sudoers_explicit_command_args, medium, is not waived there). Two rules only (--rule), to keep CI short.
    assert {"sudo_add_noexec", "sudoers_explicit_command_args"} <= fa
    rules = ["--rule", RULE + "sudo_add_noexec", "--rule", RULE + "sudoers_explicit_command_args"]
    r = medai_verify(env, *common, *rules, "--out", str(tmp_path / "rules-medium"), "--fail-on", "medium",
                     "--waivers", str(tmp_path / "waivers.yml"))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    rep_medium = json.loads((tmp_path / "rules-medium" / "evidence.json").read_text())
    assert [(b["rule"], b["severity"]) for b in rep_medium["gate"]["blocking"]] == [(RULE + "sudoers_explicit_command_args", "medium")]
    assert rep_medium["totals"]["fail"] == 2 and rep_medium["totals"]["waived"] == 1
    assert json.loads((sorted((tmp_path / "home" / "runs").iterdir())[-1] / "run.json").read_text())["result"] == "gate-failed"

    # one remediation turned off (requiretty): its drop-in goes, the rule fails, and the default gate names it and
    # the host
    h = subprocess.run(["ansible-playbook", "-i", str(inv), str(play), "-e", "medai_hardening_sudo_add_requiretty=false"],
                       capture_output=True, text=True, timeout=600,
                       env=dict(env, ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_HOST_KEY_CHECKING="False"))
    assert h.returncode == 0, h.stdout[-3000:]
    off = medai_verify(env, *common, "--rule", RULE + "sudo_add_requiretty", "--out", str(tmp_path / "requiretty-off"))
    assert off.returncode == 1, off.stdout[-3000:] + off.stderr[-2000:]
    assert f"{node.hostname}" in off.stdout and RULE + "sudo_add_requiretty" in off.stdout
    lab.destroy()


def test_verify_refuses_bad_waivers_before_touching_hosts(tmp_path):
    (tmp_path / "w.yml").write_text("waivers:\n  - {rule: x, scope: all, justification: long enough here}\n")
    (tmp_path / "inv.yml").write_text("all: {}\n")
    r = subprocess.run(["medai", "verify", "--inventory", str(tmp_path / "inv.yml"), "--waivers", str(tmp_path / "w.yml")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, MEDAI_HOME=str(tmp_path / "home")))
    assert r.returncode == 2 and "waivers[0].expires: Field required" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "home").exists()
