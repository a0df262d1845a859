"""HTTPS to a registry signed by a private CA (as a site's Harbor is): trusted with ca_file, refused without.
The registry is Debian's docker-registry with http.tls on 127.0.0.1; the CA and certificate are made here."""
from __future__ import annotations

import pytest

from installer.core.errors import RegistryError
from installer.oci.images import collect_images, push_image
from installer.oci.layout import OCILayout
from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient
from tests.support.images import seed
from tests.support.servers import make_tls_pair, run_registry

pytestmark = pytest.mark.loopback


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-registry")
    ca, cert, key = make_tls_pair(d / "pki")
    with run_registry(d, tls=(cert, key)) as reg:
        yield reg.host, ca, seed(reg.host, d / "seed")


def test_https_with_custom_ca(tls_registry, tmp_path):
    host, ca, images = tls_registry
    layout = OCILayout(tmp_path / "oci")
    with RegistryClient(https=[host], ca_file=ca, retries=1) as c:
        [img] = collect_images(c, layout, [images.app], ["linux/amd64"])
        assert c.base_url(parse_ref(images.app)) == f"https://{host}"
        res = push_image(c, layout, images.app, f"{host}/pushed/app:tls")
    assert res.digest == img.digest
    assert layout.verify() == []


def test_https_without_the_ca_is_refused(tls_registry, tmp_path):
    host, _, images = tls_registry
    with RegistryClient(https=[host], retries=1) as c, pytest.raises(RegistryError) as e:
        collect_images(c, OCILayout(tmp_path / "oci"), [images.app], ["linux/amd64"])
    assert str(e.value).startswith(images.app) and "CERTIFICATE_VERIFY_FAILED" in str(e.value)
