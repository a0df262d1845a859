"""A multi-arch image reduced to the site's platform, pushed to a loopback docker-registry (distribution 2.8, as
Harbor 2), then pulled by every reference form a render uses: the refusal of the reduced index names the option
that works around it, and with `--platform-manifest` the registry serves the tag and the platform manifest's
digest, not the index digest. The site render pins every reference to the platform manifest (docs/bundle.md): the
example site's render of the fixture charts (every image a reduced index), pushed as `medai harbor seed` pushes
it, pulls by every reference it names; the image gate refuses a reference to a reduced index's own digest."""
from __future__ import annotations

import subprocess

import pytest

from installer.bundle.layout import BundleLayout
from installer.core.errors import RegistryError
from installer.deploy.push import destination, push_bundle
from installer.oci.images import collect_images, present_platform_manifests, push_image
from installer.oci.layout import OCILayout
from installer.oci.refs import ImageRef, parse_ref
from installer.oci.registry import RegistryClient
from installer.platform.render import bundle_manifest
from installer.render.discover import find_images
from installer.render.errors import ImageGateError
from installer.render.gate import carried_images, check_bundle_images, plan_images
from tests.support.fixture_charts import needs_fixtures
from tests.support.render_platform import fixture_bundle, fixture_render

EXAMPLE = "inventories/example/site.yml"


def _pull(client: RegistryClient, ref: str, tmp_path) -> bool:
    """A pull as containerd makes it: a TAG@DIGEST reference is fetched by its digest (the tag only names it),
    then the whole image by skopeo (manifest, config, layers)."""
    try:
        m = client.get_manifest(parse_ref(ref))
    except RegistryError:
        return False
    by = f"{parse_ref(ref).repo_name}@{m.digest}" if "@" in ref else ref
    out = tmp_path / by.replace("/", "_").replace(":", "_").replace("@", "_")
    done = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{by}", f"dir:{out}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (ref, done.stderr)
    return True


@pytest.fixture
def reduced(seeded_registry, tmp_path):
    with RegistryClient(insecure=[seeded_registry.host]) as client:
        layout = OCILayout(tmp_path / "oci")
        [img] = collect_images(client, layout, [seeded_registry.multi], ["linux/amd64"])
        yield client, layout, img


@pytest.mark.loopback
def test_the_refusal_of_a_reduced_index_names_the_option(seeded_registry, reduced):
    client, layout, img = reduced
    with pytest.raises(RegistryError) as e:
        push_image(client, layout, img.ref, f"{seeded_registry.host}/site/refused:1.0")
    assert "--platform-manifest" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.loopback
def test_with_the_platform_manifest_every_pinned_form_but_the_index_digest_pulls(seeded_registry, reduced, tmp_path):
    client, layout, img = reduced
    host = seeded_registry.host
    res = push_image(client, layout, img.ref, f"{host}/site/multi:1.0", platform_fallback=True)
    (amd64,) = present_platform_manifests(layout, img.digest)
    assert res.digest == amd64 != img.digest
    repo = f"{host}/site/multi"
    for ref in (f"{repo}:1.0", f"{repo}@{amd64}", f"{repo}:1.0@{amd64}"):
        assert _pull(client, ref, tmp_path), ref
    # the index digest: distribution 2.x never stored the reduced index, so only the embedded mirror serves it
    for ref in (f"{repo}@{img.digest}", f"{repo}:1.0@{img.digest}"):
        assert not _pull(client, ref, tmp_path), ref


def _render_refs() -> dict[str, list[ImageRef]]:
    """Every image reference the example site's render applies, by the repository it names."""
    r = fixture_render(EXAMPLE)
    out: dict[str, list[ImageRef]] = {}
    for f in find_images({rel.name: rel.objects + rel.site_objects for rel in r.site.releases}):
        if f.ref not in out.setdefault(f.ref.repo_name, []):
            out[f.ref.repo_name].append(f.ref)
    return out


def _at_site(host: str, harbor: str, ref: ImageRef) -> str:
    """REF as the nodes ask the site registry (HOST standing for the site's Harbor) for it: a reference to the
    Harbor itself (Trivy's databases) as it is; any other registry's is rewritten by registries.yaml to
    platform/PATH, where `bundle push` put it (installer.deploy.push.destination)."""
    if ref.registry == harbor:
        return ImageRef(host, ref.repository, ref.tag, ref.digest).name
    dest = parse_ref(destination(f"{host}/platform", ref.name))
    return ImageRef(dest.registry, dest.repository, ref.tag, ref.digest).name


@needs_fixtures
@pytest.mark.loopback
def test_every_reference_the_render_applies_pulls_from_the_seeded_site_registry(registry, tmp_path):
    refs = _render_refs()
    pinned = [ref for found in refs.values() for ref in found if ref.digest]
    assert {r.repo_name for r in pinned} >= {"quay.io/cilium/cilium", "quay.io/cilium/operator-generic",
                                             "quay.io/cilium/cilium-envoy", "ghcr.io/cloudnative-pg/postgresql"}
    carried = carried_images(fixture_bundle() / "oci")
    assert all(c.reduced for c in carried.values())  # every image a multi-arch index reduced to linux/amd64
    for ref in pinned:  # pinned to the platform manifest, never to the index
        assert ref.digest in {d for c in carried.values() for d in c.platforms.values()}, ref
    pushed = push_bundle(fixture_bundle(), f"{registry.host}/platform", insecure=True, skip_signature=True,
                         state=tmp_path / "state", platform_manifest=True)
    assert all(p.fallback for p in pushed)
    harbor = fixture_render(EXAMPLE).inv.site.medai_harbor_hostname
    with RegistryClient(insecure=[registry.host]) as client:
        for ref in pinned:  # the whole image: manifest, config and layers
            assert _pull(client, _at_site(registry.host, harbor, ref), tmp_path), ref
        for ref in (r for found in refs.values() for r in found if not r.digest):
            assert client.get_manifest(parse_ref(_at_site(registry.host, harbor, ref))), ref


@needs_fixtures
def test_the_gate_refuses_a_reference_to_a_reduced_index_naming_the_object():
    r = fixture_render(EXAMPLE)
    cilium = next(rel for rel in r.site.releases if rel.name == "cilium")
    agent = next(o for o in cilium.objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "cilium")
    container = agent["spec"]["template"]["spec"]["containers"][0]
    pinned = parse_ref(container["image"])
    index = carried_images(fixture_bundle() / "oci")[ImageRef(pinned.registry, pinned.repository, pinned.tag).name]
    container["image"] = ImageRef(pinned.registry, pinned.repository, pinned.tag, index.digest).name
    spec = bundle_manifest(BundleLayout.at(fixture_bundle())).spec
    plan = plan_images(spec, {rel.chart.name: rel.objects + rel.site_objects for rel in r.site.releases})
    with pytest.raises(ImageGateError) as e:
        check_bundle_images(plan, carried_images(fixture_bundle() / "oci"), (), {"cilium": "cilium"})
    assert str(e.value).startswith(f"release cilium, DaemonSet cilium, spec.template.spec.containers[0].image: "
                                   f"image {container['image']} pins the digest of a multi-arch index")
    assert f"linux/amd64 {pinned.digest}" in str(e.value) and "\n" not in str(e.value)
