"""A backup set on a real FAT32 image (mkfs.vfat + fusefat), read back read-only; Debian's age decrypts it;
each kind of tampering is refused naming what is wrong; no secret the test made is on the image in any form."""
from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from installer.backup import media
from installer.backup.crypto import load_identity
from installer.core.errors import BackupError, TrustError
from tests.backup.conftest import new_key, stage_set
from tests.support.fat32 import make_image, mounted


def test_set_on_fat32_verifies_read_only_and_holds_no_plain_secret(tmp_path, site_key, operators):
    staging, made = stage_set(tmp_path / "a", site_key, operators)
    image = make_image(tmp_path / "stick.img", "64M")
    mnt = tmp_path / "mnt"
    with mounted(image, mnt):
        summary = media.write(staging, [mnt], site_key, max_file_size=64 * 1024, percent=0)
    assert summary.split_files >= 1  # the 300 kB archive spans parts of 64 KiB
    with mounted(image, mnt, read_only=True):
        res = media.verify([mnt], site_key.public, load_identity(operators[1].file))
        assert set(res.components) == {"site", "longhorn"}
        assert res.components["site"][0]["check"].startswith("tar readable")
        got = subprocess.run(["age", "-d", "-i", str(operators[0].file), "-o", str(tmp_path / "state.tar"),
                              str(mnt / "medai-bundle" / "site" / "state.tar.age")], capture_output=True)
        assert got.returncode == 0, got.stderr
        joined = subprocess.run(f"cat {mnt}/medai-bundle/longhorn/backupstore.tar.age* | age -d -i {operators[1].file}"
                                f" | tar -xO backupstore/blocks.bin", shell=True, capture_output=True)
        assert joined.returncode == 0 and joined.stdout == (tmp_path / "a" / "lh" / "blocks.bin").read_bytes()
    import tarfile
    with tarfile.open(tmp_path / "state.tar") as tar:
        assert tar.extractfile("secrets/site1/token").read().decode().strip() == made["k3s token"]
    raw = image.read_bytes()
    for what, secret in made.items():
        for form in (secret.encode(), base64.b64encode(secret.encode()), secret.encode().hex().encode()):
            assert form not in raw, f"{what} is on the image in clear ({form[:12]!r}...)"


@pytest.fixture
def on_disk(tmp_path, site_key, operators) -> Path:
    staging, _ = stage_set(tmp_path / "a", site_key, operators)
    out = tmp_path / "media"
    out.mkdir()
    media.write(staging, [out], site_key, max_file_size=64 * 1024, percent=0)
    return out


def test_a_flipped_byte_in_a_part_is_refused_naming_the_part(on_disk, site_key):
    part = on_disk / "medai-bundle" / "longhorn" / "backupstore.tar.age.part0002"
    data = bytearray(part.read_bytes())
    data[100] ^= 0x01
    part.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"longhorn/backupstore\.tar\.age\.part0002"):
        media.verify([on_disk], site_key.public)


def test_a_part_from_another_set_is_refused_naming_the_part(on_disk, tmp_path, site_key, operators):
    other, _ = stage_set(tmp_path / "b", site_key, operators)
    out = tmp_path / "media-b"
    out.mkdir()
    media.write(other, [out], site_key, max_file_size=64 * 1024, percent=0)
    name = "longhorn/backupstore.tar.age.part0001"
    shutil.copyfile(out / "medai-bundle" / name, on_disk / "medai-bundle" / name)
    with pytest.raises(BackupError, match=name.replace(".", r"\.")):
        media.verify([on_disk], site_key.public)


def test_a_set_signed_by_another_key_is_refused_naming_the_index(on_disk):
    with pytest.raises(TrustError, match=r"medai-bundle/index\.json: signature does not verify"):
        media.verify([on_disk], new_key().public)


def test_a_wrong_identity_is_refused_naming_the_file(on_disk, site_key, tmp_path):
    from tests.backup.conftest import Operator

    stranger = Operator(tmp_path, "mallory")
    with pytest.raises(BackupError, match=r"longhorn/backupstore\.tar\.age: does not decrypt: the identity is not"):
        media.verify([on_disk], site_key.public, load_identity(stranger.file))


def test_a_bundle_index_is_not_taken_for_a_set(tmp_path, site_key):
    from tests.support.signed_bundle import make_signed_bundle

    make_signed_bundle(tmp_path / "b", site_key, {"files/x": b"x"})
    out = tmp_path / "m"
    out.mkdir()
    media.write(tmp_path / "b", [out], site_key, percent=0)
    with pytest.raises(BackupError, match="not a medai backup set"):
        media.verify([out], site_key.public)
