"""The control host's state directory: run records, generated secrets, fetched kubeconfigs.

    $MEDAI_HOME, else /var/lib/medai/ (installer.core.resources.state_dir)
      .lock                       the state lock (installer.core.statelock): one writing command at a time
      runs/<id>/run.json          who, when, command, inventory (path, sha256), bundle index digest, result, summary
      runs/<id>/runner/           ansible-runner private_data_dir (its artifacts/ are scanned for secrets)
      secrets/<cluster>/token     K3s cluster token, generated once (0600, directories 0700)
      kubeconfig-<cluster>        admin kubeconfig after a successful install (0600)
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from installer.core import statelock
from installer.core.atomic import atomic_write_bytes, atomic_write_text
from installer.core.hashing import sha256_file
from installer.core.resources import state_dir


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only, without a window where it is world-readable."""
    _private_dir(path.parent)
    atomic_write_bytes(path, data, mode=0o600)  # mkstemp creates it 0600: no world-readable window


def cluster_token(cluster: str, home: Path | None = None) -> str:
    """The cluster's join token: generated once, then reused so reruns and new nodes join the same cluster."""
    path = (home or state_dir()) / "secrets" / cluster / "token"
    _private_dir(path.parent.parent)
    if path.is_file():
        return path.read_text().strip()
    token = secrets.token_hex(32)
    write_private(path, (token + "\n").encode())
    return token


def kubeconfig_path(cluster: str, home: Path | None = None) -> Path:
    return (home or state_dir()) / f"kubeconfig-{cluster}"


@dataclass
class RunRecord:
    dir: Path
    data: dict = field(default_factory=dict)
    holds_lock: bool = field(default=False, repr=False)  # new_run took the state lock for this record

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def runner_dir(self) -> Path:
        return self.dir / "runner"

    def save(self) -> None:
        atomic_write_text(self.dir / "run.json", json.dumps(self.data, indent=1, sort_keys=True) + "\n", mode=0o600)

    def reopen(self, **data) -> None:
        """Running again (an interrupted upgrade resumed, a reset going on after its platform step failed): the
        state lock taken again, ``data`` merged into the record."""
        if not self.holds_lock:
            statelock.hold(self.dir.parent.parent, self.data.get("command"))
            self.holds_lock = True
        self.data.update(data, result="running")
        self.data.pop("finished", None)
        self.save()

    def finish(self, result: str, summary: dict | None = None, error: str | None = None) -> None:
        self.data["finished"] = _now()
        self.data["result"] = result
        if summary is not None:
            self.data["summary"] = summary
        if error:
            self.data["error"] = error
        self.save()
        if self.holds_lock:  # the state lock new_run took, let go once
            self.holds_lock = False
            statelock.release(self.dir.parent.parent)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


SECRET_VARS = "secret-vars.json"


def sweep_interrupted(runs: Path) -> list[str]:
    """A killed run (SIGKILL, power loss) cannot delete its secret vars file or finish its record: do it now."""
    swept = []
    for run_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
        (run_dir / SECRET_VARS).unlink(missing_ok=True)
        rec = run_dir / "run.json"
        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue
        if data.get("result") == "running":
            data["result"] = "interrupted"
            RunRecord(run_dir, data).save()
            swept.append(run_dir.name)
    return swept


def new_run(command: str, inventory: Path, bundle_index: Path | None = None, home: Path | None = None) -> RunRecord:
    root = home or state_dir()
    statelock.hold(root, command)  # before the sweep: a record still "running" is then no live command's
    runs = _private_dir(root / "runs")
    sweep_interrupted(runs)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = runs / f"{stamp}-{command}-{secrets.token_hex(3)}"
    _private_dir(run_dir)
    rec = RunRecord(run_dir, {
        "id": run_dir.name,
        "command": command,
        "argv": sys.argv,
        "who": getpass.getuser(),
        "controlHost": socket.gethostname(),
        "started": _now(),
        "inventory": {"path": str(inventory.resolve()), "sha256": sha256_file(inventory)},
        "bundleIndexSha256": sha256_file(bundle_index) if bundle_index else None,
        "result": "running",
    }, holds_lock=True)
    rec.save()
    return rec


def error_line(e: BaseException) -> str:
    """What a run record keeps of the error that stopped it: its first line, else its type."""
    text = str(e)
    return text.splitlines()[0] if text else type(e).__name__


@contextmanager
def recorded(command: str, inventory: Path, bundle_index: Path | None = None, ok: str = "successful",
             home: Path | None = None) -> Iterator[RunRecord]:
    """The one skeleton of a recorded command: new_run (the state lock taken), the body, then the record finished
    once: ``failed`` with error_line when the body raises (an interrupt included), else ``ok`` with whatever
    ``record.data["summary"]`` the body left, unless the body finished it itself. The lock is let go either way."""
    record = new_run(command, inventory, bundle_index, home)
    try:
        yield record
    except BaseException as e:
        if record.data.get("result") == "running":
            record.finish("failed", error=error_line(e))
        raise
    if record.data.get("result") == "running":
        record.finish(ok)


INSTALLING_COMMANDS = ("install", "upgrade", "rollback")


def installed_index(inventory: Path, home: Path | None = None) -> tuple[str | None, str | None]:
    """(bundle index sha256, run id) of the newest successful install/upgrade/rollback of ``inventory``."""
    runs = (home or state_dir()) / "runs"
    if not runs.is_dir():
        return None, None
    want = str(Path(inventory).resolve())
    found = []
    for run in (p for p in runs.iterdir() if p.is_dir()):
        try:
            data = json.loads((run / "run.json").read_text())
            when = (run / "run.json").stat().st_mtime_ns  # ids share a one-second stamp; the record's write time orders
        except (OSError, ValueError):
            continue
        if (data.get("command") in INSTALLING_COMMANDS and data.get("result") == "successful"
                and (data.get("inventory") or {}).get("path") == want and data.get("bundleIndexSha256")):
            found.append((when, data["bundleIndexSha256"], data.get("id", run.name)))
    if not found:
        return None, None
    _, digest, run_id = max(found)
    return digest, run_id


def installed_copy(inventory: Path, home: Path | None = None) -> Path | None:
    """The verified private working copy of the bundle the cluster has installed (from the run records), if kept."""
    digest, _ = installed_index(inventory, home)
    if digest is None:
        return None
    root = (home or state_dir()) / "bundles" / digest[:32]
    return root if (root / "index.json").is_file() else None
