"""roles/inference run for real with ansible-playbook on this machine (connection local, a temporary auto-deploy
directory): with a GPU host it writes the HelmChart whose inline chart and values render with helm and validate;
on a CPU-only site it prints one line and writes nothing. K3s' helm-controller is not executed here."""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

from .conftest import CHART, DIGEST, HELM, docs, helm_template, k3s_kube_version, weights_for

ROOT = Path(__file__).resolve().parents[2]


def run_role(tmp: Path, gpu_hosts: list[str], extra: dict | None = None) -> subprocess.CompletedProcess:
    archive = tmp / "charts"
    archive.mkdir(exist_ok=True)
    subprocess.run([str(HELM), "package", str(CHART), "-d", str(archive)], check=True, capture_output=True)
    (tmp / "inv.yml").write_text(yaml.safe_dump({"all": {"children": {"servers": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv/bin/python")}}}}}}))
    ev = {"medai_bundle_dir": str(tmp), "medai_inference_gpu_hosts": gpu_hosts,
          "medai_inference_manifests_dir": str(tmp / "manifests"),
          "medai_inference_image_digest": DIGEST,
          "medai_inference_weights": {"v1": weights_for("mistral-7b-instruct-v0.3", {"config.json": b"{}"})},
          **(extra or {})}
    (tmp / "ev.json").write_text(json.dumps(ev))
    (tmp / "play.yml").write_text("- hosts: servers\n  gather_facts: false\n  roles: [inference]\n")
    (tmp / "manifests").mkdir(exist_ok=True)
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "default"}
    return subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(tmp / "inv.yml"), "-e", f"@{tmp / 'ev.json'}",
                           str(tmp / "play.yml")], capture_output=True, text=True, env=env, timeout=300)


def test_gpu_site_gets_a_helmchart_that_renders_and_validates(tmp_path):
    r = run_role(tmp_path, ["gpu-1"])
    assert r.returncode == 0, r.stdout[-3000:]
    path = tmp_path / "manifests/medai-inference.yaml"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    hc = yaml.safe_load(path.read_text())
    assert hc["kind"] == "HelmChart" and hc["spec"]["targetNamespace"] == "medai-inference"
    chart = tmp_path / "inline.tgz"
    chart.write_bytes(base64.b64decode(hc["spec"]["chartContent"]))
    values = yaml.safe_load(hc["spec"]["valuesContent"])
    res = helm_template(chart, release="medai-inference", namespace="medai-inference", values=values, tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    ds = docs(res.stdout)
    for d in ds:
        kubernetes_validate.validate(d, k3s_kube_version(), strict=True)
    dep = next(d for d in ds if d["kind"] == "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "medai-inference-api-key"


def test_cpu_only_site_leaves_it_out_with_one_line(tmp_path):
    (tmp_path / "manifests").mkdir()
    stale = tmp_path / "manifests/medai-inference.yaml"
    stale.write_text("left from when the site had a GPU\n")
    r = run_role(tmp_path, [])
    assert r.returncode == 0, r.stdout[-3000:]
    assert "inference: left out: no host in group gpu" in r.stdout
    assert not stale.exists()


def test_missing_digest_is_refused_before_writing(tmp_path):
    r = run_role(tmp_path, ["gpu-1"], {"medai_inference_image_digest": ""})
    assert r.returncode != 0 and "medai_inference_image_digest (unset) must be the vLLM digest" in r.stdout
    assert not (tmp_path / "manifests/medai-inference.yaml").exists()
