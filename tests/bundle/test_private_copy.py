"""installer.bundle.private_copy: each member streamed through one hash against the verified index entries."""
from __future__ import annotations

import hashlib
import os

import pytest

from installer.bundle.private_copy import copy_verified, directory_opener, safe_relpath
from installer.core.errors import BundleError


def entry(root, rel):
    data = (root / rel).read_bytes()
    return {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "stick"
    (root / "files").mkdir(parents=True)
    (root / "files" / "a.txt").write_bytes(b"alpha\n" * 1000)
    (root / "files" / "b.bin").write_bytes(os.urandom(300_000))
    return root


def test_copies_every_entry_checked(src, tmp_path):
    entries = [entry(src, "files/a.txt"), entry(src, "files/b.bin")]
    res = copy_verified(directory_opener(src), entries, tmp_path / "copy")
    assert res.copied == 2 and res.bytes_copied == sum(e["size"] for e in entries)
    for e in entries:
        assert (tmp_path / "copy" / e["path"]).read_bytes() == (src / e["path"]).read_bytes()
    assert oct((tmp_path / "copy").stat().st_mode & 0o777) == "0o700"


def test_tampered_digest_refused_and_not_placed(src, tmp_path):
    e = entry(src, "files/a.txt")
    (src / "files" / "a.txt").write_bytes(b"ALPHA\n" * 1000)  # same size, other bytes
    with pytest.raises(BundleError, match=r"files/a.txt: sha256 .* differs from the signed index"):
        copy_verified(directory_opener(src), [e], tmp_path / "copy")
    assert not (tmp_path / "copy" / "files" / "a.txt").exists()
    assert not list((tmp_path / "copy").rglob("*.part"))


@pytest.mark.parametrize("delta,word", [(-1, "bytes on the medium"), (+5, "more than")])
def test_tampered_size_refused(src, tmp_path, delta, word):
    e = entry(src, "files/a.txt")
    data = (src / "files" / "a.txt").read_bytes()
    (src / "files" / "a.txt").write_bytes(data[:delta] if delta < 0 else data + b"x" * delta)
    with pytest.raises(BundleError, match=word):
        copy_verified(directory_opener(src), [e], tmp_path / "copy")


def test_symlink_in_the_source_is_not_followed(src, tmp_path):
    e = entry(src, "files/a.txt")
    outside = tmp_path / "outside.txt"
    outside.write_bytes((src / "files" / "a.txt").read_bytes())  # same bytes: only the link is wrong
    (src / "files" / "a.txt").unlink()
    (src / "files" / "a.txt").symlink_to(outside)
    with pytest.raises(BundleError, match=r"files/a.txt: cannot open"):
        copy_verified(directory_opener(src), [e], tmp_path / "copy")
    # a symlinked parent directory too
    (src / "files" / "a.txt").unlink()
    (src / "files").rename(src / "real")
    (src / "files").symlink_to(src / "real")
    with pytest.raises(BundleError, match=r"cannot open"):
        copy_verified(directory_opener(src), [e], tmp_path / "copy")


@pytest.mark.parametrize("rel", ["../etc/passwd", "files/../../x", "/etc/passwd", "files//a", "./files/a", "a\nb", "", "a\\b"])
def test_bad_entry_paths_refused_before_anything_is_copied(src, tmp_path, rel):
    with pytest.raises(BundleError, match="not a normalised relative path"):
        copy_verified(directory_opener(src), [entry(src, "files/a.txt"), {"path": rel, "size": 1, "sha256": "0" * 64}],
                      tmp_path / "copy")
    assert not (tmp_path / "copy" / "files").exists()
    with pytest.raises(BundleError):
        safe_relpath(rel)


def test_resume_skips_what_is_in_place_and_redoes_a_damaged_copy(src, tmp_path):
    entries = [entry(src, "files/a.txt"), entry(src, "files/b.bin")]
    dest = tmp_path / "copy"
    copy_verified(directory_opener(src), entries[:1], dest)  # interrupted after the first file
    res = copy_verified(directory_opener(src), entries, dest)
    assert (res.copied, res.skipped) == (1, 1)
    (dest / "files" / "b.bin").write_bytes(b"damaged")
    res = copy_verified(directory_opener(src), entries, dest)
    assert (res.copied, res.skipped) == (1, 1)
    assert (dest / "files" / "b.bin").read_bytes() == (src / "files" / "b.bin").read_bytes()


def test_symlinked_directory_in_the_destination_is_not_written_through(src, tmp_path):
    """`bundle import --to DIR` / the working copy: a link planted in the destination is refused."""
    victim = tmp_path / "victim"
    victim.mkdir()
    dest = tmp_path / "copy"
    dest.mkdir()
    (dest / "files").symlink_to(victim)
    with pytest.raises(BundleError, match=f"{dest / 'files'}: a symlink in the destination"):
        copy_verified(directory_opener(src), [entry(src, "files/a.txt")], dest)
    assert list(victim.iterdir()) == []


def test_fifo_member_is_refused_not_waited_on(src, tmp_path):
    e = entry(src, "files/a.txt")
    (src / "files" / "a.txt").unlink()
    os.mkfifo(src / "files" / "a.txt")
    with pytest.raises(BundleError, match=r"files/a.txt: not a regular file"):
        copy_verified(directory_opener(src), [e], tmp_path / "copy")
