"""The full platform render for an inventory, from the upstream chart fixtures, one file per release:

    .venv/bin/python -m tests.support.render_platform --inventory inventories/example/site.yml \\
        --charts ../shared/fixtures/charts DIR

DIR/NN-RELEASE.yaml holds, in the order the install applies them, the Namespace (with the labels the install
gives it; a namespace Helm's --create-namespace makes is written bare, as Helm makes it), every object of the
release (hooks and CRDs included), the objects medai applies once the release is ready and those its hook applies
(Keycloak's realm Job). The bundle is made from the chart archives (tests.support.fixture_bundles: stand-in
images for every image the gate asks for) and rendered by installer.platform.render.render_site, as `medai render`
renders a real one; the coherence findings, if any, are printed after the files. The tests use the same code
(render(), write()).
"""
from __future__ import annotations

import argparse
import copy
import functools
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from installer.deploy.coherence_step import made_outside_render
from installer.deploy.inventory import load_inventory
from installer.platform.coherence import Outside, with_applied
from installer.platform.coherence.model import CLUSTER_SCOPED
from installer.platform.render import SiteRender, render_site
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import FIXTURES

# Images no chart names that the site objects and hooks use (the bundle manifest's spec.images).
EXTRA_IMAGES = ("docker.io/adorsys/keycloak-config-cli:6.5.1-26.0.5", "ghcr.io/cloudnative-pg/postgresql:17.5",
                "ghcr.io/aquasecurity/trivy-db:2", "ghcr.io/aquasecurity/trivy-java-db:1")


DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass
class Rendered:
    inv: object
    site: SiteRender
    index: dict
    outside: Outside  # what the install creates outside the render (installer.deploy.coherence_step)


def _platform_charts(names: set[str]) -> tuple[str, ...]:
    from tests.support.fixture_charts import platform

    return tuple(c.name for c in platform().spec.charts if f"{c.name}-{c.version}.tgz" in names)


def bundle(charts: Path, work: Path) -> Path:
    """A fixture bundle (tests.support.fixture_bundles) of every platform chart CHARTS holds, each image a multi-arch
    index reduced to linux/amd64 as the real ones are."""
    archives = {p.name: p for p in charts.glob("*.tgz")}
    return make_fixture_bundle(work, fixture_manifest(_platform_charts(set(archives))), images=EXTRA_IMAGES,
                               archives=archives, multi_arch=True)


def render(inventory: Path | str, root: Path) -> Rendered:
    """The site render of the bundle at ROOT for INVENTORY, with what the install creates outside it."""
    import json

    inv = load_inventory(inventory)
    site = render_site(inv, root)
    index = json.loads((root / "index.json").read_text())
    return Rendered(inv, site, index, made_outside_render(inv, site, index))


@functools.cache
def fixture_bundle() -> Path:
    """One bundle of every platform chart of the fixtures, made once per test process."""
    return bundle(FIXTURES, Path(tempfile.mkdtemp(prefix="medai-platform-bundle-")) / "bundle")


def fixture_render(inventory: Path | str) -> Rendered:
    """The full platform render of the fixture bundle for INVENTORY (a fresh copy each call: tests mutate it)."""
    return copy.deepcopy(_cached_render(str(inventory)))


@functools.cache
def _cached_render(inventory: str) -> Rendered:
    return render(inventory, fixture_bundle())


def _namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def write(r: Rendered, out: Path) -> list[Path]:
    """OUT/NN-RELEASE.yaml per release (see the module's docstring)."""
    site = with_applied(r.site, r.outside)
    out.mkdir(parents=True, exist_ok=True)
    rendered_ns = {(o.get("metadata") or {}).get("name") for rel in site.releases
                   for o in rel.objects + rel.site_objects if o.get("kind") == "Namespace"}
    made: set[str] = set()
    written = []
    for i, rel in enumerate(site.releases, 1):
        docs = []
        if rel.namespace not in rendered_ns | made:
            docs.append(_namespace(rel.namespace))
            made.add(rel.namespace)
        objs = rel.objects + rel.site_objects
        docs += [o for o in objs if o.get("kind") == "Namespace"] + [o for o in objs if o.get("kind") != "Namespace"]
        for o in docs:
            if o.get("kind") not in CLUSTER_SCOPED:
                o.setdefault("metadata", {}).setdefault("namespace", rel.namespace)
        path = out / f"{i:02d}-{rel.name}.yaml"
        head = f"# release {rel.name}, chart {rel.chart.name} {rel.chart.version}, namespace {rel.namespace}\n"
        path.write_text(head + "".join("---\n" + yaml.dump(o, Dumper=DUMPER, sort_keys=False) for o in docs))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    from installer.deploy.coherence_step import findings

    p = argparse.ArgumentParser(prog="python -m tests.support.render_platform", description=__doc__.split("\n\n")[0])
    p.add_argument("--inventory", required=True, type=Path)
    p.add_argument("--charts", required=True, type=Path, help="directory of upstream chart archives")
    p.add_argument("out", type=Path, help="output directory (DIR)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medai-render-") as tmp:
        r = render(a.inventory, bundle(a.charts, Path(tmp) / "bundle"))
        for path in write(r, a.out):
            print(path)
        found = findings(r.inv, r.site, r.index)
    for f in found:
        print(f, file=sys.stderr)
    print(f"{len(found)} coherence finding(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
