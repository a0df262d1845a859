"""Unseal shares typed by the operators: a hidden prompt per share, or one per line on stdin for automation."""
from __future__ import annotations

import getpass
import sys

from installer.core.errors import VaultError


def share_reader(stdin: bool):
    """Shares from a hidden prompt (getpass) or, for automation, one per line on stdin."""
    use_stdin = stdin or not sys.stdin.isatty()

    def ask(i: int, threshold: int) -> str:
        if use_stdin:
            line = sys.stdin.readline()
            if not line:
                raise VaultError(f"stdin ended after {i - 1} of {threshold} unseal shares")
            return line.strip()
        try:
            return getpass.getpass(f"Unseal share {i} of {threshold} (not echoed): ")
        except (EOFError, KeyboardInterrupt):
            raise VaultError(f"no share entered ({i - 1} of {threshold})") from None

    return ask


def collect_shares(ask, threshold: int) -> list[str]:
    return [ask(i + 1, threshold).strip() for i in range(threshold)]
