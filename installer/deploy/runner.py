"""Run a playbook through ansible-runner in-process: live progress per host and task, a summary, and a
secret scan of everything the run left on disk.

Secrets reach Ansible only through a 0600 vars file passed as ``-e @file`` (a path on the command line,
never a value) that is deleted when the run ends, and every task that touches them has ``no_log: true``.
After the run the artifacts are scanned for each secret; a hit fails the command loudly.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from installer.core.childenv import ANSIBLE, child_env, only_environ
from installer.core.errors import InstallError
from installer.core.resources import ANSIBLE_DIR, state_dir
from installer.deploy.state import SECRET_VARS, RunRecord, installed_copy, write_private
from installer.trust.keys import PASSWORD_ENV

REPO = ANSIBLE_DIR
PLAYBOOKS = REPO / "playbooks"
ROLES = REPO / "roles"
GUARD = Path(__file__).resolve().parent / "playbook_guard.py"


@dataclass
class Summary:
    hosts: int = 0
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    seconds: float = 0.0
    status: str = ""
    rc: int | None = None
    per_host: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    egress: dict[str, list[dict]] | None = None  # host -> the egress ledger's entries (roles/egress, state report)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def succeeded(self) -> bool:
        """The playbook ran to the end with no failed task and no unreachable host: the one success test."""
        return self.status == "successful" and self.failed == 0 and self.unreachable == 0

    @property
    def first_failure(self) -> str:
        return self.failures[0] if self.failures else f"ansible-runner status {self.status}, rc {self.rc}"

    @property
    def counts(self) -> str:
        return f"{self.failed} failed, {self.unreachable} unreachable"


class Progress:
    """Turns ansible-runner events into one line per task and per host result."""

    STYLES = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold red", "skipped": "dim"}

    def __init__(self, console: Console, summary: Summary):
        self.console = console
        self.summary = summary
        self.task = ""

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.console.print(f"[bold]PLAY[/] {data.get('play', '')}", highlight=False)
        elif kind == "playbook_on_task_start":
            self.task = data.get("task", "")
        elif kind.startswith("runner_on_") and kind != "runner_on_start":
            self._result(kind, data)
        elif kind == "playbook_on_stats":
            self._stats(data)
        return True  # keep the event in the artifacts (they are scanned for secrets afterwards)

    def _result(self, kind: str, data: dict) -> None:
        host = data.get("host", "?")
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            state = "changed" if res.get("changed") else "ok"
            entries = (res.get("ansible_facts") or {}).get("medai_egress_entries")
            if isinstance(entries, list):
                self.summary.egress = {**(self.summary.egress or {}), host: entries}
        elif kind == "runner_on_failed":
            if data.get("ignore_errors"):
                return
            state = "failed"
        elif kind == "runner_on_unreachable":
            state = "unreachable"
        elif kind == "runner_on_skipped":
            state = "skipped"
        else:
            return
        if state == "skipped":
            return
        line = f"  [{self.STYLES[state]}]{state:<11}[/] {host:<16} {data.get('task') or self.task}"
        if state in ("failed", "unreachable"):
            msg = str(res.get("msg") or res.get("stderr") or "").strip().replace("\n", " | ")
            if msg:
                line += f": {msg[:600]}"
                self.summary.failures.append(f"{host}: {data.get('task') or self.task}: {msg[:600]}")
        self.console.print(line, highlight=False, markup=True, soft_wrap=True)

    def _stats(self, data: dict) -> None:
        s = self.summary
        hosts = set()
        for key, attr in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"), ("dark", "unreachable"), ("skipped", "skipped")):
            for host, n in (data.get(key) or {}).items():
                hosts.add(host)
                setattr(s, attr, getattr(s, attr) + n)
                s.per_host.setdefault(host, {})[attr] = n
        s.hosts = len(hosts | set((data.get("processed") or {}).keys()))


def secret_forms(secret: str) -> set[bytes]:
    """What a secret looks like in a file: its raw bytes, JSON-escaped (ansible-runner's event files), URL-encoded,
    base64 at each of the three alignments it can start at inside a longer encoded blob, and, for a multi-line
    secret (a PEM key), each of its lines alone (PEM armour lines are public and left out)."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    raw = secret.encode()
    forms = {raw, json.dumps(secret)[1:-1].encode(), json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
             quote(secret, safe="").encode(), quote_plus(secret, safe="").encode()}
    for k in range(3):  # base64 of (k unknown bytes + secret + ...): keep only the characters the secret decides
        enc = base64.b64encode(b"\0" * k + raw)
        whole = 4 * ((k + len(raw)) // 3)
        part = enc[(4 * k + 2) // 3:whole]
        if len(part) >= 8:
            forms.add(part)
    if "\n" in secret.strip():
        forms |= {ln.strip().encode() for ln in secret.splitlines()
                  if len(ln.strip()) >= 16 and not ln.strip().startswith("-----")}
    return {f for f in forms if len(f) >= 8}


def find_secrets(root: Path, secrets: Iterable[str]) -> list[str]:
    """Files under ``root`` that contain any of ``secrets`` in any of its forms (secret_forms), streamed, with
    overlap across chunk borders."""
    needles = sorted({f for s in secrets if s and len(s) >= 8 for f in secret_forms(s)})
    if not needles:
        return []
    keep = max(len(n) for n in needles) - 1
    hits: list[str] = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            tail = b""
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    buf = tail + chunk
                    if any(n in buf for n in needles):
                        hits.append(str(p))
                        break
                    tail = buf[-keep:] if keep else b""
    return sorted(hits)


def run_secrets(secret_vars: dict, known: Iterable[str] = ()) -> list[str]:
    """Every secret a run knows: its secret vars (nested values too), what the caller names, and the signing-key
    password if the operator's environment holds it (it must never reach a run record)."""
    out: list[str] = []

    def walk(v) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v:
            out.append(v)

    walk(secret_vars)
    out += [s for s in known if s]

    if os.environ.get(PASSWORD_ENV):
        out.append(os.environ[PASSWORD_ENV])
    out += stored_secrets()
    return out


def stored_secrets(max_file: int = 1 << 16) -> list[str]:
    """Every secret generated into the state directory's secrets/ (cluster token, generated passwords, unseal
    keys): one-line files whole, JSON documents by their string values. Fetched kubeconfigs are left out."""
    root = state_dir() / "secrets"
    found: list[str] = []
    if not root.is_dir():
        return found
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.is_symlink() or p.name.startswith("kubeconfig") or p.stat().st_size > max_file:
            continue
        text = p.read_text(errors="replace").strip()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, (dict, list)):
            stack = [doc]
            while stack:
                v = stack.pop()
                if isinstance(v, dict):
                    stack += list(v.values())
                elif isinstance(v, list):
                    stack += v
                elif isinstance(v, str) and len(v) >= 16:
                    found.append(v)
        elif text and "\n" not in text:
            found.append(text)
    return found


def _guard_launcher(record: RunRecord) -> Path:
    """ansible-runner takes one executable path: a launcher that runs the guard with this very interpreter."""
    launcher = record.dir / "ansible-playbook"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(GUARD))} \"$@\"\n")
    launcher.chmod(0o700)
    return launcher


def _ansible_error(stdout: Path) -> str:
    """Ansible's own error (bad playbook, missing role) when the run failed before any task result."""
    try:
        lines = stdout.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "ansible-playbook produced no output"
    for line in lines:
        if line.startswith("ERROR!"):
            return line
    return (lines[-1] if lines else "ansible-playbook produced no output")[:600]


def ansible_env(host_key_checking: bool, roles: Path = ROLES) -> dict[str, str]:
    return {
        "ANSIBLE_ROLES_PATH": str(roles),
        "ANSIBLE_HOST_KEY_CHECKING": "True" if host_key_checking else "False",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "False",
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_SSH_RETRIES": "2",
        "ANSIBLE_TIMEOUT": "20",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml",
    }


def run_playbook(
    record: RunRecord,
    playbook: str,
    inventory: Path,
    extravars: dict,
    secret_vars: dict[str, str],
    *,
    console: Console,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    host_key_checking: bool = True,
    bundle_root: Path | None = None,
    known_secrets: Iterable[str] = (),
) -> Summary:
    """``bundle_root``: the verified working copy; when it carries tools/ansible and tools/collections (a bundle
    run through bootstrap.py) those are used, never the stick's. ``known_secrets``: every other secret the run
    knows (key password, generated passwords, unseal keys); the leak scan looks for them all."""
    import ansible_runner  # heavy import, only when a playbook really runs

    repo, collections = REPO, None
    if bundle_root is None and os.environ.get("MEDAI_ANSIBLE_DIR"):
        # Run from a bundle (bootstrap.py) with no bundle verified in this command (reset, verify without --key):
        # the playbooks come from the installed bundle's verified copy, never from the stick.
        bundle_root = installed_copy(Path(inventory))
        if bundle_root is None:
            raise InstallError(f"{inventory}: no verified copy of an installed bundle under {state_dir() / 'bundles'}: "
                               "the stick's playbooks are not run unchecked (pass --bundle and --key, or install first)")
    if bundle_root is not None and (Path(bundle_root) / "tools" / "ansible" / "playbooks").is_dir() \
            and os.environ.get("MEDAI_ANSIBLE_DIR"):
        repo = Path(bundle_root) / "tools" / "ansible"
    if bundle_root is not None and (Path(bundle_root) / "tools" / "collections").is_dir():
        collections = str(Path(bundle_root) / "tools" / "collections")

    pdd = record.runner_dir
    pdd.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret_file = record.dir / SECRET_VARS
    write_private(secret_file, json.dumps(secret_vars).encode())
    cmdline = f"-e {shlex.quote('@' + str(secret_file))}"
    if check:
        cmdline += " --check --diff"
    # ansible-playbook through playbook_guard.py, so it dies with this process (see there); with a `binary`,
    # ansible-runner leaves the playbook path to the command line.
    cmdline += f" {shlex.quote(str(repo / 'playbooks' / playbook))}"
    summary = Summary()
    progress = Progress(console, summary)
    started = time.monotonic()
    env = child_env(allow=ANSIBLE, extra={**ansible_env(host_key_checking, repo / "roles"),
                                          "MEDAI_PARENT_PID": str(os.getpid()),
                                          **({"ANSIBLE_COLLECTIONS_PATH": collections} if collections else {})})
    try:
        with only_environ(env):  # ansible-runner copies os.environ into the child and into artifacts/run/command
            r = ansible_runner.run(
                private_data_dir=str(pdd),
                project_dir=str(repo),
                binary=str(_guard_launcher(record)),
                inventory=str(inventory),
                extravars=extravars,
                cmdline=cmdline,
                limit=limit,
                tags=tags,
                event_handler=progress,
                quiet=True,
                ident="run",
            )
        summary.status, summary.rc = r.status, r.rc
        if r.status != "successful" and not summary.failures:
            summary.failures.append(_ansible_error(pdd / "artifacts" / "run" / "stdout"))
    finally:
        secret_file.unlink(missing_ok=True)
        summary.seconds = round(time.monotonic() - started, 1)
    leaks = find_secrets(record.dir, run_secrets(secret_vars, known_secrets))
    if leaks:
        raise InstallError(f"SECRET LEAK: a secret of this run was found in {', '.join(leaks)}; treat it as exposed and rotate it")
    return summary
