"""Run podman (and the few host commands the lab needs) with the project's containers.conf."""
from __future__ import annotations

import os
import subprocess

from installer.core.errors import LabError
from installer.core.resources import SOURCE_ROOT

PROJECT_ROOT = SOURCE_ROOT


def containers_conf() -> str:
    """The project's containers.conf (runc, ulimits); an explicit CONTAINERS_CONF wins."""
    return os.environ.get("CONTAINERS_CONF") or str(PROJECT_ROOT / ".tools" / "containers.conf")


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": containers_conf()}


def run(argv: list[str], *, check: bool = True, timeout: float = 120, input: bytes | None = None,
        what: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a host command; on failure raise LabError naming the command and its last stderr line."""
    try:
        proc = subprocess.run(argv, env=podman_env(), capture_output=True, timeout=timeout,
                              input=input.decode() if input is not None else None, text=True)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]} not found on PATH (run .ci/setup-host.sh)") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{what or ' '.join(argv[:3])}: timed out after {timeout:.0f}s") from e
    if check and proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout or "").strip().splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit {proc.returncode}"
        raise LabError(f"{what or ' '.join(argv[:3])}: {detail}")
    return proc


def podman(*args: str, check: bool = True, timeout: float = 120, what: str | None = None) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], check=check, timeout=timeout, what=what or f"podman {args[0]}")
