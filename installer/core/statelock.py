"""One writer per state directory: a `flock` on $MEDAI_HOME/.lock held while a command writes state.

Two commands sharing a MEDAI_HOME would otherwise interleave in the private working copy, and the second one's
start would sweep the first's `secret-vars.json` as interrupted. The lock is taken without waiting: a second
command fails at once, naming the holder's PID and command (written into the lock file by the holder). It is
counted per process (a run record inside a working-copy step nests) and released with the last holder, or by
the kernel when the process dies (SIGKILL included): a stale lock file never blocks anyone.
"""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from installer.core.errors import StateError

LOCK = ".lock"
_held: dict[str, list[int]] = {}  # state directory -> [fd, count]


def _command() -> str:
    words = [os.path.basename(sys.argv[0] or "medai")] + [a for a in sys.argv[1:3] if not a.startswith("-")]
    return " ".join(words)[:200]


def hold(home: str | os.PathLike, command: str | None = None) -> None:
    """Take (or count once more) the state lock of `home`; StateError naming the holder when another process
    has it."""
    home_p = Path(home)
    key = str(home_p.absolute())
    if key in _held:
        _held[key][1] += 1
        return
    home_p.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(home_p / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown"
        os.close(fd)
        pid, _, cmd = holder.partition(" ")
        raise StateError(f"{home_p / LOCK}: the state directory is in use by PID {pid} ({cmd or 'medai'}): "
                         "one command at a time writes it; wait for that one to finish") from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {command or _command()}\n".encode(), 0)
    _held[key] = [fd, 1]


def release(home: str | os.PathLike) -> None:
    """Count one holder less; the lock is let go with the last one."""
    key = str(Path(home).absolute())
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[key]
        try:
            os.ftruncate(entry[0], 0)
        finally:
            os.close(entry[0])


def holding(home: str | os.PathLike) -> bool:
    return str(Path(home).absolute()) in _held
