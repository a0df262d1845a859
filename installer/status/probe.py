"""A status line, and the probes run side by side under one deadline (installer.certs.deadline): a probe that has
not answered by then is a crit line naming it, one that raises is a crit line with the error's first line; never a
hang or a traceback."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from installer.certs.deadline import TIMEOUT, first_line, run_within
from installer.certs.model import CRIT, OK, RANK, WARN

__all__ = ["CRIT", "OK", "WARN", "Line", "run_probes", "exit_code"]


@dataclass
class Line:
    concern: str   # nodes, bundle, vault, certificates, releases, storage, backups, compliance, egress
    level: str     # ok | warn | crit
    fact: str

    def as_dict(self) -> dict:
        return asdict(self)


Probe = tuple[str, Callable[[], list[Line]]]


def run_probes(probes: list[Probe], timeout_s: float) -> list[Line]:
    """Every probe in its own daemon thread; the lines in the probes' order, each probe's as it returned them."""
    out: list[Line] = []
    for (name, _), res in zip(probes, run_within([fn for _, fn in probes], timeout_s)):
        if res is TIMEOUT:
            out.append(Line(name, CRIT, f"no answer within {timeout_s:g}s (unreachable or hung)"))
        elif isinstance(res, Exception):
            out.append(Line(name, CRIT, first_line(res)))
        else:
            out += res
    return out


def exit_code(lines: list[Line]) -> int:
    """0 all ok, 1 any warn, 2 any crit."""
    return max((RANK[ln.level] for ln in lines), default=0)
