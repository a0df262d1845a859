"""The whole path on real inputs: `bundle build` of the fixture charts (served by a loopback Helm repository) with
their images fetched under their upstream names through `spec.mirrors` from a loopback registry (a small test
image standing in for each upstream image, whose layers cannot be downloaded here; Cilium's digest pins switched
off in these values, its images a two-platform index the build reduces to linux/amd64), then `medai render` on
inventories/example against the built bundle: Cilium's images pinned to the platform manifest the bundle carries."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from installer.bundle.artifacts import BundleIndex
from installer.bundle.manifest import parse_manifest
from installer.collect.build import BuildOptions, build_bundle
from installer.oci.mirrors import mirrored_name
from installer.render.gate import plan_images
from installer.render.helm import k3s_kube_version, render_chart
from tests.support.fixture_bundles import fixture_manifest
from tests.support.fixture_charts import FIXTURES, ROOT, needs_fixtures
from tests.support.images import build_seed_layout, skopeo_push

pytestmark = [needs_fixtures, pytest.mark.loopback]
INVENTORY = ROOT / "inventories" / "example" / "site.yml"


@pytest.fixture(scope="module")
def built(registry, file_server, tmp_path_factory):
    doc = fixture_manifest()
    charts = file_server.root / "platform" / "charts"
    charts.mkdir(parents=True)
    for c in doc["spec"]["charts"]:
        shutil.copyfile(FIXTURES / f"{c['name']}-{c['version']}.tgz", charts / f"{c['name']}-{c['version']}.tgz")
        c["repo"] = f"{file_server.url}/platform/charts"
    subprocess.run(["helm", "repo", "index", str(charts), "--url", f"{file_server.url}/platform/charts"], check=True)
    work = tmp_path_factory.mktemp("build")
    # names the K3s version the charts are rendered for; not a K3s binary and never installed
    k3s = work / "v1.34.2+k3s1" / "k3s"
    k3s.parent.mkdir()
    k3s.write_bytes(b"not a K3s binary: its URL names the K3s version for --kube-version in this render test\n")
    from installer.core.hashing import sha256_file
    doc["spec"]["files"] = [{"name": "k3s", "url": f"file://{k3s}", "sha256": sha256_file(k3s), "hosts": ["servers"]}]
    mirrors = {"quay.io": f"{registry.host}/mirror/quay", "docker.io": f"{registry.host}/mirror/docker"}
    doc["spec"]["mirrors"] = mirrors
    manifest = parse_manifest(doc)
    rendered = {c.name: render_chart(c.name, c.version, charts / f"{c.name}-{c.version}.tgz", c.values, c.namespace,
                                     k3s_kube_version(manifest.spec)) for c in manifest.spec.charts}
    seed = work / "seed"
    build_seed_layout(seed)
    needed = plan_images(manifest.spec, rendered).needed
    for ref in needed:
        multi = ref.startswith("quay.io/cilium/")
        skopeo_push(seed, "multi" if multi else "app", mirrored_name(ref, mirrors), all_platforms=multi)
    path = work / "platform.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = work / "bundle"
    summary = build_bundle(BuildOptions(manifest=path, out=out, with_tools=False))
    return out, summary, needed


def test_the_build_carries_every_discovered_image_under_its_upstream_name(built):
    out, summary, needed = built
    from installer.render.gate import carried_images
    carried = carried_images(out / "oci")
    assert set(needed) <= set(carried)
    assert "docker.io/longhornio/support-bundle-kit:v0.0.61" in carried
    assert not [r for r in carried if "mirror/" in r]  # the mirror's names never reach the bundle
    assert summary.counts["image"] == len(needed) >= 18


def test_medai_render_on_the_built_bundle(built, tmp_path):
    out, _, needed = built
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", "render", "--inventory", str(INVENTORY),
                        "--bundle", str(out), "--out", str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(needed)} images, all in the bundle; Kubernetes 1.34.2" in r.stdout
    assert (tmp_path / "r" / "03-longhorn.yaml").is_file()
    [agent] = BundleIndex.of(json.loads((out / "index.json").read_text())).images("quay.io/cilium/cilium")
    amd64 = agent.platform_digests["linux/amd64"]
    assert amd64 != agent.digest
    cilium = (tmp_path / "r" / "01-cilium.yaml").read_text()
    assert f"image: quay.io/cilium/cilium:v1.18.0@{amd64}" in cilium and agent.digest not in cilium
