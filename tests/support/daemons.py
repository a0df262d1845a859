"""Daemons a test may start as a side effect (gpg starts a gpg-agent per GNUPGHOME): find them and stop them."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path


def gpg_agents_under(root: Path) -> dict[int, str]:
    """{pid: homedir} of every running gpg-agent whose --homedir lies under root."""
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv[0] or Path(argv[0].decode(errors="replace")).name != "gpg-agent" or b"--homedir" not in argv:
            continue
        home = argv[argv.index(b"--homedir") + 1].decode(errors="replace")
        if Path(home).is_relative_to(root):
            found[int(proc.name)] = home
    return found


def stop_gpg_agent(home: Path | str) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=30)


def wait_gone(root: Path, timeout: float = 5.0) -> dict[int, str]:
    """The gpg-agents under root still running after up to `timeout` seconds (an agent told to stop exits soon after)."""
    deadline = time.monotonic() + timeout
    left = gpg_agents_under(root)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = gpg_agents_under(root)
    return left
