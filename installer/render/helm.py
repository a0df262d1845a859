"""Render one chart archive with the bundle's helm, exactly as the install will: hooks and CRDs included, the
release's namespace, and ``--kube-version`` set to the bundled Kubernetes version (without it a chart sees Helm's
built-in default and may render other API versions or refuse)."""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import yaml

from installer.core.helm import helm_command
from installer.render.errors import RenderError

_K3S_VERSION = re.compile(r"v(\d+\.\d+\.\d+)(?:%2B|\+)k3s\d+")


def k3s_kube_version(spec) -> str | None:
    """The Kubernetes version of the manifest's K3s (spec.files entry 'k3s', version read from its URL), e.g.
    '1.34.2'; None when the manifest carries no K3s."""
    for f in spec.files:
        if f.name == "k3s":
            m = _K3S_VERSION.search(f.url)
            if not m:
                raise RenderError(f"spec.files[k3s].url: {f.url!r} names no K3s version (vX.Y.Z+k3sN)")
            return m.group(1)
    return None


def template_args(release: str, archive: Path, namespace: str, kube_version: str | None) -> list[str]:
    """The helm arguments (after 'helm'); values go in on stdin as JSON. Also what the tests give helm directly."""
    args = ["template", release, str(archive), "--include-crds", "--namespace", namespace, "--values", "-"]
    if kube_version:
        args += ["--kube-version", kube_version]
    return args


def render_chart(name: str, version: str, archive: Path, values: dict[str, Any], namespace: str,
                 kube_version: str | None, release: str | None = None) -> list[dict]:
    """helm template with the given values; every non-empty document parsed. One-line RenderError on failure."""
    cmd = helm_command()
    args = template_args(release or name, archive, namespace, kube_version)
    try:
        out = asyncio.run(cmd.run(args, json.dumps(values or {}).encode()))
        docs = list(yaml.safe_load_all(out))
    except Exception as e:  # pyhelm3.errors.Error: str() is helm's stderr; yaml errors for bad output
        text = str(e).strip().splitlines()
        detail = text[-1].removeprefix("Error: ") if text else type(e).__name__
        raise RenderError(f"chart {name} {version}: cannot render with its values: {detail}") from None
    return [d for d in docs if d]
