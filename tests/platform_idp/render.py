"""Render the platform roles for real (ansible-playbook on localhost, render mode) and their charts with the
bundled Helm at the bundle's K3s version; validate core objects (kubernetes-validate) and CNPG resources
(against the CRDs the CNPG chart ships). Nothing here talks to a cluster."""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO.parent / "shared" / "fixtures" / "charts"  # ../shared beside the checkout
HELM = REPO / ".tools" / "bin" / "helm"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


@functools.cache
def k3s_kube_version() -> str:
    """The Kubernetes version of the K3s the bundle carries (bundles/platform.yaml's k3s file URL)."""
    doc = yaml.safe_load((REPO / "bundles" / "platform.yaml").read_text())
    url = next(f["url"] for f in doc["spec"]["files"] if f["name"] == "k3s")
    m = re.search(r"/v(\d+\.\d+\.\d+)(?:%2B|\+)k3s\d+/", url)
    assert m, url
    return m.group(1)


def run_role(role: str, extra_vars: dict, workdir: Path) -> Path:
    """Apply ``role`` in render mode on localhost (a 3-server, 2-agent inventory); returns its render dir."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{role}-render"
    inv = {"all": {"children": {
        "servers": {"hosts": {h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                              for h in ("srv1", "srv2", "srv3")}},
        "agents": {"hosts": {h: {"ansible_connection": "local"} for h in ("gpu1", "gpu2")}}}}}
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inv))
    play = [{"hosts": "srv1", "gather_facts": False, "roles": [{"role": role}]}]
    (workdir / f"{role}-play.yml").write_text(yaml.safe_dump(play))
    vars_file = workdir / f"{role}-vars.yml"
    vars_file.write_text(yaml.safe_dump({f"medai_{role}_render_dir": str(out), **extra_vars}))
    os.chmod(vars_file, 0o600)
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(workdir / ".ansible-tmp"), "ANSIBLE_HOME": str(workdir / ".ansible")}
    r = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(workdir / "inventory.yml"), str(workdir / f"{role}-play.yml"),
                        "-e", f"@{vars_file}"], capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise RoleFailed(r.stdout[-3000:] + r.stderr[-2000:])
    return out


class RoleFailed(AssertionError):
    pass


def helm_template(chart: str, release: str, namespace: str, values: Path | None = None) -> list[dict]:
    cmd = [str(HELM), "template", release, str(CHARTS / chart), "--namespace", namespace,
           "--kube-version", k3s_kube_version()]
    if values:
        cmd += ["--values", str(values)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def validate_core(obj: dict) -> None:
    """kubernetes-validate, strict (unknown fields fail), at the bundle's Kubernetes minor."""
    major, minor, _ = k3s_kube_version().split(".")
    kubernetes_validate.validate(obj, f"{major}.{minor}.0", strict=True)


@functools.cache
def cnpg_crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema from the CNPG chart's own CRDs."""
    import tarfile

    out = {}
    with tarfile.open(CHARTS / "cloudnative-pg-0.28.3.tgz") as t:
        text = t.extractfile("cloudnative-pg/templates/crds/crds.yaml").read().decode()
    for d in yaml.safe_load_all(re.sub(r"\{\{.*?\}\}", "", text)):
        if not d or d.get("kind") != "CustomResourceDefinition":
            continue
        for v in d["spec"]["versions"]:
            out[(f"{d['spec']['group']}/{v['name']}", d["spec"]["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
    return out


def _closed(s):
    """OpenAPI structural schema -> JSON Schema that refuses unknown fields (as the API server prunes/rejects)."""
    if isinstance(s, list):
        return [_closed(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {k: _closed(v) for k, v in s.items() if not k.startswith("x-kubernetes")}
    if "properties" in out and "additionalProperties" not in out and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def validate_cr(obj: dict) -> None:
    schema = cnpg_crd_schemas()[(obj["apiVersion"], obj["kind"])]
    jsonschema.Draft7Validator(_closed(schema)).validate(obj)
