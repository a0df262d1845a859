"""Trust fixtures: a medai key pair, a cosign key pair, and a real signed bundle built by `build_bundle` from the
loopback registry (seeded demo images), Helm repository, file server and a tiny model."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from installer.trust.keys import generate_keypair
from tests.support.sources import demo_sources, write_manifest  # noqa: F401  (session fixture)

PASSWORD = "Tr0ub4dor&3-medai-test"
COSIGN_PASSWORD = "c0sign-generated-pass"
COSIGN = shutil.which("cosign") or str(Path(__file__).resolve().parents[2] / ".tools" / "bin" / "cosign")


@dataclass
class KeyPair:
    prefix: Path
    key: Path
    pub: Path
    password: str


@pytest.fixture(autouse=True)
def medai_home(tmp_path, monkeypatch) -> Path:
    """Reports go to the state directory: each test gets its own."""
    home = tmp_path / "medai-home"
    monkeypatch.setenv("MEDAI_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def medai_keys(tmp_path_factory) -> KeyPair:
    d = tmp_path_factory.mktemp("keys")
    key, pub = generate_keypair(d / "site", PASSWORD.encode())
    return KeyPair(d / "site", key, pub, PASSWORD)


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory) -> KeyPair:
    d = tmp_path_factory.mktemp("other-keys")
    key, pub = generate_keypair(d / "other", b"other-password")
    return KeyPair(d / "other", key, pub, "other-password")


@pytest.fixture(scope="session")
def cosign_keys(tmp_path_factory) -> KeyPair:
    """A key pair made by cosign itself (the independent implementation)."""
    d = tmp_path_factory.mktemp("cosign-keys")
    env = {**os.environ, "COSIGN_PASSWORD": COSIGN_PASSWORD}
    subprocess.run([COSIGN, "generate-key-pair", "--output-key-prefix", str(d / "cosign")], env=env, cwd=d,
                   check=True, capture_output=True, timeout=60)
    return KeyPair(d / "cosign", d / "cosign.key", d / "cosign.pub", COSIGN_PASSWORD)


def trust_manifest(path: Path, src, seeded) -> Path:
    """Three single-platform images, plus files and a model: base and app reached through the demo chart, tool
    named only in extraImages (the gate refuses an extraImages entry the rendered chart already names)."""
    values = {"debugPod": False, "images": {
        "init": seeded.base, "web": seeded.app, "db": seeded.app, "agent": seeded.app,
        "job": seeded.base, "cron": seeded.app, "custom": seeded.app, "pod": seeded.tool}}
    return write_manifest(path, src, chart_values=values, extra_images=[seeded.tool], name="trust-demo")


@pytest.fixture(scope="session")
def signed_bundle(tmp_path_factory, seeded_registry, demo_sources, medai_keys) -> Path:  # noqa: F811 (fixture)
    """A bundle built and signed by the real build (read-only for tests: copy it before changing anything)."""
    from installer.collect.build import BuildOptions, build_bundle

    work = tmp_path_factory.mktemp("trust-bundle")
    manifest = trust_manifest(work / "bundle.yaml", demo_sources, seeded_registry)
    os.environ["MEDAI_KEY_PASSWORD"] = medai_keys.password
    try:
        build_bundle(BuildOptions(manifest=manifest, out=work / "bundle", sign_key=medai_keys.key, with_tools=False))
    finally:
        os.environ.pop("MEDAI_KEY_PASSWORD", None)
    return work / "bundle"


@pytest.fixture
def bundle_copy(signed_bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(signed_bundle, dst, symlinks=True)
    shutil.rmtree(dst / "reports", ignore_errors=True)
    return dst
