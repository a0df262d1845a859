"""Local sources for `medai lab demo`: everything the demo bundle holds is made here, on this machine, from
nothing downloaded — images cut from the lab node's own Debian root filesystem and pushed to a loopback
docker-registry, a small Helm chart pushed to the same registry (OCI), plain files and a tiny model directory.

(The test suite has its own richer sources in tests/support/; the demo cannot import test code.)
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from installer.core.errors import LabError
from installer.core.hashing import sha256_file
from installer.core.resources import SOURCE_ROOT
from installer.lab.image import NODE_IMAGE, build_image
from installer.lab.podman import podman, podman_env, run

PROJECT_ROOT = SOURCE_ROOT
CHART_NAME = "medai-demo"
CHART_VERSION = "0.1.0"
# Files a few Debian images are cut from (the node image's own root filesystem).
ROOTFS_PATHS = ["etc/os-release", "usr/lib/os-release", "etc/debian_version", "usr/share/common-licenses/Apache-2.0"]


@dataclass
class DemoSources:
    images: dict[str, str]  # role in the chart -> image ref in the loopback registry
    chart_repo: str  # oci://127.0.0.1:PORT/charts
    files: dict[str, tuple[Path, list[str]]] = field(default_factory=dict)  # name -> (path, inventory groups)
    model_dir: Path | None = None


def _images_from_rootfs(registry: str, work: Path) -> dict[str, str]:
    """Two small images from the lab node's root filesystem: base (one layer) and app (base + one layer)."""
    base = f"{registry}/medai-demo/debian-base:12"
    app = f"{registry}/medai-demo/hello:1.0"
    build_image()  # a no-op when the node image is there; on an empty podman store it is made here, first
    tar = subprocess.run(["podman", "run", "--rm", "--network", "none", NODE_IMAGE, "tar", "-C", "/", "-cf", "-",
                          *ROOTFS_PATHS], env=podman_env(), capture_output=True, timeout=120)
    if tar.returncode != 0:
        raise LabError(f"cutting files from {NODE_IMAGE}: {tar.stderr.decode(errors='replace').strip()[-200:]}")
    imp = subprocess.run(["podman", "import", "--change", 'CMD ["/bin/true"]', "-", base], input=tar.stdout,
                         env=podman_env(), capture_output=True, timeout=120)
    if imp.returncode != 0:
        raise LabError(f"podman import {base}: {imp.stderr.decode(errors='replace').strip()[-200:]}")
    ctx = work / "app-context"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "hello.txt").write_text("hello from the medai lab demo\n")
    (ctx / "Containerfile").write_text(f"FROM {base}\nCOPY hello.txt /srv/hello.txt\nCMD [\"/bin/true\"]\n")
    try:
        podman("build", "--pull=never", "--network", "none", "-t", app, str(ctx), timeout=300, what=f"podman build {app}")
        for ref in (base, app):
            podman("push", "--tls-verify=false", ref, timeout=300, what=f"podman push {ref}")
    finally:
        podman("rmi", "-f", app, base, check=False)
    return {"web": app, "init": base}


def _chart(registry: str, work: Path) -> str:
    src = work / "chart" / CHART_NAME
    (src / "templates").mkdir(parents=True, exist_ok=True)
    (src / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": CHART_NAME, "version": CHART_VERSION,
                                                   "appVersion": CHART_VERSION, "type": "application"}))
    (src / "values.yaml").write_text(yaml.safe_dump({"images": {"web": "example.invalid/web:1", "init": "example.invalid/init:1"}}))
    (src / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Release.Name }}-hello}\n"
        "spec:\n  selector: {matchLabels: {app: hello}}\n  template:\n    metadata: {labels: {app: hello}}\n"
        "    spec:\n      initContainers:\n        - name: init\n          image: {{ .Values.images.init | quote }}\n"
        "      containers:\n        - name: web\n          image: {{ .Values.images.web | quote }}\n")
    pkg = work / "chart" / "pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    run(["helm", "package", str(src), "--destination", str(pkg)], what="helm package")
    repo = f"oci://{registry}/charts"
    run(["helm", "push", str(pkg / f"{CHART_NAME}-{CHART_VERSION}.tgz"), repo, "--plain-http"], what="helm push")
    return repo


def _files_and_model(work: Path) -> tuple[dict[str, tuple[Path, list[str]]], Path]:
    files_dir = work / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    notes = files_dir / "site-notes.txt"
    notes.write_text("medai lab demo: this file travels in the bundle and is staged on every node\n")
    files: dict[str, tuple[Path, list[str]]] = {"site-notes.txt": (notes, ["all"])}
    scap = PROJECT_ROOT / ".tools" / "scap" / "ssg-debian12-ds.xml"
    if scap.is_file():  # SCAP content for `medai verify` (installed by .ci/setup-host.sh)
        files[scap.name] = (scap, ["all"])
    model = work / "model"
    (model / "tokenizer").mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "medai-demo", "hidden_size": 8}) + "\n")
    (model / "tokenizer" / "vocab.txt").write_text("hello\nworld\n")
    (model / "weights.safetensors").write_bytes(bytes(range(256)) * 256)
    return files, model


def make_sources(registry: str, work: Path) -> DemoSources:
    """Images and chart into the loopback registry, files and the model on disk; returns where they are."""
    images = _images_from_rootfs(registry, work)
    repo = _chart(registry, work)
    files, model = _files_and_model(work)
    return DemoSources(images=images, chart_repo=repo, files=files, model_dir=model)


def write_manifest(path: Path, src: DemoSources, os_packages: list[str] | None) -> Path:
    spec: dict = {
        "platforms": ["linux/amd64"],
        "charts": [{"name": CHART_NAME, "version": CHART_VERSION, "repo": src.chart_repo, "namespace": "medai-demo",
                    "values": {"images": src.images}}],
        "files": [{"name": name, "url": p.as_uri(), "sha256": _sha256(p), "hosts": groups}
                  for name, (p, groups) in sorted(src.files.items())],
        "models": [{"name": "tiny-demo", "source": src.model_dir.as_uri()}] if src.model_dir else [],
    }
    if os_packages:
        spec["osPackages"] = [{"release": "debian-12", "packages": os_packages}]
    doc = {"apiVersion": "medai/v1", "kind": "Bundle",
           "metadata": {"name": "medai-lab-demo", "version": "0.1.0", "description": "built by `medai lab demo`"},
           "spec": spec}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _sha256(p: Path) -> str:
    return sha256_file(p)
