"""`medai charts images`: what image discovery finds in one chart archive (rendered with helm at the given
Kubernetes version), and where: chart, kind, object, field path."""
from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from installer.core.yamldoc import read_yaml
from installer.render.discover import find_images
from installer.render.errors import RenderError
from installer.render.gate import ImagePlan
from installer.render.helm import render_chart


@dataclass
class ChartImages:
    name: str
    version: str
    findings: list = field(default_factory=list)  # installer.render.discover's findings, in discovery's order


def chart_meta(archive: Path) -> dict:
    """The archive's top-level Chart.yaml; one line when it is not a Helm chart archive."""
    try:
        with tarfile.open(archive) as t:
            member = next(m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
            return yaml.safe_load(t.extractfile(member).read())
    except (OSError, tarfile.TarError, StopIteration, yaml.YAMLError) as e:
        raise RenderError(f"{archive}: not a Helm chart archive ({type(e).__name__})") from None


def chart_images(archive: Path, values: Path | None = None, namespace: str = "default",
                 kube_version: str | None = None, why: str | None = None) -> ChartImages:
    """Render ``archive`` with the values file and find its images; ``why``: only the places that reference."""
    if not archive.is_file():
        raise RenderError(f"{archive}: chart archive not found")
    meta = chart_meta(archive)
    vals = {}
    if values is not None:
        vals = read_yaml(values, RenderError, "values file") or {}
        if not isinstance(vals, dict):
            raise RenderError(f"{values}: values must be a YAML mapping")
    name = str(meta.get("name", archive.stem))
    version = str(meta.get("version", "?"))
    findings = find_images({name: render_chart(name, version, archive, vals, namespace, kube_version)})
    if why:
        findings = ImagePlan(findings=findings).why(why)
        if not findings:
            raise RenderError(f"{why}: not found in chart {name}'s rendered output")
    return ChartImages(name, str(meta.get("version")), findings)
