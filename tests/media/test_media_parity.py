"""Recovery data on the media, on REAL FAT32 images (mkfs.vfat + fusefat), the read side mounted ro.

A damaged stick is repaired at the site: a flipped byte, a truncated part, a deleted part, two damaged parts on one
stick of a spanned set; each rebuilt into the copy (import, and install's working copy) byte-identical, the
stick's image unchanged byte for byte. Damage beyond the parity is refused naming the parts; a recovery file whose
sha256 differs from the signed media manifest is never used; Debian's `par2` repairs the same damage alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from installer.core.errors import BundleError
from installer.core.hashing import sha256_bytes, sha256_file
from installer.media import parity
from installer.media.export import ExportOptions, export_bundle
from installer.media.manifest import VOLUME_DIR
from installer.media.reader import import_media, verify_media
from installer.trust.keys import generate_keypair, load_private_key, load_public_key
from tests.support.fat32 import make_image, mounted
from tests.support.signed_bundle import make_signed_bundle

PASSWORD = b"parity-test-pass"
BIG = os.urandom(300 * 1024 + 17)  # 5 parts of at most 64 KiB
K3S = os.urandom(70 * 1024)
FILES = {"models/m/model-00001.safetensors": BIG, "files/k3s": K3S, "charts/demo-1.0.0.tgz": b"chart-bytes",
         "files/empty": b""}
PART = "models/m/model-00001.safetensors.part{:04d}"
MEDAI = str(Path(__file__).resolve().parents[2] / ".venv/bin/medai")


@pytest.fixture
def keys(tmp_path):
    key, pub = generate_keypair(tmp_path / "site", PASSWORD)
    return load_private_key(key, PASSWORD), load_public_key(pub), pub


@pytest.fixture
def bundle(tmp_path, keys):
    return make_signed_bundle(tmp_path / "bundle", keys[0], FILES)


def _export(tmp_path, bundle, keys, percent, name="stick"):
    img = make_image(tmp_path / f"{name}.img", "64M")
    mnt = tmp_path / name
    with mounted(img, mnt):
        s = export_bundle(ExportOptions(bundle=bundle.root, targets=[mnt], sign_key=keys[0], max_file_size=64 * 1024,
                                        parity=percent))
    return img, mnt, s


def _flip(path: Path, at: int = 100) -> None:
    with open(path, "r+b") as f:  # fusefat refuses O_TRUNC
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 1]))


def _damage(img, mnt, change):
    with mounted(img, mnt):
        change(mnt / VOLUME_DIR)


def _check_copy(dest: Path) -> None:
    for rel, data in FILES.items():
        assert sha256_file(dest / rel) == sha256_bytes(data), rel
    assert not [p for p in dest.rglob("*") if ".medai-repair" in str(p)]  # the scratch directory is gone


def _read_only(img, mnt, fn):
    """Run fn(mount) on a read-only mount; the image must be byte-identical afterwards."""
    before = sha256_file(img)
    with mounted(img, mnt, read_only=True):
        with pytest.raises(OSError):
            (mnt / "probe").write_bytes(b"x")
        out = fn(mnt)
    assert sha256_file(img) == before, "the stick's image changed"
    return out


def test_export_writes_par2_listed_sized_and_hashed_in_the_signed_manifest(tmp_path, bundle, keys):
    img, mnt, s = _export(tmp_path, bundle, keys, 10)
    v = s.volumes[0]
    assert v.recovery_files >= 2 and v.recovery_bytes > 0 and v.parity_percent == 10
    with mounted(img, mnt, read_only=True):
        root = mnt / VOLUME_DIR
        doc = json.loads((root / "media.json").read_bytes())
        p = doc["parity"]
        assert p["format"] == "PAR2" and p["main"] == "medai-parity.par2" and p["percent"] == 10
        assert p["recoveryBlocks"] == -(-p["sourceBlocks"] * 10 // 100)
        assert sum(f["blocks"] for f in p["files"].values()) == p["recoveryBlocks"]
        for name, f in p["files"].items():
            assert (root / name).stat().st_size == f["size"] and sha256_file(root / name) == f["sha256"]
        read_back = parity.file_md5s(root / "medai-parity.par2")  # par2's read of each part is its read-back
        for name, part in doc["parts"].items():
            assert len(part.get("chunks", [])) == parity.blocks_of(part["size"], p["chunkSize"]), name
            if part["size"]:
                assert read_back[name] == (hashlib.md5((root / name).read_bytes()).digest(), part["size"]), name
        res = verify_media([mnt], keys[1])
        assert res.ok and res.status == "passed", (res.problems, res.repair)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated part", "deleted part"])
def test_damaged_part_is_repaired_into_the_copy_and_the_stick_is_only_read(tmp_path, bundle, keys, damage):
    img, mnt, _ = _export(tmp_path, bundle, keys, 30)  # 30 %: a whole 64 KiB part (16 blocks) of ~100
    victim = PART.format(2)

    def change(root):
        if damage == "flipped byte":
            _flip(root / victim)
        elif damage == "truncated part":
            (root / victim).unlink()
            (root / victim).write_bytes(BIG[2 * 65536:2 * 65536 + 30000])
        else:
            (root / victim).unlink()
    _damage(img, mnt, change)

    def read(m):
        v = verify_media([m], keys[1])
        assert v.status == "damaged, repairable" and not v.problems, (v.problems, v.repair)
        assert [d["part"] for d in v.damage] == [victim]
        assert "1 part damaged, repairable" in v.repair[0]["summary"]
        r = import_media([m], tmp_path / "copy", keys[1])
        assert r.repaired == [f"volume 1: {victim}"] and r.copied == 4
        _check_copy(tmp_path / "copy")
        assert import_media([m], tmp_path / "copy", keys[1]).skipped == 4  # resumable: nothing to rebuild
    _read_only(img, mnt, read)


def test_install_working_copy_repairs_from_the_read_only_stick(tmp_path, bundle, keys):
    from installer.deploy.working_copy import verified_working_copy

    img, mnt, _ = _export(tmp_path, bundle, keys, 10)
    _damage(img, mnt, lambda root: (_flip(root / PART.format(0), 5), _flip(root / "files/k3s.part0001", 7)))
    vb = _read_only(img, mnt, lambda m: verified_working_copy(m, keys[2], False, tmp_path / "state"))
    _check_copy(vb.root)
    assert vb.copy.copied == 4 and not list(vb.root.rglob("*.par2"))
    assert vb.repaired == sorted([f"volume 1: {PART.format(0)}", "volume 1: files/k3s.part0001"]) and not vb.recovery_not_used


def test_two_damaged_parts_on_one_stick_of_a_spanned_set(tmp_path, bundle, keys):
    key, pub, _ = keys
    imgs = [make_image(tmp_path / f"v{i}.img", "64M") for i in range(1, 4)]
    mnts = [tmp_path / f"v{i}" for i in range(1, 4)]
    with mounted(imgs[0], mnts[0]), mounted(imgs[1], mnts[1]), mounted(imgs[2], mnts[2]):
        s = export_bundle(ExportOptions(bundle=bundle.root, targets=mnts, sign_key=key, max_file_size=64 * 1024,
                                        volume_size=300 * 1024, parity=10))
        n = len(s.volumes)
        assert n >= 2 and all(v.recovery_files for v in s.volumes)
        on_first = sorted(json.loads((mnts[0] / VOLUME_DIR / "media.json").read_bytes())["parts"])
        big_first = [p for p in on_first if p.startswith("models/")] or [p for p in on_first if p.startswith("files/k3s")]
        assert len(on_first) >= 2
        first, second = on_first[0], on_first[-1]
        _flip(mnts[0] / VOLUME_DIR / first, 3)
        _flip(mnts[0] / VOLUME_DIR / second, 2)
    assert big_first
    before = [sha256_file(i) for i in imgs[:n]]
    from contextlib import ExitStack
    with ExitStack() as stack:
        for i in range(n):
            stack.enter_context(mounted(imgs[i], mnts[i], read_only=True))
        v = verify_media(mnts[:n], pub)
        assert v.status == "damaged, repairable", (v.problems, v.repair)
        assert sorted(d["part"] for d in v.damage) == sorted({first, second})
        assert [r["volume"] for r in v.repair] == [1]  # each stick repairs its own parts
        r = import_media(mnts[:n], tmp_path / "copy", pub)
        assert sorted(r.repaired) == sorted({f"volume 1: {first}", f"volume 1: {second}"})
    _check_copy(tmp_path / "copy")
    assert [sha256_file(i) for i in imgs[:n]] == before


def test_damage_beyond_the_parity_is_refused_naming_the_parts(tmp_path, bundle, keys):
    img, mnt, _ = _export(tmp_path, bundle, keys, 5)
    gone = [PART.format(1), PART.format(3)]
    _damage(img, mnt, lambda root: [(root / g).unlink() for g in gone])

    def read(m):
        v = verify_media([m], keys[1])
        assert v.status == "failed" and not v.repairable
        line = v.repair[0]["summary"]
        assert "not repairable:" in line and "% lost," in line and "% parity" in line, line
        with pytest.raises(BundleError) as e:
            import_media([m], tmp_path / "copy", keys[1])
        for g in gone:
            assert g in str(e.value)
        assert "cannot rebuild" in str(e.value) and "refused" in str(e.value)
        assert not (tmp_path / "copy/models/m/model-00001.safetensors").exists()
        r = subprocess.run([MEDAI, "bundle", "verify", str(m), "--key", str(keys[2])], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "300"})
        assert r.returncode == 1 and "not repairable" in r.stdout, r.stdout + r.stderr
    _read_only(img, mnt, read)


def test_a_tampered_recovery_file_is_never_used(tmp_path, bundle, keys):
    img, mnt, _ = _export(tmp_path, bundle, keys, 10)
    with mounted(img, mnt, read_only=True):
        files = json.loads((mnt / VOLUME_DIR / "media.json").read_bytes())["parity"]["files"]
    vols = sorted(n for n in files if n != parity.MAIN)
    _damage(img, mnt, lambda root: (_flip(root / PART.format(4)), _flip(root / vols[0], files[vols[0]]["size"] - 9)))

    def read(m):
        v = verify_media([m], keys[1])
        assert v.status == "damaged, repairable", v.repair
        assert v.repair[0]["recoveryNotUsed"][0].startswith(f"{vols[0]}: sha256")
        r = import_media([m], tmp_path / "copy", keys[1])
        assert r.repaired == [f"volume 1: {PART.format(4)}"]
        assert r.recovery_not_used and vols[0] in r.recovery_not_used[0]
        _check_copy(tmp_path / "copy")
    _read_only(img, mnt, read)
    # every recovery file altered (each still a valid PAR2 file to par2 where only the packet body changed): none
    # is used, and the flipped part is refused
    _damage(img, mnt, lambda root: [_flip(root / n, files[n]["size"] - 9) for n in vols[1:]])

    def refused(m):
        with pytest.raises(BundleError, match="no usable recovery file") as e:
            import_media([m], tmp_path / "copy2", keys[1])
        assert PART.format(4) in str(e.value)
    _read_only(img, mnt, refused)


def test_cli_export_parity_verify_exit_3_and_import_json_lists_repaired(tmp_path, bundle, keys):
    img = make_image(tmp_path / "stick.img", "64M")
    mnt = tmp_path / "mnt"
    env = {**os.environ, "MEDAI_KEY_PASSWORD": PASSWORD.decode(), "COLUMNS": "300"}
    with mounted(img, mnt):
        r = subprocess.run([MEDAI, "bundle", "export", str(bundle.root), "--to", str(mnt), "--max-file-size", "64K",
                            "--parity", "10", "--sign-key", str(tmp_path / "site.key")], env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0 and "PAR2 recovery file(s)" in r.stdout and "(10 %)" in r.stdout, r.stdout + r.stderr
        _flip(mnt / VOLUME_DIR / "files/k3s.part0000")

    def read(m):
        r = subprocess.run([MEDAI, "bundle", "verify", str(m), "--key", str(keys[2])], capture_output=True, text=True,
                           env=env)
        assert r.returncode == 3 and "DAMAGED, REPAIRABLE" in r.stdout and "1 part damaged, repairable" in r.stdout, \
            r.stdout + r.stderr
        r = subprocess.run([MEDAI, "bundle", "import", "--from", str(m), "--to", str(tmp_path / "copy"), "--key",
                            str(keys[2]), "--json"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["repaired"] == ["volume 1: files/k3s.part0000"]
    _read_only(img, mnt, read)
    _check_copy(tmp_path / "copy")


@pytest.mark.skipif(shutil.which("par2", path="/usr/bin") is None, reason="Debian's par2 (apt: par2; .ci/setup-host.sh)")
def test_debian_par2_repairs_the_stick_alone(tmp_path, bundle, keys):
    """Interop: a site without medai copies the stick and runs the standard tool on the copy."""
    img, mnt, _ = _export(tmp_path, bundle, keys, 10)
    _damage(img, mnt, lambda root: _flip(root / PART.format(1), 999))
    copy = tmp_path / "copy-of-stick"
    with mounted(img, mnt, read_only=True):
        shutil.copytree(mnt / VOLUME_DIR, copy)
        parts = json.loads((mnt / VOLUME_DIR / "media.json").read_bytes())["parts"]
    r = subprocess.run(["/usr/bin/par2", "repair", "medai-parity.par2"], cwd=copy, capture_output=True, text=True)
    assert r.returncode == 0 and "Repair complete" in r.stdout, r.stdout[-2000:]
    for name, p in parts.items():
        assert sha256_file(copy / name) == p["sha256"], name


def test_verdict_lines():
    p = {"blockSize": 8192, "chunkSize": 4096, "sourceBlocks": 100, "recoveryBlocks": 5}
    sizes = {"a": 81920, "b": 8192 * 6, "c": 100}
    ok, line = parity.verdict(p, {"a": {0, 1, 5}}, sizes, 5)  # chunks 0 and 1 are one block
    assert ok and line == "1 part damaged, repairable (2 of 5 recovery blocks needed)"
    ok, line = parity.verdict(p, {"a": None, "c": {0}}, sizes, 5)
    assert not ok and line.startswith("not repairable: 11 % lost, 5 % parity")
