"""Index.json, index.json.sig, the lock, run records and reports go through the one atomic
helper (temp file, fsync, rename, fsync of the directory)."""
from __future__ import annotations

import json
import os

import pytest

import installer.core.atomic as atomic


@pytest.fixture
def synced(monkeypatch):
    """Records every fsync of a file descriptor and of a directory made through installer.core.atomic."""
    dirs, files = [], []
    real_fsync, real_dir = os.fsync, atomic.fsync_dir

    def rec_fsync(fd):
        files.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def rec_dir(path):
        dirs.append(str(path))
        return real_dir(path)

    monkeypatch.setattr(atomic.os, "fsync", rec_fsync)
    monkeypatch.setattr(atomic, "fsync_dir", rec_dir)
    return dirs, files


def test_index_signature_lock_and_run_record_are_durable(tmp_path, synced, monkeypatch):
    from cryptography.hazmat.primitives.asymmetric import ec

    from installer.bundle.index import write_index
    from installer.bundle.layout import BundleLayout
    from installer.bundle.lock import Lock
    from installer.deploy import state
    from installer.trust.keys import SigningKey
    from installer.trust.signing import sign_index

    dirs, files = synced
    layout = BundleLayout.at(tmp_path / "b")
    (layout.root / "files").mkdir(parents=True)
    (layout.root / "files" / "a").write_text("a")
    data = write_index(layout, {"name": "n", "version": "1", "created": "x"}, [], {})
    sign_index(layout, data, SigningKey(ec.generate_private_key(ec.SECP256R1())))
    Lock(files={"a": "0" * 64}).write(tmp_path / "lock.yaml")
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "home"))
    inv = tmp_path / "inv.yml"
    inv.write_text("all: {}\n")
    rec = state.new_run("test", inv)
    for name, d in (("index.json", layout.root), ("index.json.sig", layout.root), ("lock.yaml", tmp_path), ("run.json", rec.dir)):
        assert any(f.startswith(str(d / f".{name}.")) for f in files), f"{name}: content not fsynced before the rename"
        assert str(d) in dirs, f"{name}: directory not fsynced after the rename"
        assert (d / name).is_file() and not list(d.glob(f".{name}.*.tmp"))
    assert json.loads((rec.dir / "run.json").read_text())["result"] == "running"
    assert oct((rec.dir / "run.json").stat().st_mode & 0o777) == "0o600"
