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

from tests.support.lab_bundles import make_bundle

ROOT = Path(__file__).resolve().parents[2]


def medai(*args: str, home: Path, input: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "MEDAI_HOME": str(home), "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "installer.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, input=input, timeout=120)


def inventory(tmp_path: Path, servers: int = 1) -> Path:
    doc = {"all": {"vars": {"medai_cluster_name": "refusals",
                            "medai_keycloak_hostname": "keycloak.example.internal", "medai_metallb_pool": "10.9.0.200/29",
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


@pytest.fixture
def site_pub(tmp_path, bundle) -> Path:
    pub, _ = _signed(tmp_path, bundle)
    return pub


def test_bad_inventory_refused(tmp_path, bundle, site_pub):
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path, servers=2)), "--bundle", str(bundle), "--key", str(site_pub),
              "--yes", home=home)
    assert r.returncode == 2 and "servers: 2 servers" in r.stderr
    assert no_run_started(home)


def test_missing_bundle_refused(tmp_path):
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(tmp_path / "nope"),
              "--insecure-skip-signature", "--yes", home=home)
    assert r.returncode == 2 and "bundle directory not found" in r.stderr
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--yes", home=home)
    assert r.returncode == 2 and "no bundle: pass --bundle DIR" in r.stderr
    assert no_run_started(home)


def test_tampered_bundle_refused(tmp_path, bundle, site_pub):
    home = tmp_path / "home"
    f = bundle / "files" / "site-ca.pem"
    f.write_bytes(f.read_bytes().replace(b"test", b"evil"))
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(site_pub), "--yes", home=home)
    assert r.returncode == 2 and "bundle refused" in r.stderr and "files/site-ca.pem" in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1
    assert no_run_started(home)


def test_unsigned_bundle_refused_when_key_given(tmp_path, bundle):
    home = tmp_path / "home"
    key = tmp_path / "given.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n")
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(key), "--yes", home=home)
    assert r.returncode == 2 and "unsigned" in r.stderr and "refused" in r.stderr
    assert no_run_started(home)


def test_declined_confirmation_contacts_nothing(tmp_path, bundle, site_pub):
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(site_pub), home=home, input="n\n")
    assert r.returncode != 0 and "Install cluster refusals on 1 host(s)?" in r.stdout
    assert no_run_started(home)
    r = medai("reset", "--inventory", str(inventory(tmp_path)), home=home, input="n\n")
    assert r.returncode != 0 and "destroys the cluster" in r.stdout
    assert no_run_started(home)


def test_unreachable_host_fails_with_a_record(tmp_path, bundle, site_pub):
    """The first thing that does contact hosts: an unreachable one fails the run, recorded, one error line."""
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(site_pub), "--yes", home=home)
    assert r.returncode == 2 and "install failed" in r.stderr and "1 unreachable" in r.stderr
    (run,) = list((home / "runs").iterdir())
    import json
    data = json.loads((run / "run.json").read_text())
    assert data["result"] == "failed" and data["summary"]["unreachable"] == 1
    assert data["bundle"]["signature"] == "verified" and "warning" not in data["bundle"]


def _signed(tmp_path: Path, bundle: Path, other: bool = False) -> tuple[Path, Path | None]:
    from installer.trust.keys import generate_keypair, load_private_key
    from installer.trust.signing import sign_index

    if (tmp_path / "site.pub").is_file():
        pub = tmp_path / "site.pub"
    else:
        priv, pub = generate_keypair(tmp_path / "site", b"pw-for-tests-only")
        sign_index(bundle, (bundle / "index.json").read_bytes(), load_private_key(priv, b"pw-for-tests-only"))
    other_pub = generate_keypair(tmp_path / "other", b"pw-for-tests-only")[1] if other else None
    return pub, other_pub


def test_signature_by_another_key_refused(tmp_path, bundle):
    home = tmp_path / "home"
    pub, other_pub = _signed(tmp_path, bundle, other=True)
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(other_pub), "--yes", home=home)
    assert r.returncode == 2 and "bundle refused" in r.stderr and "index.json" in r.stderr
    assert no_run_started(home)


def test_signed_bundle_passes_verification(tmp_path, bundle):
    home = tmp_path / "home"
    pub, _ = _signed(tmp_path, bundle)
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(pub), "--check", home=home)
    assert "signature (" in r.stdout and "files verified into" in r.stdout
    assert not (bundle / "reports").exists()  # verification writes nothing into the (possibly read-only) bundle


# ---------------------------------------------------------------- no --key, no install


def test_install_without_key_is_refused(tmp_path, bundle):
    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--yes", home=home)
    assert r.returncode == 2 and "no --key" in r.stderr and "--insecure-skip-signature" in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1
    assert no_run_started(home)


def test_insecure_skip_signature_is_loud_and_recorded(tmp_path, bundle):
    """With the flag an unsigned bundle is installed (here: fails at the unreachable host), loudly, and recorded."""
    import json

    home = tmp_path / "home"
    r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--insecure-skip-signature",
              "--yes", home=home)
    assert "SIGNATURES NOT CHECKED" in r.stdout and "!!!!!!!!" in r.stdout
    (run,) = list((home / "runs").iterdir())
    data = json.loads((run / "run.json").read_text())
    assert data["bundle"]["signature"] == "NOT CHECKED" and "SIGNATURES NOT CHECKED" in data["bundle"]["warning"]


# ---------------------------------------------------------------- one read, one private copy


def _sign_doc(tmp_path: Path, bundle: Path, doc: dict) -> Path:
    """Re-sign an edited index with the site key (the attacker case where the signer was fooled or the check skipped)."""
    from installer.bundle.index import dumps
    from installer.trust.keys import load_private_key
    from installer.trust.signing import sign_index

    data = dumps(doc)
    (bundle / "index.json").write_bytes(data)
    sign_index(bundle, data, load_private_key(tmp_path / "site.key", b"pw-for-tests-only"))
    return tmp_path / "site.pub"


@pytest.mark.parametrize("where", ["files", "artifact"])
def test_dotdot_dest_in_a_validly_signed_index_is_refused(tmp_path, bundle, site_pub, where):
    import json

    from installer.core.errors import BundleError
    from installer.deploy.plan import build_plan
    from installer.deploy.working_copy import verified_working_copy

    doc = json.loads((bundle / "index.json").read_text())
    evil = "files/../../../../etc/cron.d/medai"
    if where == "files":
        doc["files"][0]["path"] = evil
        _sign_doc(tmp_path, bundle, doc)
        with pytest.raises(BundleError, match=r"not a normalised relative path inside the bundle: refused"):
            verified_working_copy(bundle, site_pub, False, tmp_path / "state")
        assert not (tmp_path / "state" / "bundles").exists() or not any((tmp_path / "state" / "bundles").rglob("*.pem"))
    else:
        next(a for a in doc["artifacts"] if a["kind"] == "file")["paths"] = [evil]
        _sign_doc(tmp_path, bundle, doc)
        vb = verified_working_copy(bundle, site_pub, False, tmp_path / "state")
        with pytest.raises(BundleError, match=r"cron.d/medai'?: not a normalised relative path"):
            build_plan(vb.index, vb.root, tmp_path / "cache", vb.index_sha256)
    # and the CLI says it on one line, contacting nothing
    home = tmp_path / "home"
    if where == "files":
        r = medai("install", "--inventory", str(inventory(tmp_path)), "--bundle", str(bundle), "--key", str(site_pub),
                  "--yes", home=home)
        assert r.returncode == 2 and "refused" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert no_run_started(home)


def test_stick_swapped_after_the_check_does_not_reach_the_plan(tmp_path, bundle, site_pub, monkeypatch):
    """index.json (and a file) replaced on the stick right after the signature check: the install works from
    the bytes it checked and its private copy; the swapped file is refused as it streams."""
    import json

    import installer.deploy.working_copy as wc
    from installer.bundle.private_copy import directory_opener
    from installer.core.errors import BundleError
    from installer.deploy.plan import build_plan

    good = json.loads((bundle / "index.json").read_text())
    evil = json.loads((bundle / "index.json").read_text())
    next(a for a in evil["artifacts"] if a["name"] == "site-ca.pem")["paths"] = ["../../../../etc/cron.d/medai"]

    def swapping_opener(root):
        (Path(root) / "index.json").write_text(json.dumps(evil))  # the attacker wins the race on the index
        return directory_opener(root)

    monkeypatch.setattr(wc, "directory_opener", swapping_opener)
    vb = wc.verified_working_copy(bundle, site_pub, False, tmp_path / "state")
    assert vb.index == good and (vb.root / "index.json").read_bytes() != (bundle / "index.json").read_bytes()
    plan = build_plan(vb.index, vb.root, tmp_path / "cache", vb.index_sha256)
    assert {f["dest"] for f in plan.files} == {f["path"] for f in good["files"]}
    assert all(Path(f["src"]).is_relative_to(vb.root) for f in plan.files)
    assert oct(vb.root.stat().st_mode & 0o777) == "0o700"

    # a listed file swapped on the stick after the check: the streaming hash refuses it, naming it
    ca = bundle / "files" / "site-ca.pem"

    def swapping_file(root):
        ca.write_bytes(ca.read_bytes().replace(b"test", b"evil"))
        return directory_opener(root)

    monkeypatch.setattr(wc, "directory_opener", swapping_file)
    (bundle / "index.json").write_text(json.dumps(good, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
    with pytest.raises(BundleError, match=r"files/site-ca.pem: sha256 .* differs from the signed index"):
        wc.verified_working_copy(bundle, site_pub, False, tmp_path / "state2")
