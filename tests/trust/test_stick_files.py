"""Files from the stick: never a hang, never an unbounded read, nothing pre-existing trusted.

Every case runs under an alarm: a FIFO that blocks an open fails the test instead of hanging CI.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from installer.core.errors import BundleError, MedaiError, StateError, TrustError
from installer.core.safe_read import read_regular_file
from installer.deploy.working_copy import verified_working_copy
from installer.trust.keys import generate_keypair, load_private_key
from installer.trust.verify import verify_bundle
from tests.support.signed_bundle import make_signed_bundle

PASSWORD = b"stick-files-pass"


@contextmanager
def deadline(seconds: int = 10):
    def hung(*_):
        raise TimeoutError(f"blocked for {seconds} s (a FIFO was waited on)")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def signed(tmp_path):
    k, pub = generate_keypair(tmp_path / "site", PASSWORD)
    b = make_signed_bundle(tmp_path / "bundle", load_private_key(k, PASSWORD),
                           {"files/a.txt": b"alpha\n", "tools/ansible/playbooks/site.yml": b"- hosts: all\n"})
    return b.root, pub


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("name", ["index.json", "index.json.sig"])
def test_fifo_in_place_of_the_index_or_its_signature_is_refused_by_verify(signed, tmp_path, name):
    root, pub = signed
    _fifo(root / name)
    with deadline():
        if name == "index.json":
            with pytest.raises(BundleError, match=f"{root / name}: not a regular file"):
                verify_bundle(root, pub, report=tmp_path / "r.json")
        else:
            res = verify_bundle(root, pub, report=tmp_path / "r.json")
            assert not res.ok and any(f"{name}: not a regular file" in str(p) for p in res.problems), res.problems


@pytest.mark.parametrize("name", ["index.json", "index.json.sig", "files/a.txt"])
def test_fifo_on_the_stick_is_refused_by_the_private_copy(signed, tmp_path, name):
    root, pub = signed
    _fifo(root / name)
    with deadline(), pytest.raises(MedaiError, match=f"{root / name}: not a regular file"):
        verified_working_copy(root, pub, False, tmp_path / "state")


def test_a_40_gib_sparse_index_is_refused_by_its_size(signed, tmp_path):
    root, pub = signed
    with open(root / "index.json", "r+b") as f:
        f.truncate(40 << 30)
    with deadline(), pytest.raises(BundleError, match="index.json: larger than 67108864 bytes"):
        verify_bundle(root, pub, report=tmp_path / "r.json")
    with deadline(), pytest.raises(BundleError, match="index.json: larger than"):
        verified_working_copy(root, pub, False, tmp_path / "state")


def test_socket_device_and_symlink_are_refused_by_the_one_safe_read(tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    (tmp_path / "link").symlink_to("/etc/hostname")
    with deadline():
        for p, word in ((tmp_path / "sock", "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                        (tmp_path / "link", "a symlink is refused")):
            with pytest.raises(TrustError, match=word):
                read_regular_file(p, 100, TrustError)
    sock.close()


def test_fifo_sigstore_bundle_is_refused(tmp_path):
    pytest.importorskip("sigstore")
    from installer.trust.sigstore import _load_bundle

    os.mkfifo(tmp_path / "index.sigstore.json")
    with deadline(), pytest.raises(TrustError, match="not a regular file"):
        _load_bundle(tmp_path / "index.sigstore.json")


def test_files_the_index_does_not_list_are_removed_from_the_working_copy(signed, tmp_path):
    root, pub = signed
    state = tmp_path / "state"
    vb = verified_working_copy(root, pub, False, state)
    planted = vb.root / "tools/ansible/playbooks/group_vars/all.yml"
    planted.parent.mkdir(parents=True)
    planted.write_text("medai_vault_namespace: 'x; touch /PWNED'\n")
    (vb.root / "files/evil").symlink_to("/etc/shadow")
    (vb.root / "files/a.txt").unlink()
    (vb.root / "files/a.txt").symlink_to(root / "files/a.txt")
    again = verified_working_copy(root, pub, False, state)
    assert again.root == vb.root
    assert not planted.exists() and not planted.parent.exists() and not os.path.lexists(vb.root / "files/evil")
    assert not (vb.root / "files/a.txt").is_symlink() and (vb.root / "files/a.txt").read_bytes() == b"alpha\n"
    on_disk = {p.relative_to(vb.root).as_posix() for p in vb.root.rglob("*") if not p.is_dir()}
    assert on_disk == {"files/a.txt", "tools/ansible/playbooks/site.yml", "index.json", "index.json.sig"}


def test_state_directory_on_the_bundles_filesystem_or_not_ours_is_refused(signed, tmp_path, monkeypatch):
    root, pub = signed
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev in {Path("/").stat().st_dev, Path("/var/lib").stat().st_dev}:
        pytest.skip("needs /dev/shm on its own filesystem to stand in for the stick")
    stick = shm / f"medai-test-{uuid.uuid4().hex[:12]}"
    try:
        shutil.copytree(root, stick / "bundle")
        with pytest.raises(StateError, match=f"{stick / 'state'}: the state directory is on the bundle's filesystem"):
            verified_working_copy(stick / "bundle", pub, False, stick / "state")
        with pytest.raises(StateError, match="is inside the bundle"):
            verified_working_copy(stick / "bundle", pub, False, stick / "bundle" / ".medai")
        # bundle verify's default report directory is the state directory: the same check
        monkeypatch.setenv("MEDAI_HOME", str(stick / "state"))
        with pytest.raises(StateError, match="the state directory is on the bundle's filesystem"):
            verify_bundle(stick / "bundle", pub)
        assert not (stick / "state").exists()
    finally:
        shutil.rmtree(stick, ignore_errors=True)
    state = tmp_path / "wide"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    with pytest.raises(StateError, match=f"{state}: the state directory must be owned by uid"):
        verified_working_copy(root, pub, False, state)


def test_state_dir_from_the_environment_is_checked(monkeypatch, tmp_path):
    from installer.core.resources import state_dir

    monkeypatch.setenv("MEDAI_HOME", "relative")
    with pytest.raises(StateError, match="not an absolute path"):
        state_dir()
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "link"))
    with pytest.raises(StateError, match="a symlink is refused"):
        state_dir()
