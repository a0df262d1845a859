"""A multi-arch image reduced to the site's platform, pushed to a loopback docker-registry (distribution 2.8, as
Harbor 2), then pulled by every reference form a render uses: the refusal of the reduced index names the option
that works around it, and with `--platform-manifest` the registry serves the tag and the platform manifest's
digest; a reference pinned to the index digest is served only by K3s's embedded mirror (docs/harbor.md)."""
from __future__ import annotations

import subprocess

import pytest

from installer.core.errors import RegistryError
from installer.oci.images import collect_images, present_platform_manifests, push_image
from installer.oci.layout import OCILayout
from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient

pytestmark = pytest.mark.loopback


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


def test_the_refusal_of_a_reduced_index_names_the_option(seeded_registry, reduced):
    client, layout, img = reduced
    with pytest.raises(RegistryError) as e:
        push_image(client, layout, img.ref, f"{seeded_registry.host}/site/refused:1.0")
    assert "--platform-manifest" in str(e.value) and "\n" not in str(e.value)


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
