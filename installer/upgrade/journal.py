"""The upgrade's journal: the planned steps and which are done, in the run directory, written atomically after
every step, so `medai upgrade --resume` after SIGKILL or power loss continues with the first step not done."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from installer.core.atomic import atomic_write_text
from installer.core.resources import state_dir

JOURNAL = "upgrade.json"


@dataclass
class Journal:
    path: Path
    data: dict = field(default_factory=dict)

    @classmethod
    def create(cls, run_dir: Path, steps: list[str], facts: dict) -> Journal:
        j = cls(run_dir / JOURNAL, {"steps": steps, "done": {}, "facts": facts, "failed": None})
        j.save()
        return j

    @classmethod
    def load(cls, run_dir: Path) -> Journal:
        return cls(run_dir / JOURNAL, json.loads((run_dir / JOURNAL).read_text()))

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n", mode=0o600)

    @property
    def pending(self) -> list[str]:
        return [s for s in self.data["steps"] if s not in self.data["done"]]

    def done(self, step: str, detail: dict | None = None) -> None:
        self.data["done"][step] = detail or {}
        self.data["failed"] = None
        self.save()

    def fail(self, step: str, why: str) -> None:
        self.data["failed"] = {"step": step, "error": why}
        self.save()


def resumable_run(inventory: Path, home: Path | None = None) -> Path | None:
    """The newest upgrade run of ``inventory`` that did not finish successfully (interrupted or failed)."""
    runs = (home or state_dir()) / "runs"
    best = None
    want = str(Path(inventory).resolve())
    for d in runs.iterdir() if runs.is_dir() else []:
        try:
            rec = json.loads((d / "run.json").read_text())
            mtime = (d / "run.json").stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if (rec.get("command") == "upgrade" and (d / JOURNAL).is_file()
                and (rec.get("inventory") or {}).get("path") == want and rec.get("result") != "successful"):
            if best is None or mtime > best[0]:
                best = (mtime, d)
    return best[1] if best else None
