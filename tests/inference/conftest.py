"""Helm renders of charts/medai-inference and the bundled NVIDIA device-plugin chart (helm 3 from .tools/bin),
validated with kubernetes-validate at the K3s version bundles/platform.yaml pins. Rendering only: neither K3s,
the device plugin nor vLLM is executed here."""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / ".tools/bin/helm"
CHART = REPO / "charts/medai-inference"
DEVICE_PLUGIN = REPO.parent / "shared/fixtures/charts/nvidia-device-plugin-0.17.4.tgz"
DIGEST = "sha256:" + "ab" * 32


def k3s_kube_version() -> str:
    """1.34.2 from the k3s file URL in bundles/platform.yaml (v1.34.2%2Bk3s1)."""
    doc = yaml.safe_load((REPO / "bundles/platform.yaml").read_text())
    url = next(f["url"] for f in doc["spec"]["files"] if f["name"] == "k3s")
    return re.search(r"/v(\d+\.\d+\.\d+)(?:%2B|\+)k3s", url).group(1)


def helm_template(chart: Path, *, release: str, namespace: str, values: dict | None = None,
                  tmp: Path | None = None) -> subprocess.CompletedProcess:
    if not HELM.exists():
        pytest.skip(f"{HELM} not found: run .ci/setup-host.sh")
    cmd = [str(HELM), "template", release, str(chart), "--namespace", namespace, "--kube-version", k3s_kube_version()]
    if values is None:
        return subprocess.run(cmd, capture_output=True, text=True)
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        vf = Path(d) / f"values-{release}.json"
        vf.write_text(json.dumps(values))
        return subprocess.run([*cmd, "-f", str(vf)], capture_output=True, text=True)


def docs(stdout: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(stdout) if d]


def weights_for(name: str, files: dict[str, bytes]) -> str:
    import hashlib

    prefix = f"models/{name}"
    idx = {"artifacts": [{"kind": "model", "name": name, "path": prefix, "paths": [f"{prefix}/{p}" for p in files]}],
           "files": [{"path": f"{prefix}/{p}", "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                     for p, b in files.items()]}
    return json.dumps(idx)


def base_values(**over) -> dict:
    v = {"image": {"digest": DIGEST},
         "weights": {"v1": weights_for("mistral-7b-instruct-v0.3", {"config.json": b"{}"})}}
    v.update(over)
    return v
