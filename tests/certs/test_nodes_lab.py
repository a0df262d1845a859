"""`medai certs` reading K3s's certificate files on a real lab node over Ansible (playbooks/certs.yml): files the
test made with openssl at K3s's TLS paths, each reported on one line naming host and file."""
from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from installer.lab.podman import podman_env
from tests.certs.certmaker import openssl_cert
from tests.support.lab import LAB_VARS, node_exec
from tests.support.medai_cli import medai

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

TLS = "/var/lib/rancher/k3s/server/tls"
D = dt.timedelta


def test_node_certificates_are_read_over_ansible(lab_nodes, tmp_path):
    lab = lab_nodes(servers=1)
    try:
        node = lab.nodes[0]
        made = tmp_path / "made"
        files = {
            f"{TLS}/serving-kube-apiserver.crt": openssl_cert(made / "a.crt", "kube-apiserver", sans=("kubernetes",)),
            f"{TLS}/client-admin.crt": openssl_cert(made / "b.crt", "system:admin", end=D(days=5)),
            f"{TLS}/client-scheduler.crt": openssl_cert(made / "c.crt", "system:kube-scheduler", end=D(days=20)),
            f"{TLS}/etcd/server-client.crt": openssl_cert(made / "d.crt", "etcd", start=D(days=400), end=D(days=800)),
            "/var/lib/rancher/k3s/agent/client-kubelet.crt": openssl_cert(made / "e.crt", "system:node:srv",
                                                                          start=D(days=-400), end=D(days=-1)),
        }
        (made / "f.crt").write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
        files[f"{TLS}/client-controller.crt"] = made / "f.crt"
        node_exec(node, f"mkdir -p {TLS}/etcd /var/lib/rancher/k3s/agent")
        for dest, src in files.items():
            subprocess.run(["podman", "cp", str(src), f"{node.name}:{dest}"], env=podman_env(), check=True,
                           capture_output=True)
        inv = lab.inventory(tmp_path / "site.yml", cluster_name="lab-certs", extra_vars=LAB_VARS)
        p = medai(tmp_path / "home", "certs", "--inventory", str(inv), "--json", timeout=240)
    finally:
        lab.destroy()
    assert p.returncode == 2, p.stderr
    k3s = {c["name"]: c for c in json.loads(p.stdout)["certificates"] if c["group"] == "k3s"}
    assert set(k3s) == set(files), sorted(k3s)
    host = node.hostname
    assert all(c["where"] == host for c in k3s.values())
    level = {name: (c["level"], c["fact"]) for name, c in k3s.items()}
    assert level[f"{TLS}/serving-kube-apiserver.crt"][0] == "ok"
    assert level[f"{TLS}/client-admin.crt"][0] == "crit" and "4 days left" in level[f"{TLS}/client-admin.crt"][1]
    assert level[f"{TLS}/client-scheduler.crt"][0] == "warn"
    assert "not yet valid" in level[f"{TLS}/etcd/server-client.crt"][1]
    assert level["/var/lib/rancher/k3s/agent/client-kubelet.crt"][1].startswith("expired")
    assert level[f"{TLS}/client-controller.crt"] == ("crit", k3s[f"{TLS}/client-controller.crt"]["error"])
    lines = [c for c in json.loads(p.stdout)["certificates"] if c["group"] == "vault"]
    assert [c["level"] for c in lines] == ["crit"] and "medai_vault_operators: required for Vault" in lines[0]["fact"]
