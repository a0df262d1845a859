"""Build-time mirrors: upstream-named images fetched through a loopback registry standing in for the site's proxy
(images pushed there under mirror/quay/...), stored under their upstream names; a digest pin must hold through
the mirror."""
from __future__ import annotations

import json
import subprocess

import pytest

from installer.bundle.manifest import parse_manifest
from installer.core.errors import ManifestError, RegistryError
from installer.oci.images import collect_images
from installer.oci.layout import OCILayout
from installer.oci.mirrors import MirroredClient, mirrored_name, parse_mirror_option
from installer.oci.registry import RegistryClient
from tests.support.images import build_seed_layout, skopeo_push

pytestmark = pytest.mark.loopback


@pytest.fixture(scope="module")
def mirror(registry, tmp_path_factory):
    """The seed images on the loopback registry at mirror/quay/demo/*, i.e. as a proxy of quay.io serves them."""
    work = tmp_path_factory.mktemp("seed")
    build_seed_layout(work)
    for tag in ("app", "tool"):
        skopeo_push(work, tag, f"{registry.host}/mirror/quay/demo/{tag}:1.0")
    return {"quay.io": f"{registry.host}/mirror/quay"}


def test_names_are_rewritten_only_for_mirrored_registries():
    m = {"quay.io": "nexus.example:8443/quay", "docker.io": "nexus.example:8443/hub"}
    assert mirrored_name("quay.io/cilium/cilium:v1.18.0", m) == "nexus.example:8443/quay/cilium/cilium:v1.18.0"
    assert mirrored_name("nginx:1.27", m) == "nexus.example:8443/hub/library/nginx:1.27"
    assert mirrored_name("ghcr.io/o/a:1", m) == "ghcr.io/o/a:1"
    assert parse_mirror_option("quay.io=nexus.example/quay") == ("quay.io", "nexus.example/quay")
    with pytest.raises(ManifestError, match="--mirror 'quay.io': write REGISTRY=MIRROR"):
        parse_mirror_option("quay.io")


def test_manifest_mirrors_are_checked():
    doc = {"apiVersion": "medai/v1", "kind": "Bundle", "metadata": {"name": "m"},
           "spec": {"mirrors": {"quay.io": "not a host/x"}}}
    with pytest.raises(ManifestError, match=r"spec.mirrors: .*'not a host/x' is not HOST\[:PORT\]\[/PATH\]"):
        parse_manifest(doc)


def test_upstream_names_fetched_through_the_mirror(mirror, tmp_path):
    layout = OCILayout(tmp_path / "oci")
    with RegistryClient(retries=1, backoff=0.01) as c:
        got = collect_images(MirroredClient(c, mirror), layout, ["quay.io/demo/app:1.0", "quay.io/demo/tool:1.0"],
                             ["linux/amd64"])
    assert sorted(layout.refs()) == ["quay.io/demo/app:1.0", "quay.io/demo/tool:1.0"]
    insp = subprocess.run(["skopeo", "inspect", f"oci:{layout.path}:quay.io/demo/app:1.0"], capture_output=True, text=True)
    assert insp.returncode == 0 and json.loads(insp.stdout)["Digest"] == got[0].digest


def test_a_digest_pin_holds_through_the_mirror(mirror, tmp_path):
    with RegistryClient(retries=1, backoff=0.01) as c:
        good = collect_images(MirroredClient(c, mirror), OCILayout(tmp_path / "a"), ["quay.io/demo/app:1.0"], ["linux/amd64"])[0]
        pinned = f"quay.io/demo/app:1.0@{good.digest}"
        again = collect_images(MirroredClient(c, mirror), OCILayout(tmp_path / "b"), [pinned], ["linux/amd64"])[0]
        assert again.digest == good.digest
        wrong = "quay.io/demo/app:1.0@sha256:" + "e" * 64
        with pytest.raises(RegistryError) as e:
            collect_images(MirroredClient(c, mirror), OCILayout(tmp_path / "c"), [wrong], ["linux/amd64"])
    msg = str(e.value)
    assert msg.startswith(f"{wrong} through mirror {mirror['quay.io']}/demo/app:1.0@sha256:eeee")
