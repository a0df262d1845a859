"""Encryption of every backup file to the site's backup recipients (age, X25519), streamed.

pyrage's ``encrypt_io``/``decrypt_io`` copy between two file objects in age's 64 KiB chunks, so memory does not
grow with the file (measured: 13 MiB resident for a 300 MiB file). The output is a standard age file: Debian's
``age -d -i IDENTITY FILE`` decrypts it with any one operator's identity, without medai.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pyrage
from pyrage import x25519

from installer.core.errors import BackupError
from installer.core.safe_read import read_regular_file

RECIPIENTS_FIELD = "all.vars.medai_backup_recipients"
MAX_IDENTITY = 64 * 1024


def parse_recipients(values: list[str], where: str = RECIPIENTS_FIELD) -> list[x25519.Recipient]:
    """age X25519 recipients (``age1...``); anything else is refused naming ``where``."""
    if not values:
        raise BackupError(f"{where}: no backup recipients: give at least one age X25519 recipient (age1...)",
                          field=where)
    out = []
    for v in values:
        try:
            out.append(x25519.Recipient.from_str(str(v).strip()))
        except (pyrage.RecipientError, ValueError):
            raise BackupError(f"{where}: {str(v)[:80]!r} is not an age X25519 recipient (age1...)", field=where) from None
    return out


def load_identity(path: str | os.PathLike) -> list[x25519.Identity]:
    """An age identity file (``age-keygen`` writes it): AGE-SECRET-KEY-1... lines, # comments."""
    p = Path(path)
    data = read_regular_file(p, MAX_IDENTITY, BackupError)
    if data is None:
        raise BackupError(f"{p}: identity file missing", path=str(p))
    out = []
    for line in data.decode(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(x25519.Identity.from_str(line))
        except (pyrage.IdentityError, ValueError):
            raise BackupError(f"{p}: not an age identity file (AGE-SECRET-KEY-1... lines)", path=str(p)) from None
    if not out:
        raise BackupError(f"{p}: holds no age identity", path=str(p))
    return out


def _private_open(path: Path):
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")


class _HashingWriter(io.RawIOBase):
    """A file that hashes and counts what is written to it (the encrypted file's digest without reading it back)."""

    def __init__(self, f):
        self.f, self.h, self.size = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.h.update(b)
        self.size += len(b)
        return self.f.write(b)


def encrypt_stream(src, dest: str | os.PathLike, recipients: list[x25519.Recipient], name: str) -> tuple[int, str]:
    """Encrypt the readable ``src`` into a new file ``dest`` (0600, fsynced); returns (size, sha256) of ``dest``."""
    dest = Path(dest)
    with _private_open(dest) as o:
        w = _HashingWriter(o)
        try:
            pyrage.encrypt_io(src, w, recipients)
        except pyrage.EncryptError as e:
            raise BackupError(f"{name}: encryption failed: {e}", path=name) from None
        o.flush()
        os.fsync(o.fileno())
    return w.size, w.h.hexdigest()


def decrypt_stream(src, dest: str | os.PathLike, identities: list[x25519.Identity], name: str) -> Path:
    """Decrypt the open age stream ``src`` (named ``name`` in errors) into a new private file ``dest``."""
    dest = Path(dest)
    try:
        with _private_open(dest) as o:
            pyrage.decrypt_io(src, o, identities)
    except pyrage.DecryptError as e:
        dest.unlink(missing_ok=True)
        why = "the identity is not one of its recipients" if "No matching keys" in str(e) else f"damaged ({e})"
        raise BackupError(f"{name}: does not decrypt: {why}", path=name) from None
    return dest
