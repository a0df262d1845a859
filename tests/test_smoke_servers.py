import httpx
import pytest

pytestmark = pytest.mark.loopback


def test_registry_answers_v2(registry):
    r = httpx.get(f"{registry.url}/v2/")
    assert r.status_code == 200


def test_auth_registry_demands_credentials(auth_registry):
    assert httpx.get(f"{auth_registry.url}/v2/").status_code == 401
    r = httpx.get(f"{auth_registry.url}/v2/", auth=(auth_registry.username, auth_registry.password))
    assert r.status_code == 200


def test_file_server_honours_range(file_server):
    (file_server.root / "f.bin").write_bytes(bytes(range(256)) * 4)
    r = httpx.get(f"{file_server.url}/f.bin", headers={"Range": "bytes=1000-"})
    assert r.status_code == 206
    assert r.content == (bytes(range(256)) * 4)[1000:]
