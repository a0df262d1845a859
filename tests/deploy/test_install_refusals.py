"""`medai install` refuses bad input on the control host, before any host is contacted.

The inventory points at 127.0.0.1 port 1 as its SSH target: had anything tried to connect, a run record
would exist (it is created just before ansible-runner starts); none may.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.bundles import make_bundle

ROOT = Path(__file__).resolve().parents[2]


def medai(*args: str, home: Path, input: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "MEDAI_HOME": str(home), "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "installer.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, input=input, timeout=120)


def inventory(tmp_path: Path, servers: int = 1) -> Path:
    doc = {"all": {"vars": {"medai_cluster_name": "refusals", "medai_metallb_pool": "10.9.0.200/29",
                            "ansible_port": 1, "medai_ssh_host_key_checking": False},
                   "children": {"servers": {"hosts": {f"s{i}": {"ansible_host": "127.0.0.1" if i == 0 else f"127.0.0.{i + 1}"}
                                                      for i in range(servers)}},
                                "agents": {"hosts": {}}}}}
    p = tmp_path / "site.yml"
    p.write_text(yaml.safe_dump(doc))
    return p


def no_run_started(home: Path) -> bool:
    return not (home / "runs").exists() or not any((home / "runs").iterdir())


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "bundle")


def test_bad_inventory_refused(tmp_path, bundle):
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path, servers=2)), "--bundle", str(bundle), "--yes", home=home)
    assert r.returncode == 2 and "servers: 2 servers" in r.stderr
    assert no_run_started(home)


def test_missing_bundle_refused(tmp_path):
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(tmp_path / "nope"), "--yes", home=home)
    assert r.returncode == 2 and "bundle directory not found" in r.stderr
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--yes", home=home)
    assert r.returncode == 2 and "no bundle: pass --bundle DIR" in r.stderr
    assert no_run_started(home)


def test_tampered_bundle_refused(tmp_path, bundle):
    home = tmp_path / "home"
    f = bundle / "files" / "site-ca.pem"
    f.write_bytes(f.read_bytes().replace(b"test", b"evil"))
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--yes", home=home)
    assert r.returncode == 2 and "bundle refused" in r.stderr and "files/site-ca.pem" in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1
    assert no_run_started(home)


def test_unsigned_bundle_refused_when_key_given(tmp_path, bundle):
    home = tmp_path / "home"
    key = tmp_path / "site.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n")
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(key), "--yes", home=home)
    assert r.returncode == 2 and "unsigned" in r.stderr and "refused" in r.stderr
    assert no_run_started(home)


def test_declined_confirmation_contacts_nothing(tmp_path, bundle):
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), home=home, input="n\n")
    assert r.returncode != 0 and "Install cluster refusals on 1 host(s)?" in r.stdout
    assert no_run_started(home)
    r = medai("reset", "--inventory", str(inventory(tmp_path)), home=home, input="n\n")
    assert r.returncode != 0 and "destroys the cluster" in r.stdout
    assert no_run_started(home)


def test_unreachable_host_fails_with_a_record(tmp_path, bundle):
    """The first thing that does contact hosts: an unreachable one fails the run, recorded, one error line."""
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--yes", home=home)
    assert r.returncode == 2 and "install failed" in r.stderr and "1 unreachable" in r.stderr
    (run,) = list((home / "runs").iterdir())
    import json
    data = json.loads((run / "run.json").read_text())
    assert data["result"] == "failed" and data["summary"]["unreachable"] == 1


def _signed(tmp_path: Path, bundle: Path) -> tuple[Path, Path]:
    from installer.trust.keys import generate_keypair, load_private_key
    from installer.trust.signing import sign_index

    priv, pub = generate_keypair(tmp_path / "site", b"pw-for-tests-only")
    sign_index(bundle, (bundle / "index.json").read_bytes(), load_private_key(priv, b"pw-for-tests-only"))
    other_priv, other_pub = generate_keypair(tmp_path / "other", b"pw-for-tests-only")
    return pub, other_pub


def test_signature_by_another_key_refused(tmp_path, bundle):
    home = tmp_path / "home"
    pub, other_pub = _signed(tmp_path, bundle)
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(other_pub), "--yes", home=home)
    assert r.returncode == 2 and "bundle refused" in r.stderr and "index.json" in r.stderr
    assert no_run_started(home)


def test_signed_bundle_passes_verification(tmp_path, bundle):
    home = tmp_path / "home"
    pub, _ = _signed(tmp_path, bundle)
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(pub), "--check", home=home)
    assert "files and signature verified" in r.stdout
    assert not (bundle / "reports").exists()  # verification writes nothing into the (possibly read-only) bundle
