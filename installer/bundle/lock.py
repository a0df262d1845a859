"""The lockfile: what every source resolved to when the bundle was built.

    apiVersion: medai/v1
    kind: Lock
    images:  {normalised image ref: manifest digest}
    charts:  {name@version: archive sha256}
    files:   {name: sha256}
    models:  {name: {source, revision, files: {path: sha256}}}
    wheels:  {wheel file name: sha256}     # the wheelhouse's dependency wheels (medai's own is rebuilt each time)

Written beside the manifest as <manifest stem>.lock.yaml (or --lock PATH) and copied into the bundle as
lock.yaml. `medai bundle build --locked` refuses any source that resolves differently (LockDriftError).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from installer.core.atomic import atomic_write_text
from installer.core.errors import LockDriftError, ManifestError


def default_lock_path(manifest: str | Path) -> Path:
    p = Path(manifest)
    stem = p.name
    for suffix in (".yaml", ".yml"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return p.with_name(f"{stem}.lock.yaml")


@dataclass
class Lock:
    images: dict[str, str] = field(default_factory=dict)
    charts: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)
    wheels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Lock:
        """The lock at path; an empty lock when there is none yet."""
        p = Path(path)
        if not p.exists():
            return cls()
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ManifestError(f"{p}: cannot read lock file: {e}") from None
        if not isinstance(data, dict) or data.get("apiVersion") != "medai/v1" or data.get("kind") != "Lock":
            raise ManifestError(f"{p}: not a medai lock file (apiVersion medai/v1, kind Lock)")
        lock = cls()
        for section in ("images", "charts", "files", "models", "wheels"):
            value = data.get(section) or {}
            if not isinstance(value, dict):
                raise ManifestError(f"{p}: {section}: must be a mapping")
            setattr(lock, section, dict(value))
        return lock

    def to_doc(self) -> dict:
        return {
            "apiVersion": "medai/v1",
            "kind": "Lock",
            "images": dict(sorted(self.images.items())),
            "charts": dict(sorted(self.charts.items())),
            "files": dict(sorted(self.files.items())),
            "models": {k: {"source": v["source"], "revision": v["revision"], "files": dict(sorted(v["files"].items()))}
                       for k, v in sorted(self.models.items())},
            **({"wheels": dict(sorted(self.wheels.items()))} if self.wheels else {}),
        }

    def dumps(self) -> str:
        return ("# Written by `medai bundle build`; `--locked` builds refuse any drift from it.\n"
                + yaml.safe_dump(self.to_doc(), sort_keys=False, default_flow_style=False))

    def write(self, path: str | Path) -> None:
        text = self.dumps()
        try:
            if Path(path).read_text() == text:
                return  # unchanged (a no-change rebuild): no rewrite, no fsync
        except (OSError, UnicodeDecodeError):
            pass
        atomic_write_text(path, text)


def chart_key(name: str, version: str) -> str:
    return f"{name}@{version}"


def check_file_pin(lock: Lock, name: str, sha256: str) -> None:
    """--locked: the manifest's pin must be the locked one (a re-pinned file is drift too)."""
    _check_locked(f"file {name}", lock.files.get(name), sha256, f"manifest pins sha256 {sha256}")


def _check_locked(what: str, locked: str | None, have: str, says: str) -> None:
    if locked is None:
        raise LockDriftError(f"{what}: not in the lock file (rebuild without --locked to add it)")
    if locked != have:
        raise LockDriftError(f"{what}: {says}, the lock has {locked}")


def lock_wheels(tool_files: dict[str, str]) -> dict[str, str]:
    """{wheel file name: sha256} of the dependency wheels stage_tools wrote (tools/wheelhouse/*.whl but medai's)."""
    prefix = "tools/wheelhouse/"
    return {p[len(prefix):]: sha for p, sha in tool_files.items()
            if p.startswith(prefix) and "/" not in p[len(prefix):] and not p[len(prefix):].startswith("medai-")}


def check_wheel_pins(lock: Lock, wheels: dict[str, str]) -> None:
    """--locked: the wheelhouse must hold exactly the locked wheels, byte for byte."""
    for name, sha in sorted(wheels.items()):
        if name not in lock.wheels:
            raise LockDriftError(f"wheel {name}: not in the lock file (a new or changed dependency; rebuild without --locked)")
        if lock.wheels[name] != sha:
            raise LockDriftError(
                f"wheel {name}: sha256 {sha}, the lock says {lock.wheels[name]} (the wheel changed upstream or in the cache)"
            )
    missing = sorted(set(lock.wheels) - set(wheels))
    if missing:
        raise LockDriftError(f"wheel {missing[0]}: in the lock file but no longer resolved (rebuild without --locked)")
