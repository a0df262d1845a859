"""playbooks/upgrade.yml and rollback.yml parse with the real ansible-core and keep the rules the issue sets.
They are executed only against a running K3s cluster (tests/upgrade/test_k3s_e2e.py)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("playbook", ["upgrade.yml", "rollback.yml"])
def test_syntax(tmp_path, playbook):
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"servers": {"hosts": {"s1": {}, "s2": {}}}, "agents": {"hosts": {"a1": {}}}}}}))
    r = subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inv), "--syntax-check", str(ROOT / "playbooks" / playbook)],
                       capture_output=True, text=True, env={"ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr


def test_upgrade_playbook_order_and_drain_rules():
    plays = yaml.safe_load((ROOT / "playbooks/upgrade.yml").read_text())
    assert [p["tags"][0] for p in plays] == ["snapshot", "servers", "agents", "hosts"]
    servers, agents = plays[1], plays[2]
    assert servers["serial"] == 1 and agents["serial"] == "{{ medai_upgrade_batch | default(1) }}"
    drain = next(t for t in servers["pre_tasks"] if "drain" in t["name"])
    argv = drain["ansible.builtin.command"]["argv"]
    assert "--disable-eviction'] if medai_upgrade_disable_eviction | bool else []" in argv
    snap = plays[0]["tasks"][0]["ansible.builtin.command"]["cmd"]
    assert snap == "k3s etcd-snapshot save --name {{ ('medai-' ~ medai_upgrade_run_id) | quote }}"
    assert any("assert" in str(t) and "checksum" in str(t) for t in plays[0]["tasks"])


def test_rollback_follows_the_k3s_restore_procedure():
    plays = yaml.safe_load((ROOT / "playbooks/rollback.yml").read_text())
    text = (ROOT / "playbooks/rollback.yml").read_text()
    assert plays[0]["tasks"][0]["ansible.builtin.systemd_service"]["state"] == "stopped"
    assert "--cluster-reset" in text and "--cluster-reset-restore-path=" in text
    assert next(p for p in plays if "cluster reset" in str(p))["hosts"] == "servers[0]"
    others = next(p for p in plays if p["hosts"] == "servers[1:]")
    assert others["tasks"][0]["ansible.builtin.file"] == {"path": "/var/lib/rancher/k3s/server/db", "state": "absent"}
