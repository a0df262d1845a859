"""Registry authentication on loopback: htpasswd basic auth (docker-registry) with credentials from an auth
file, and the bearer-token flow of Docker Hub/ghcr/quay (a loopback proxy in front of the real registry acts
as the token realm: 401 + WWW-Authenticate Bearer, then forwards requests carrying the token)."""
from __future__ import annotations

import base64
import json

import pytest

from installer.core.errors import RegistryError
from installer.oci.images import collect_images
from installer.oci.layout import OCILayout
from installer.oci.registry import RegistryClient
from tests.support.images import seed
from tests.support.registry_proxy import run_registry_proxy

pytestmark = pytest.mark.loopback


@pytest.fixture(scope="module")
def auth_images(auth_registry, tmp_path_factory):
    return seed(auth_registry.host, tmp_path_factory.mktemp("auth-seed"),
                creds=f"{auth_registry.username}:{auth_registry.password}")


@pytest.fixture
def no_auth_files(tmp_path, monkeypatch):
    """Point every auth-file location at an empty temp dir (the host's own files must not leak in)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "home" / ".docker"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    return tmp_path


def write_auth_file(path, host: str, user: str, password: str) -> None:
    path.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
    path.chmod(0o600)


def test_basic_auth_credentials_from_registry_auth_file(auth_registry, auth_images, no_auth_files, monkeypatch):
    f = no_auth_files / "auth.json"
    write_auth_file(f, auth_registry.host, auth_registry.username, auth_registry.password)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(f))
    layout = OCILayout(no_auth_files / "b" / "oci")
    with RegistryClient(retries=1) as c:
        got = collect_images(c, layout, [auth_images.app, auth_images.multi], ["linux/amd64"])
    assert [g.ref for g in got] == [auth_images.app, auth_images.multi]
    assert layout.verify() == []


def test_basic_auth_from_docker_config(auth_registry, auth_images, no_auth_files):
    docker_dir = no_auth_files / "home" / ".docker"
    docker_dir.mkdir(parents=True)
    write_auth_file(docker_dir / "config.json", f"http://{auth_registry.host}", auth_registry.username, auth_registry.password)
    with RegistryClient(retries=1) as c:
        [img] = collect_images(c, OCILayout(no_auth_files / "b" / "oci"), [auth_images.base], ["linux/amd64"])
    assert img.platforms == ["linux/amd64"]


def test_auth_registry_without_credentials_is_a_clear_error(auth_registry, auth_images, no_auth_files):
    layout = OCILayout(no_auth_files / "b" / "oci")
    with RegistryClient(retries=1) as c, pytest.raises(RegistryError) as e:
        collect_images(c, layout, [auth_images.app], ["linux/amd64"])
    msg = str(e.value)
    assert msg.startswith(auth_images.app) and "requires credentials" in msg and "\n" not in msg
    assert layout.refs() == {}


def test_wrong_password_is_refused_and_not_echoed(auth_registry, auth_images, no_auth_files, monkeypatch):
    f = no_auth_files / "auth.json"
    write_auth_file(f, auth_registry.host, auth_registry.username, "wrong-Secret-42")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(f))
    with RegistryClient(retries=1) as c, pytest.raises(RegistryError) as e:
        collect_images(c, OCILayout(no_auth_files / "b" / "oci"), [auth_images.app], ["linux/amd64"])
    assert "refused the credentials" in str(e.value)
    assert "wrong-Secret-42" not in str(e.value)


def test_anonymous_bearer_token_flow(seeded_registry, tmp_path, no_auth_files):
    with run_registry_proxy(seeded_registry.host, bearer=True) as proxy:
        ref = f"{proxy.host}/demo/app:1.0"
        layout = OCILayout(tmp_path / "b" / "oci")
        with RegistryClient(retries=1) as c:
            [img] = collect_images(c, layout, [ref], ["linux/amd64"])
        assert img.ref == ref and layout.verify() == []
        assert proxy.token_requests, "the client never asked the realm for a token"
        req = proxy.token_requests[0]
        assert req["scope"] == "repository:demo/app:pull" and req["service"] == "medai-test" and not req["basic"]
        # one token per repository scope, reused for the manifest and every blob
        assert len(proxy.token_requests) == 1


def test_bearer_token_with_credentials(seeded_registry, tmp_path, no_auth_files, monkeypatch):
    with run_registry_proxy(seeded_registry.host, bearer=True, token_user=("robot", "t0ken-pass")) as proxy:
        ref = f"{proxy.host}/demo/tool:1.0"
        with RegistryClient(retries=1) as c, pytest.raises(RegistryError) as e:
            collect_images(c, OCILayout(tmp_path / "a" / "oci"), [ref], ["linux/amd64"])
        assert "refused anonymous access" in str(e.value) and str(e.value).startswith(ref)

        f = no_auth_files / "auth.json"
        write_auth_file(f, proxy.host, "robot", "t0ken-pass")
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(f))
        with RegistryClient(retries=1) as c:
            [img] = collect_images(c, OCILayout(tmp_path / "b" / "oci"), [ref], ["linux/amd64"])
        assert img.ref == ref
        assert proxy.token_requests[-1]["basic"] is True


def test_proxy_from_the_environment(seeded_registry, tmp_path, monkeypatch):
    """HTTP_PROXY is honoured: the registry name below does not resolve; only the loopback proxy can reach it."""
    with run_registry_proxy(seeded_registry.host) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        ref = "registry.medai-test.invalid:5000/demo/app:1.0"
        with RegistryClient(insecure=["registry.medai-test.invalid:5000"], retries=1) as c:
            [img] = collect_images(c, OCILayout(tmp_path / "oci"), [ref], ["linux/amd64"])
        assert img.ref == ref
        assert set(proxy.proxied_hosts) == {"registry.medai-test.invalid:5000"}


def test_loopback_registries_bypass_the_environment_proxy(seeded_registry, tmp_path, monkeypatch):
    from tests.support.servers import free_port

    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # a proxy that is not there
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    with RegistryClient(retries=1) as c:
        [img] = collect_images(c, OCILayout(tmp_path / "oci"), [seeded_registry.base], ["linux/amd64"])
    assert img.ref == seeded_registry.base
