"""`medai lab demo`: the whole flow on one machine, through the same commands an operator types.

connected side : lab node image -> local sources -> loopback registry -> `medai keys generate`
                 -> `medai bundle build --sign-key`
behind the gap : `medai lab up` (1 server + 2 agents) -> `medai install --key` -> `medai verify`

The node image comes first: the demo's test images are cut from its root filesystem, so on a machine with an
empty podman store nothing later may assume it exists. Every step is safe to run again after a failure.

Each step runs the real `medai` command in a child process. A step whose command is not in this build is
reported as "not available" and everything that depends on it is reported as skipped: nothing is simulated.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from installer.core.errors import MedaiError
from installer.lab import demo_sources
from installer.lab import image as lab_image
from installer.lab import site as lab_site
from installer.lab.inventory import write_inventory
from installer.lab.registry import loopback_registry
from installer.lab.state import lab_dir, lab_inventory_file

# What the os role installs in the demo (from the bundle's Debian 12 repository; resolved on the connected side):
# bundles/platform.yaml's debian-12 list, plus what the hardening role's `package` tasks need behind the gap
# (libpam-pwquality, and python3-apt for Ansible's apt module).
DEMO_OS_PACKAGES = ["chrony", "auditd", "open-iscsi", "nfs-common", "openscap-scanner", "curl", "ca-certificates",
                    "iptables", "nftables", "libpam-pwquality", "python3-apt"]

def medai_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "installer.cli.main", *args]


def command_available(*words: str) -> bool:
    """True when this build has the `medai <words>` command (its --help exits 0)."""
    proc = subprocess.run(medai_argv(*words, "--help"), capture_output=True, text=True, timeout=120)
    return proc.returncode == 0


@dataclass
class Step:
    name: str
    status: str = "pending"  # done | failed | not available | skipped
    seconds: float = 0.0
    detail: str = ""


@dataclass
class DemoRun:
    console: Console
    steps: list[Step] = field(default_factory=list)

    def step(self, name: str, fn: Callable[[], str], *, needs: list[str] = (), command: tuple[str, ...] = ()) -> bool:
        st = Step(name)
        self.steps.append(st)
        missing = [n for n in needs if self.status(n) != "done"]
        if missing:
            st.status, st.detail = "skipped", f"needs {', '.join(missing)}"
            return False
        if command and not command_available(*command):
            st.status, st.detail = "not available", f"`medai {' '.join(command)}` is not in this build yet"
            return False
        self.console.rule(f"[bold]{name}")
        t0 = time.monotonic()
        try:
            st.detail = fn() or ""
            st.status = "done"
        except (MedaiError, subprocess.CalledProcessError) as e:
            st.status, st.detail = "failed", _one_line(e)
        finally:
            st.seconds = time.monotonic() - t0
        return st.status == "done"

    def status(self, name: str) -> str:
        return next((s.status for s in self.steps if s.name == name), "missing")

    def summary(self) -> Table:
        table = Table(title="medai lab demo", show_edge=False)
        for col in ("step", "result", "time", "detail"):
            table.add_column(col, justify="right" if col == "time" else "left")
        colours = {"done": "green", "failed": "red", "not available": "yellow", "skipped": "yellow"}
        for s in self.steps:
            table.add_row(s.name, f"[{colours.get(s.status, 'white')}]{s.status}[/]",
                          f"{s.seconds:.0f}s" if s.seconds else "", s.detail)
        return table

    @property
    def ok(self) -> bool:
        return all(s.status == "done" for s in self.steps)

    def failure_line(self) -> str | None:
        """The demo's last line when it did not finish: the failed step, its one-line cause, what to run next."""
        failed = next((s for s in self.steps if s.status == "failed"), None)
        if failed is None:
            pending = next((s for s in self.steps if s.status != "done"), None)
            if pending is None:
                return None
            failed = pending
        return (f"demo stopped at step '{failed.name}' ({failed.status}): {failed.detail} | retry: "
                f"`.venv/bin/medai lab demo` (finished steps converge) | clean up: `.venv/bin/medai lab down`")


def _one_line(e: Exception) -> str:
    if isinstance(e, subprocess.CalledProcessError):
        return f"`medai {' '.join(e.cmd[3:5])}` exited {e.returncode} (its output is above)"
    return str(e).splitlines()[0]


def _medai(env: dict[str, str], *args: str) -> None:
    """Run a medai command with its output streaming to this terminal; raise on a non-zero exit."""
    subprocess.run(medai_argv(*args), env=env, check=True)


def run_demo(console: Console, *, os_packages: bool = True, down_after: bool = False,
             build_image: Callable[[], str] = lab_image.build_image,
             lab_up: Callable[..., object] | None = None) -> DemoRun:
    """The whole flow, step by step; ``build_image`` and ``lab_up`` are replaceable for tests of the failure path."""
    if lab_up is None:
        lab_up = lab_site.lab_up
    # helm and cosign from .ci/setup-host.sh, and ansible-playbook beside this Python (a venv not activated)
    for bin_dir in (Path(sys.executable).parent, demo_sources.PROJECT_ROOT / ".tools" / "bin"):
        if bin_dir.is_dir() and str(bin_dir) not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    work = lab_dir() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    bundle = work / "bundle"
    key_prefix = work / "keys" / "demo"
    evidence = work / "evidence"
    # The signing key's password reaches only the two commands that use the private key (keys generate, bundle
    # build); install and verify run with an environment that never held it.
    plain_env = {k: v for k, v in os.environ.items() if k != "MEDAI_KEY_PASSWORD"}
    env = {**plain_env, "MEDAI_KEY_PASSWORD": secrets.token_urlsafe(24)}
    demo = DemoRun(console)

    def keys() -> str:
        key_prefix.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _medai(env, "keys", "generate", "--out", str(key_prefix), "--force")
        return f"{key_prefix}.pub"

    def build() -> str:
        with loopback_registry(work / "registry") as reg:
            console.print(f"loopback registry {reg.host}: images cut from the lab's Debian root filesystem, chart via OCI")
            src = demo_sources.make_sources(reg.host, work / "sources")
            manifest = demo_sources.write_manifest(work / "demo.yaml", src, DEMO_OS_PACKAGES if os_packages else None)
            args = ["bundle", "build", str(manifest), "--out", str(bundle), "--no-tools"]
            if demo.status("signing key") == "done":
                args += ["--sign-key", f"{key_prefix}.key"]
            _medai(env, *args)
        return str(bundle)

    def up() -> str:
        lab = lab_up(1, 2, 0, console)
        write_inventory(lab, lab_inventory_file(), cluster_name="medai-lab", bundle_dir=bundle)
        return f"{len(lab.nodes)} nodes, inventory {lab_inventory_file()}"

    def install() -> str:
        args = ["install", "--inventory", str(lab_inventory_file()), "--bundle", str(bundle), "--yes"]
        args += ["--key", f"{key_prefix}.pub"] if demo.status("signing key") == "done" else ["--insecure-skip-signature"]
        _medai(plain_env, *args)
        return "K3s configured; started only if the bundle carries a K3s binary (this demo's does not)"

    def verify() -> str:
        # medai's default gate (medium) and default waivers (installer/compliance/default-waivers.yml), as a site
        # that passes neither --fail-on nor --waivers gets them
        args = ["verify", "--inventory", str(lab_inventory_file()), "--bundle", str(bundle), "--out", str(evidence)]
        if demo.status("signing key") == "done":
            args += ["--key", f"{key_prefix}.pub"]
        _medai(plain_env, *args)
        return f"evidence in {evidence} (gate at medium; medai's default waivers listed there)"

    def image() -> str:
        return build_image()

    demo.step("lab image", image)
    demo.step("signing key", keys, command=("keys", "generate"))
    demo.step("bundle build", build, needs=["lab image"], command=("bundle", "build"))
    demo.step("lab up", up, needs=["lab image"])
    demo.step("install", install, needs=["bundle build", "lab up"], command=("install",))
    demo.step("verify", verify, needs=["install"], command=("verify",))
    if down_after:
        lab_site.lab_down()
    return demo

