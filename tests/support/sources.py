"""Real bundle sources on loopback for tests and the lab demo: a Helm chart repository (index built with
`helm repo index`), plain files and a tiny model directory, all served by the HTTP file server, plus a
function that writes a small manifest pointing at them.

The demo chart's templates cover every place an image can hide: Deployment (with initContainers), StatefulSet,
DaemonSet, ReplicaSet, Job (as a Helm hook), CronJob, bare Pod, and an unknown custom kind carrying a pod
spec. Image references come from values, so a manifest decides which registry they point at.
"""
from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from installer.core.hashing import sha256_bytes

CHART_NAME = "demo"
CHART_VERSION = "1.0.0"

# template file -> (kind, image value key, extra) ; every workload kind discover.py must understand
_WORKLOADS = {
    "deployment.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: {{ .Release.Name }}-web}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              initContainers:
                - name: init
                  image: {{ .Values.images.init | quote }}
              containers:
                - name: web
                  image: {{ .Values.images.web | quote }}
        """,
    "statefulset.yaml": """\
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: {{ .Release.Name }}-db}
        spec:
          serviceName: db
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec:
              containers:
                - name: db
                  image: {{ .Values.images.db | quote }}
        """,
    "daemonset.yaml": """\
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: {{ .Release.Name }}-agent}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec:
              containers:
                - name: agent
                  image: {{ .Values.images.agent | quote }}
        """,
    "job-hook.yaml": """\
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: {{ .Release.Name }}-migrate
          annotations: {"helm.sh/hook": pre-install}
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: migrate
                  image: {{ .Values.images.job | quote }}
        """,
    "cronjob.yaml": """\
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: {{ .Release.Name }}-backup}
        spec:
          schedule: "0 3 * * *"
          jobTemplate:
            spec:
              template:
                spec:
                  restartPolicy: OnFailure
                  containers:
                    - name: backup
                      image: {{ .Values.images.cron | quote }}
        """,
    "pod.yaml": """\
        {{- if .Values.debugPod }}
        apiVersion: v1
        kind: Pod
        metadata: {name: {{ .Release.Name }}-debug}
        spec:
          containers:
            - name: debug
              image: {{ .Values.images.pod | quote }}
        {{- end }}
        """,
    "custom.yaml": """\
        apiVersion: example.com/v1
        kind: Worker
        metadata: {name: {{ .Release.Name }}-worker}
        spec:
          template:
            spec:
              containers:
                - name: worker
                  image: {{ .Values.images.custom | quote }}
        """,
}

IMAGE_KEYS = ("init", "web", "db", "agent", "job", "cron", "pod", "custom")


def make_chart(workdir: Path, name: str = CHART_NAME, version: str = CHART_VERSION) -> Path:
    """Write the demo chart and package it with `helm package`; returns the .tgz."""
    src = workdir / "src" / name
    (src / "templates").mkdir(parents=True, exist_ok=True)
    (src / "Chart.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v2", "name": name, "version": version, "appVersion": version, "type": "application"}))
    (src / "values.yaml").write_text(yaml.safe_dump(
        {"debugPod": True, "images": {k: f"example.invalid/{name}/{k}:1" for k in IMAGE_KEYS}}))
    for fname, body in _WORKLOADS.items():
        (src / "templates" / fname).write_text(textwrap.dedent(body))
    out = workdir / "pkg"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["helm", "package", str(src), "--destination", str(out)], check=True, capture_output=True)
    return out / f"{name}-{version}.tgz"


@dataclass
class DemoSources:
    """What demo_sources serves. URLs are on 127.0.0.1 only."""

    base_url: str
    root: Path
    chart_repo: str  # http://127.0.0.1:PORT/charts (helm repo index'ed)
    chart_name: str
    chart_version: str
    chart_sha256: str
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (url, sha256)
    model_url_dir: str = ""  # http://…/model (file server listing; use model_dir for a local source)
    model_dir: Path | None = None
    model_files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256


def serve_demo_sources(file_server, subdir: str = "demo") -> DemoSources:
    """Fill file_server.root/<subdir> with a chart repo, files and a tiny model; return where they are."""
    root = file_server.root / subdir
    charts = root / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    tgz = make_chart(root / "chart-build")
    target = charts / tgz.name
    target.write_bytes(tgz.read_bytes())
    subprocess.run(["helm", "repo", "index", str(charts), "--url", f"{file_server.url}/{subdir}/charts"],
                   check=True, capture_output=True)
    files_dir = root / "files"
    files_dir.mkdir(exist_ok=True)
    contents = {
        "install.sh": b"#!/bin/sh\necho 'demo install script'\n",
        "payload.bin": bytes(range(256)) * 4096,  # 1 MiB, enough to interrupt and resume
    }
    files = {}
    for name, data in contents.items():
        (files_dir / name).write_bytes(data)
        files[name] = (f"{file_server.url}/{subdir}/files/{name}", sha256_bytes(data))
    model = root / "model"
    (model / "tokenizer").mkdir(parents=True, exist_ok=True)
    model_contents = {
        "config.json": b'{"model_type": "demo", "hidden_size": 8}\n',
        "weights.safetensors": b"\x00\x01" * 50000,
        "tokenizer/vocab.txt": b"hello\nworld\n",
    }
    for rel, data in model_contents.items():
        (model / rel).write_bytes(data)
    return DemoSources(
        base_url=f"{file_server.url}/{subdir}",
        root=root,
        chart_repo=f"{file_server.url}/{subdir}/charts",
        chart_name=CHART_NAME,
        chart_version=CHART_VERSION,
        chart_sha256=sha256_bytes(target.read_bytes()),
        files=files,
        model_url_dir=f"{file_server.url}/{subdir}/model",
        model_dir=model,
        model_files={rel: sha256_bytes(d) for rel, d in model_contents.items()},
    )


def chart_images(images: dict[str, str]) -> dict:
    """Chart values pointing each workload at an image (keys from IMAGE_KEYS; missing keys are left default)."""
    return {"images": dict(images)}


def write_manifest(path: Path, src: DemoSources, *, images: list[str] | None = None,
                   chart_values: dict | None = None, extra_images: list[str] | None = None,
                   files: list[str] | None = None, with_model: bool = True, with_chart: bool = True,
                   name: str = "demo", extra_spec: dict | None = None) -> Path:
    """A small bundle manifest over the demo sources. Returns path."""
    spec: dict = {"platforms": ["linux/amd64"], "images": [{"ref": r} for r in images or []]}
    if with_chart:
        spec["charts"] = [{
            "name": src.chart_name, "version": src.chart_version, "repo": src.chart_repo,
            "values": chart_values or {}, "extraImages": list(extra_images or []),
        }]
    spec["files"] = [{"name": n, "url": src.files[n][0], "sha256": src.files[n][1]}
                     for n in (files if files is not None else sorted(src.files))]
    if with_model:
        spec["models"] = [{"name": "tiny", "source": f"file://{src.model_dir}"}]
    spec.update(extra_spec or {})
    doc = {"apiVersion": "medai/v1", "kind": "Bundle",
           "metadata": {"name": name, "version": "0.1.0"}, "spec": spec}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def seeded_chart_values(seeded) -> dict:
    """Chart values that point the demo chart's workloads at the images of tests.support.images.seeded_registry.

    base, app and multi are reached through templates; tool is left for a test to list as an extraImage, and
    the bare Pod is switched off (its template is covered by the discovery tests)."""
    return {"debugPod": False, "images": {
        "init": seeded.base, "web": seeded.app, "db": seeded.multi, "agent": seeded.multi,
        "job": seeded.base, "cron": seeded.app, "custom": seeded.app, "pod": seeded.tool,
    }}


@pytest.fixture(scope="session")
def demo_sources(file_server) -> DemoSources:
    """A Helm chart repository, files and a tiny model served over loopback HTTP (see serve_demo_sources)."""
    return serve_demo_sources(file_server)
