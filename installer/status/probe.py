"""A status line, and the probes run side by side under one deadline: a probe that has not answered by then is a
crit line naming it, one that raises is a crit line with the error's first line; never a hang or a traceback."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from installer.certs.model import CRIT, OK, RANK, WARN
from installer.core.errors import MedaiError

__all__ = ["CRIT", "OK", "WARN", "Line", "run_probes", "exit_code"]


@dataclass
class Line:
    concern: str   # nodes, bundle, vault, certificates, releases, storage, backups, compliance, egress
    level: str     # ok | warn | crit
    fact: str

    def as_dict(self) -> dict:
        return asdict(self)


Probe = tuple[str, Callable[[], list[Line]]]


def _first_line(e: BaseException) -> str:
    """medai's own errors are already one line for people; another exception is named by its type."""
    text = str(e).strip()
    first = text.splitlines()[0][:300] if text else ""
    if isinstance(e, MedaiError):
        return first or type(e).__name__
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def run_probes(probes: list[Probe], timeout_s: float) -> list[Line]:
    """Every probe in its own daemon thread; the lines in the probes' order, each probe's as it returned them."""
    results: dict[int, list[Line]] = {}

    def run(i: int, name: str, fn: Callable[[], list[Line]]) -> None:
        try:
            results[i] = fn()
        except Exception as e:  # noqa: BLE001 a probe's failure is its crit line, whatever the client raised
            results[i] = [Line(name, CRIT, _first_line(e))]

    threads = [threading.Thread(target=run, args=(i, name, fn), daemon=True, name=f"status-{name}")
               for i, (name, fn) in enumerate(probes)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out: list[Line] = []
    for i, (name, _) in enumerate(probes):
        out += results[i] if i in results else [Line(name, CRIT, f"no answer within {timeout_s:g}s (unreachable or hung)")]
    return out


def exit_code(lines: list[Line]) -> int:
    """0 all ok, 1 any warn, 2 any crit."""
    return max((RANK[ln.level] for ln in lines), default=0)
