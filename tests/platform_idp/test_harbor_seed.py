"""Seeding Harbor from the bundle, for real against Debian's docker-registry (distribution 2.8, the registry
inside Harbor 2) over TLS on loopback with a throwaway CA; cosign is the independent verifier. Harbor itself
does not run here. Also the nodes' registries.yaml once Harbor is seeded (rendered by ansible, not on a node)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from installer.core.errors import TrustError
from installer.deploy.harbor.seed import seed_harbor
from installer.oci.registry import RegistryClient
from installer.trust.keys import generate_keypair
from tests.support.servers import make_tls_pair, run_registry
from tests.support.sources import seeded_chart_values, write_manifest

pytestmark = pytest.mark.loopback
ROOT = Path(__file__).resolve().parents[2]
COSIGN = ROOT / ".tools" / "bin" / "cosign"
PASSWORD = "seed-test-Passw0rd!"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("seed-keys")
    site = generate_keypair(d / "site", PASSWORD.encode())
    other = generate_keypair(d / "other", b"other-pass")
    return site, other


@pytest.fixture(scope="module")
def multi_bundle(tmp_path_factory, seeded_registry, demo_sources, keys):
    """A signed bundle for linux/amd64 whose chart pulls a two-platform image: its index is kept reduced."""
    from installer.collect.build import BuildOptions, build_bundle

    work = tmp_path_factory.mktemp("seed-bundle")
    manifest = write_manifest(work / "bundle.yaml", demo_sources, chart_values=seeded_chart_values(seeded_registry),
                              extra_images=[seeded_registry.tool], name="seed-demo", with_model=False)
    os.environ["MEDAI_KEY_PASSWORD"] = PASSWORD
    try:
        build_bundle(BuildOptions(manifest=manifest, out=work / "bundle", sign_key=keys[0][0], with_tools=False))
    finally:
        os.environ.pop("MEDAI_KEY_PASSWORD", None)  # the build already took it out once read
    return work / "bundle"


@pytest.fixture(scope="module")
def harbor_like(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-harbor")
    ca, cert, key = make_tls_pair(d / "pki")
    with run_registry(d, tls=(cert, key)) as reg:
        yield reg.host, ca


def _cosign_verify(ref: str, pub: Path, ca: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SSL_CERT_FILE": str(ca)}
    return subprocess.run([str(COSIGN), "verify", "--key", str(pub), "--insecure-ignore-tlog", ref],
                          capture_output=True, text=True, env=env, timeout=120)


def test_seed_pushes_platform_manifests_that_cosign_verifies(multi_bundle, harbor_like, keys, tmp_path, seeded_registry):
    host, ca = harbor_like
    (_, pub), _ = keys
    res = seed_harbor(multi_bundle, host, pub, tmp_path / "evidence", ca_file=ca)
    ev = json.loads(res.evidence.read_text())
    assert ev["siteKey"]["fingerprint"] and ev["bundleVerifiedBeforePush"]["ok"] is True
    assert "not whose" in ev["harborCosignCaveat"]
    assert len(ev["images"]) == 4 and all(i["siteKeyVerifiedInRegistry"] for i in ev["images"]), ev["images"]
    multi = next(i for i in ev["images"] if i["dest"].endswith("/multi:1.0"))
    # the registry refused the reduced index: the amd64 manifest is under the tag, signed in its own right
    assert multi["platformManifest"].startswith("linux/amd64 manifest sha256:")
    assert multi["digest"] != seeded_registry.multi_index_digest
    assert any(s.endswith(multi["digest"].replace(":", "-") + ".sig") for s in multi["signatures"])
    for i in ev["images"]:
        assert i["dest"].startswith(f"{host}/platform/")
        r = _cosign_verify(f"{i['dest'].rsplit(':', 1)[0]}@{i['digest']}", pub, ca)
        assert r.returncode == 0, r.stderr
    # pulled by tag, as a node does through the mirror: what the tag serves is what cosign accepts
    r = _cosign_verify(multi["dest"], pub, ca)
    assert r.returncode == 0, r.stderr
    # every image's SBOM from the signed bundle arrived beside it; cosign reads the multi-arch one back
    assert all(i["sbom"] for i in ev["images"]), ev["images"]
    sbom = subprocess.run([str(COSIGN), "download", "sbom", multi["dest"]], capture_output=True,
                          env={**os.environ, "SSL_CERT_FILE": str(ca)}, timeout=120)
    assert sbom.returncode == 0, sbom.stderr
    assert (
        sbom.stdout.strip()
        == (multi_bundle / "sbom/images" / (seeded_registry.multi.replace(":", "_").replace("/", "_") + ".cdx.json")).read_bytes().strip()
    )
    with RegistryClient(https=[host], ca_file=ca) as client:
        from installer.oci.refs import parse_ref

        m = client.get_manifest(parse_ref(multi["dest"]))
    assert m.digest == multi["digest"] and not m.is_index


def test_seed_refuses_before_pushing_when_the_site_key_does_not_verify(multi_bundle, harbor_like, keys, tmp_path):
    host, ca = harbor_like
    _, (_, other_pub) = keys
    with pytest.raises(TrustError, match="not pushed to .*does not verify with the site key"):
        seed_harbor(multi_bundle, host, other_pub, tmp_path / "ev", ca_file=ca, project="never")
    import ssl

    import httpx

    catalog = httpx.get(f"https://{host}/v2/_catalog", verify=ssl.create_default_context(cafile=str(ca))).json()
    assert catalog["repositories"] and not [r for r in catalog["repositories"] if r.startswith("never/")]
    assert not (tmp_path / "ev" / "harbor-seed.json").exists()


def _render_registries(tmp_path: Path, extra: dict) -> dict:
    play = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [
                {"ansible.builtin.include_vars": str(ROOT / "roles/k3s/defaults/main.yml")},
                {
                    "ansible.builtin.template": {
                        "src": str(ROOT / "roles/k3s/templates/registries.yaml.j2"),
                        "dest": str(tmp_path / "registries.yaml"),
                        "mode": "0600",
                    }
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(extra))
    r = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            "localhost,",
            str(tmp_path / "play.yml"),
            "-e",
            f"@{tmp_path / 'vars.yml'}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false"},
    )
    assert r.returncode == 0, r.stdout[-3000:]
    return yaml.safe_load((tmp_path / "registries.yaml").read_text())


def test_registries_yaml_lists_harbor_first_after_seeding(tmp_path):
    doc = _render_registries(
        tmp_path,
        {
            "medai_k3s_harbor_registry": "harbor.radiology.internal",
            "medai_k3s_harbor_pull_username": "robot$cluster-pull",
            "medai_k3s_harbor_pull_password": "pull-S3cret",
        },
    )
    assert set(doc["mirrors"]) == {"docker.io", "quay.io", "ghcr.io", "registry.k8s.io"}
    for name, m in doc["mirrors"].items():
        assert m["endpoint"][0] == "https://harbor.radiology.internal", name
        assert m["rewrite"] == {"^(.*)$": "platform/$1"}
    cfg = doc["configs"]["harbor.radiology.internal"]
    assert cfg["tls"]["ca_file"] == "/etc/rancher/k3s/medai-site-ca.pem"
    assert cfg["auth"]["username"] == "robot$cluster-pull"
    assert oct((tmp_path / "registries.yaml").stat().st_mode & 0o777) == "0o600"


def test_registries_yaml_before_seeding_is_the_embedded_mirror_only(tmp_path):
    doc = _render_registries(tmp_path, {})
    assert doc["mirrors"] == {r: {} for r in ("docker.io", "quay.io", "ghcr.io", "registry.k8s.io")}
    assert "configs" not in doc


def test_cli_seed_and_its_one_line_refusal(multi_bundle, harbor_like, keys, tmp_path):
    host, ca = harbor_like
    (_, pub), (_, other_pub) = keys
    medai = str(Path(sys.executable).with_name("medai"))

    def seed(key: Path, project: str) -> subprocess.CompletedProcess:
        argv = [medai, "harbor", "seed", str(multi_bundle), host, "--key", str(key), "--ca-file", str(ca),
                "--project", project, "--evidence", str(tmp_path / f"ev-{project}")]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)

    ok = seed(pub, "cli")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("site key verified") == 4 and "platform manifest: linux/amd64" in ok.stdout
    bad = seed(other_pub, "cli2")
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode == 2 and len(errors) == 1 and "does not verify with the site key" in errors[0], bad.stderr
