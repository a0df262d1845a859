"""Static checks of the deploy playbooks and roles: they parse, and every default is documented."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["preflight", "stage", "k3s", "cilium", "metallb", "egress"]


def test_playbooks_parse_with_all_roles():
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    r = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(ROOT / "inventories/example/site.yml"),
                        str(ROOT / "playbooks/site.yml"), str(ROOT / "playbooks/reset.yml")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_site_order_and_serial_servers():
    plays = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    roles = [p["roles"][0]["role"] for p in plays if p.get("roles")]
    assert roles == ["preflight", "os", "egress", "stage", "k3s", "gpu", "k3s", "vault", "hardening", "compliance", "egress"]
    servers = next(p for p in plays if p.get("hosts") == "servers")
    assert servers["serial"] == 1 and servers["roles"][0]["tags"] == ["k3s"]


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_documented_and_tagged(role):
    base = ROOT / "roles" / role
    defaults = yaml.safe_load((base / "defaults/main.yml").read_text()) or {}
    spec = yaml.safe_load((base / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) <= set(spec), f"undocumented: {set(defaults) - set(spec)}"
    for name, opt in spec.items():
        assert opt.get("description"), f"{role}: {name} has no description"
        assert name.startswith(f"medai_{role}_") or name in ("medai_stage_files",), f"{role}: {name} prefix"
    tasks = yaml.safe_load((base / "tasks/main.yml").read_text())
    for t in tasks:
        assert role in t.get("tags", []), f"{role}: task {t.get('name')} lacks tag {role}"
        mod = next(k for k in t if k not in ("name", "tags", "when", "vars", "loop", "loop_control", "register",
                                             "changed_when", "check_mode", "args", "no_log", "diff", "notify",
                                             "environment", "delegate_to", "until", "retries", "delay", "become"))
        assert mod.startswith("ansible.builtin."), f"{role}: {t.get('name')}: {mod} is not FQCN"
    assert (base / "molecule/default/molecule.yml").is_file() and (base / "molecule/default/verify.yml").is_file()


def test_secret_tasks_have_no_log():
    tasks = yaml.safe_load((ROOT / "roles/k3s/tasks/main.yml").read_text())
    for t in tasks:
        if "medai_k3s_token" in yaml.safe_dump(t):
            assert t.get("no_log") is True, t["name"]
