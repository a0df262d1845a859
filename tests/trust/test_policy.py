"""Spec.policy.registries, an allow-list for where signed images may come from (real build)."""
from __future__ import annotations

import pytest
import yaml

from installer.bundle.policy import allowed
from installer.collect.build import BuildOptions, build_bundle
from installer.core.errors import ManifestError
from tests.trust.conftest import trust_manifest

pytestmark = pytest.mark.loopback


def _with_policy(path, registries):
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["policy"] = {"registries": registries}
    path.write_text(yaml.safe_dump(doc))
    return path


def test_chart_image_from_a_registry_outside_the_allow_list_refuses_the_build(tmp_path, demo_sources, seeded_registry):
    manifest = _with_policy(trust_manifest(tmp_path / "m.yaml", demo_sources, seeded_registry), ["registry.site.example"])
    with pytest.raises(ManifestError) as e:
        build_bundle(BuildOptions(manifest=manifest, out=tmp_path / "b", with_tools=False))
    msg = str(e.value)
    assert msg.startswith("spec.policy.registries: ") and "\n" not in msg
    assert "chart " in msg and seeded_registry.host in msg and "not allowed" in msg and "refused" in msg
    assert not (tmp_path / "b" / "index.json").exists()


def test_allowed_registry_builds_and_says_which_images_came_only_from_charts(tmp_path, demo_sources, seeded_registry):
    manifest = _with_policy(trust_manifest(tmp_path / "m.yaml", demo_sources, seeded_registry), [seeded_registry.host])
    summary = build_bundle(BuildOptions(manifest=manifest, out=tmp_path / "b", with_tools=False))
    chart_only = [n for n in summary.notes if "came only from chart discovery" in n]
    assert chart_only and all(seeded_registry.host in n for n in chart_only)
    assert not any(seeded_registry.tool in n for n in chart_only)  # listed in the manifest (extraImages) itself


def test_allow_list_entries():
    assert allowed("nginx:1.27", ["docker.io"])
    assert allowed("ghcr.io/cilium/cilium:v1", ["ghcr.io/cilium"])
    assert not allowed("ghcr.io/evil/cilium:v1", ["ghcr.io/cilium"])
    assert not allowed("ghcr.io/ciliumevil/x:1", ["ghcr.io/cilium"])
    assert not allowed("evil.example/registry.k8s.io/pause:3", ["registry.k8s.io"])
