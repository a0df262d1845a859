"""`bundle export --to STICK` writes only where it checked: no planted symlink on the stick is followed.
The stick here is a plain directory (symlinks need a filesystem that has them; FAT32 has none)."""
from __future__ import annotations

import os

import pytest

from installer.core.errors import BundleError
from installer.media.export import ExportOptions, export_bundle
from installer.media.manifest import VOLUME_DIR
from installer.trust.keys import generate_keypair, load_private_key
from tests.support.signed_bundle import make_signed_bundle

PASSWORD = b"export-links-pass"


@pytest.fixture
def setup(tmp_path):
    k, _pub = generate_keypair(tmp_path / "site", PASSWORD)
    key = load_private_key(k, PASSWORD)
    b = make_signed_bundle(tmp_path / "bundle", key, {"files/a.txt": b"a\n", "models/m/w.bin": os.urandom(3000)})
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious\n")
    (victim / "files").mkdir()
    (victim / "files" / "a.txt").write_text("victim file\n")
    stick = tmp_path / "stick"
    stick.mkdir()
    return b, key, stick, victim


def _snapshot(d):
    return {p.relative_to(d).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def _export(b, key, stick):
    return export_bundle(ExportOptions(bundle=b.root, targets=[stick], sign_key=key))


def test_export_into_a_plain_directory_works(setup):
    b, key, stick, _victim = setup
    s = _export(b, key, stick)
    assert s.volumes[0].parts_written == 2 and (stick / VOLUME_DIR / "files/a.txt").read_bytes() == b"a\n"


@pytest.mark.parametrize("case", ["target-dir", "parent-dir", "part"])
def test_planted_symlink_on_the_stick_is_refused_and_its_target_untouched(setup, case):
    b, key, stick, victim = setup
    before = _snapshot(victim)
    root = stick / VOLUME_DIR
    if case == "target-dir":
        root.symlink_to(victim)
        named = root
    elif case == "parent-dir":
        root.mkdir()
        (root / "files").symlink_to(victim / "files")
        named = root / "files"
    else:
        (root / "files").mkdir(parents=True)
        (root / "files" / "a.txt").symlink_to(victim / "files" / "a.txt")
        named = root / "files" / "a.txt"
    with pytest.raises(BundleError) as e:
        _export(b, key, stick)
    assert str(e.value).startswith(f"{named}: a symlink") and "refused" in str(e.value)
    assert _snapshot(victim) == before, "the export wrote or deleted through a planted link"


def test_symlink_above_the_volume_directory_is_refused(setup, tmp_path):
    b, key, stick, _victim = setup
    real = tmp_path / "real-stick"
    real.mkdir()
    sub = stick / "sub"
    sub.symlink_to(real)
    with pytest.raises(BundleError, match=f"{sub}: a symlink on the path to the stick"):
        _export(b, key, sub)
    assert list(real.iterdir()) == []


def test_fifo_on_the_stick_is_refused_before_anything_is_deleted(setup):
    b, key, stick, _victim = setup
    root = stick / VOLUME_DIR
    root.mkdir()
    (root / "stale.bin").write_bytes(b"x")
    os.mkfifo(root / "pipe")
    with pytest.raises(BundleError, match=f"{root / 'pipe'}: a special file"):
        _export(b, key, stick)
    assert (root / "stale.bin").exists()
