"""The real upstream charts of ../shared/fixtures/charts (see its README), rendered as the bundle renders them."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

from installer.bundle.manifest import load_manifest
from installer.render.helm import k3s_kube_version, render_chart

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "bundles" / "platform.yaml"
FIXTURES = Path("/work/shared/fixtures/charts")
if not FIXTURES.is_dir():
    FIXTURES = ROOT.parent / "shared" / "fixtures" / "charts"

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"the upstream chart fixtures ({FIXTURES}) are absent")


@functools.lru_cache(maxsize=1)
def platform():
    return load_manifest(PLATFORM)


def archive(name: str) -> Path:
    c = chart(name)
    if c.path is not None:  # the project's own chart: packaged as `bundle build` packages it
        return _packaged(name)
    return FIXTURES / f"{c.name}-{c.version}.tgz"


@functools.cache
def _packaged(name: str) -> Path:
    import tempfile

    from installer.collect.charts import package_chart

    work = Path(tempfile.mkdtemp(prefix="medai-local-chart-"))
    return package_chart(chart(name), PLATFORM.parent, work / "charts", work / "tmp").path


def chart(name: str):
    return next(c for c in platform().spec.charts if c.name == name)


@functools.cache
def rendered(name: str) -> tuple:
    c = chart(name)
    return tuple(render_chart(c.name, c.version, archive(name), c.values, c.namespace, k3s_kube_version(platform().spec)))
