"""Directories as one streamed, uncompressed tar (PAX) in a private file, and back (members checked as data)."""
from __future__ import annotations

import os
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from installer.core.errors import BackupError


def pack_dir(src: Path, arcname: str, dest: Path) -> Path:
    with open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f, \
            tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=arcname)
    return dest


@contextmanager
def tar_stream(src: Path, arcname: str) -> Iterator[BinaryIO]:
    """A readable stream of ``src`` as a tar, written by a thread into a pipe: the tar never lands on disk."""
    r, w = os.pipe()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with open(w, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(src, arcname=arcname)
        except BaseException as e:  # noqa: BLE001  (handed to the reader's thread below)
            failed.append(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    reader = open(r, "rb", buffering=1 << 20)  # noqa: SIM115  (closed below, after the writer thread ended)
    try:
        yield reader
    finally:
        reader.close()
        t.join()
    if failed and not isinstance(failed[0], BrokenPipeError):
        raise BackupError(f"{src}: could not be archived ({failed[0]})", path=str(src))


def names(path: Path, name: str) -> list[str]:
    try:
        with tarfile.open(path, "r|") as tar:
            return [m.name for m in tar]
    except (tarfile.TarError, OSError) as e:
        raise BackupError(f"{name}: not a readable tar archive ({e})", path=name) from None


def check_tar(path: Path, name: str) -> dict:
    return {"check": "tar readable", "members": len(names(path, name))}


def unpack(path: Path, dest: Path, name: str) -> Path:
    """Extract into ``dest``; links out of it, devices and absolute names are refused (tar's data filter). What
    is restored is the owner's only (group and other bits cleared): it holds secrets and patient data."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with tarfile.open(path, "r|") as tar:
            tar.extractall(dest, filter=_private)
    except (tarfile.TarError, OSError) as e:
        raise BackupError(f"{name}: not a readable tar archive ({e})", path=name) from None
    return dest


def _private(member: tarfile.TarInfo, where: str) -> tarfile.TarInfo | None:
    member = tarfile.data_filter(member, where)
    return member.replace(mode=member.mode & 0o700, deep=False) if member.mode is not None else member
