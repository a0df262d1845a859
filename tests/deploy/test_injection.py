"""Values from the inventory or the bundle never become shell code or YAML structure.

Rendered with Ansible's own templating engine (ansible-core's Templar), then run with bash / parsed as YAML.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

ROOT = Path(__file__).resolve().parents[2]


def render(text: str, **variables) -> str:
    return Templar(loader=DataLoader(), variables=variables).template(text)


def _task(path: str, name: str) -> dict:
    """The task of that name in a tasks file, at the top or inside a block."""
    def walk(tasks):
        for t in tasks or []:
            yield t
            for key in ("block", "rescue", "always"):
                yield from walk(t.get(key))
    return next(t for t in walk(yaml.safe_load((ROOT / path).read_text())) if t["name"] == name)


def test_os_repo_shell_lines_quote_a_hostile_bundle_path(tmp_path):
    marker = tmp_path / "PWNED"
    bundle = tmp_path / 'bundle"; touch PWNED; echo "$(touch PWNED)'
    (bundle / "os" / "debian-12").mkdir(parents=True)
    (bundle / "os" / "debian-12" / "Release").write_text("x\n")
    pack = _task("roles/os/tasks/repo.yml", "OS | pack the release's repository on the control host")
    script = render(pack["ansible.builtin.shell"], medai_os_bundle_dir=str(bundle), medai_os_release="debian-12",
                    _medai_os_tar_local=str(tmp_path / "out $(touch x).tar"))
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not marker.exists() and not (tmp_path / "x").exists()
    assert (tmp_path / "out $(touch x).tar").is_file()

    unpack = _task("roles/os/tasks/repo.yml", "OS | unpack the repository (a fresh directory, no stale packages)")
    repo = tmp_path / "repo$(touch PWNED)"
    (tmp_path / "out $(touch x).tar").rename(Path(str(repo) + ".tar"))
    script = render(unpack["ansible.builtin.shell"], _medai_os_repo=str(repo))
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not marker.exists() and (repo / "Release").is_file()


def test_k3s_config_values_stay_yaml_scalars():
    tpl = (ROOT / "roles/k3s/templates/config.yaml.j2").read_text()
    evil = 'https://10.0.0.1:6443\ncluster-init: true\nkube-apiserver-arg: ["anonymous-auth=true"]'
    common = dict(medai_k3s_tls_san=["api.site"], medai_k3s_disable=["traefik\nsecrets-encryption: false"],
                  medai_k3s_audit_log_maxage=30, medai_k3s_audit_log_maxbackup=10, medai_k3s_audit_log_maxsize=100,
                  medai_k3s_node_labels=['a=b"\nprotect-kernel-defaults: false'], medai_k3s_node_taints=[],
                  medai_k3s_server_url=evil, medai_k3s_first_server="s1", medai_k3s_disable_kube_proxy=True,
                  medai_k3s_cluster_cidr="10.42.0.0/16\nprotect-kernel-defaults: false", medai_k3s_service_cidr="10.43.0.0/16")
    for role, host in (("server", "s2"), ("agent", "a1")):
        doc = yaml.safe_load(render(tpl, medai_k3s_role=role, inventory_hostname=host, ansible_host="10.0.0.9", **common))
        assert doc["server"] == evil and "cluster-init" not in doc
        assert doc["protect-kernel-defaults"] is True
        assert doc["node-label"] == ['a=b"\nprotect-kernel-defaults: false']
        if role == "server":
            assert doc["disable"] == ["traefik\nsecrets-encryption: false"] and doc["secrets-encryption"] is True
            assert doc["cluster-cidr"] == "10.42.0.0/16\nprotect-kernel-defaults: false"
            assert "anonymous-auth=true" not in doc["kube-apiserver-arg"]
            assert "10.0.0.9" in doc["tls-san"]
