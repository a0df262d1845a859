"""helm, always started with an allow-listed environment (pyhelm3 would hand it ours)."""
from __future__ import annotations

import asyncio
import shutil

from installer.core.childenv import HELM, allow_listed_executable, child_env
from installer.core.errors import SourceError
from installer.core.resources import local_tool


def helm_executable() -> str:
    """helm on PATH, else the project's .tools/bin/helm."""
    found = shutil.which("helm")
    if found:
        return found
    local = local_tool("helm")
    if local.is_file():
        return str(local)
    raise SourceError("helm not found: install helm 3 (PATH or .tools/bin/helm); it fetches and renders charts")


def allow_listed_helm() -> str:
    return allow_listed_executable(helm_executable(), child_env(allow=HELM, network=True))


def helm_command(executable: str | None = None, kubeconfig=None):
    from pyhelm3 import Command

    if kubeconfig is None:
        return Command(executable=executable or allow_listed_helm())
    return Command(executable=executable or allow_listed_helm(), kubeconfig=kubeconfig)


def run_helm(args: list[str]) -> bytes:
    """Run one helm command; pyhelm3 raises its Error (with helm's stderr) on failure."""
    return asyncio.run(helm_command().run(args))
