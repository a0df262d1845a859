"""`medai install`'s verified working copy built straight from USB media on a REAL FAT32 filesystem (mkfs.vfat +
fusefat, mounted read-only): split parts streamed in order through one hash into the private copy (the file
exists once, on local disk), the stick's image unchanged byte for byte, and a tampered part refused by name."""
from __future__ import annotations

import os

import pytest

from installer.core.errors import BundleError, TrustError
from installer.core.hashing import sha256_file
from installer.deploy.preinstall import bundle_path
from installer.deploy.working_copy import verified_working_copy
from installer.media.export import ExportOptions, export_bundle
from installer.media.manifest import VOLUME_DIR
from installer.trust.keys import generate_keypair, load_private_key
from tests.support.fat32 import make_image, mounted
from tests.support.signed_bundle import make_signed_bundle

PASSWORD = b"media-wc-pass"
BIG = os.urandom(200 * 1024 + 5)  # 4 parts of 64 KiB


@pytest.fixture
def exported(tmp_path):
    k, pub = generate_keypair(tmp_path / "site", PASSWORD)
    key = load_private_key(k, PASSWORD)
    b = make_signed_bundle(tmp_path / "bundle", key, {"models/m/model.safetensors": BIG, "files/site-ca.pem": b"ca\n"})
    stick = make_image(tmp_path / "stick.img", "64M")
    mnt = tmp_path / "mnt"
    with mounted(stick, mnt):
        export_bundle(ExportOptions(bundle=b.root, targets=[mnt], sign_key=key, max_file_size=64 * 1024, parity=0))
        assert len(list((mnt / VOLUME_DIR / "models/m").iterdir())) == 4
    return stick, mnt, pub


def test_working_copy_from_read_only_fat32_parts(tmp_path, exported):
    stick, mnt, pub = exported
    before = sha256_file(stick)
    with mounted(stick, mnt, read_only=True):
        vb = verified_working_copy(mnt, pub, False, tmp_path / "state")
        assert (vb.root / "models/m/model.safetensors").read_bytes() == BIG
        assert vb.copy.copied == 2 and vb.signature == "verified"
        assert not list(vb.root.rglob("*.part*"))  # no part lands on disk: the file is assembled in the stream
        assert vb.source == mnt / VOLUME_DIR
        # a rerun finds the checked copy
        assert verified_working_copy(mnt, pub, False, tmp_path / "state").copy.skipped == 2
        # `medai install --bundle MOUNT` resolves the mount point to the media, not a bundle directory
        from types import SimpleNamespace
        assert bundle_path(SimpleNamespace(site=SimpleNamespace(medai_bundle_dir=None), path=tmp_path), mnt) == mnt / VOLUME_DIR
        with pytest.raises(TrustError, match="site public key"):
            verified_working_copy(mnt, None, True, tmp_path / "state2")  # media without --key: refused
    assert sha256_file(stick) == before  # the stick was only read


def test_tampered_part_is_refused_naming_it(tmp_path, exported):
    stick, mnt, pub = exported
    with mounted(stick, mnt):
        with open(mnt / VOLUME_DIR / "models/m/model.safetensors.part0001", "r+b") as f:  # fusefat refuses O_TRUNC
            f.seek(10)
            b = f.read(1)
            f.seek(10)
            f.write(bytes([b[0] ^ 1]))
    with mounted(stick, mnt, read_only=True):
        with pytest.raises(BundleError) as e:
            verified_working_copy(mnt, pub, False, tmp_path / "state")
    assert "bundle refused" in str(e.value) and "part models/m/model.safetensors.part0001" in str(e.value)
    assert not (tmp_path / "state" / "bundles").exists() or not list((tmp_path / "state" / "bundles").rglob("model.safetensors"))
