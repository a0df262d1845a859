"""The concerns read from the control host's state directory (run records; docs/install.md): the installed
bundle, the last `medai certs` read of the nodes, backups, the last evidence report and its waivers, the last
install's egress ledger."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from installer.certs.collect import line as cert_line
from installer.certs.model import RANK, Thresholds, from_dict
from installer.status.probe import CRIT, OK, WARN, Line

BACKUP_WARN = dt.timedelta(days=2)
BACKUP_CRIT = dt.timedelta(days=7)
WAIVER_WARN_DAYS = 30


def records(home: Path, commands: tuple[str, ...], inventory: Path, results: tuple[str, ...] | None = None) -> list[dict]:
    """The run records of ``inventory`` whose command is one of ``commands`` (and result one of ``results``),
    oldest first (by the record's write time: ids share a one-second stamp)."""
    runs = home / "runs"
    want = str(Path(inventory).resolve())
    found = []
    for rec in runs.glob("*/run.json") if runs.is_dir() else []:
        try:
            data = json.loads(rec.read_text())
            when = rec.stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if data.get("command") in commands and (data.get("inventory") or {}).get("path") == want \
                and (results is None or data.get("result") in results):
            found.append((when, rec.parent.name, data))
    return [d for _, _, d in sorted(found, key=lambda f: (f[0], f[1]))]


def newest_record(home: Path, commands: tuple[str, ...], inventory: Path, results: tuple[str, ...] | None = None) -> dict | None:
    found = records(home, commands, inventory, results)
    return found[-1] if found else None


def _span(td: dt.timedelta) -> str:
    h = td.total_seconds() / 3600
    return f"{h / 24:.0f} days" if h >= 48 else f"{h:.0f} hours"


def bundle_lines(home: Path, inventory: Path, copy: Path | None) -> list[Line]:
    """The newest successful install/upgrade/rollback's index digest, and the bundle's name and version from its
    verified copy's index.json."""
    rec = newest_record(home, ("install", "upgrade", "rollback"), inventory, ("successful",))
    if rec is None:
        return [Line("bundle", CRIT, "no successful install of this inventory in the run records")]
    try:
        index = json.loads((copy / "index.json").read_text()) if copy else {}
    except (OSError, ValueError):
        index = {}
    what = f"{index.get('name')} {index.get('version')}, " if index.get("version") else ""
    return [Line("bundle", OK, f"{what}index sha256 {rec.get('bundleIndexSha256')}, installed by "
                               f"{rec.get('command')} {rec.get('id')} ({rec.get('finished')})")]


def k3s_cert_lines(home: Path, inventory: Path, now: dt.datetime, th: Thresholds) -> list[Line]:
    """The nearest K3s expiry from the last `medai certs` (status itself runs no playbook)."""
    rec = newest_record(home, ("certs",), inventory, ("ok",))
    if rec is None:
        return [Line("certificates", WARN, "k3s: never read on the nodes (run medai certs)")]
    certs = [from_dict(d) for d in (rec.get("summary") or {}).get("certificates", []) if d.get("group") == "k3s"]
    if not certs:
        return [Line("certificates", WARN, f"k3s: no certificate in the last medai certs ({rec.get('id')})")]
    ranked = sorted(certs, key=lambda c: (-RANK[c.classify(now, th)[0]], c.days_left(now) or 0))
    level, text = cert_line(ranked[0], now, th)
    return [Line("certificates", level, f"k3s: nearest {text.split(None, 1)[1]} (of {len(certs)} K3s certificates, "
                                        f"read {rec.get('finished')})")]


def backup_lines(home: Path, inventory: Path, now: dt.datetime) -> list[Line]:
    """Per component, the newest successful `medai backup create` run record (command backup-create, summary
    {"set": id, "components": [names]}) that holds it: its finished time is that component's backup age."""
    newest: dict[str, tuple[str, str]] = {}
    for rec in records(home, ("backup-create",), inventory, ("ok", "successful")):
        summary, stamp = rec.get("summary") or {}, rec.get("finished") or rec.get("started")
        for comp in summary.get("components") or ["(all)"]:
            if comp not in newest or stamp > newest[comp][0]:
                newest[comp] = (stamp, str(summary.get("set") or rec.get("id")))
    if not newest:
        return [Line("backups", WARN, "no medai backup create recorded for this site yet")]
    out = []
    for comp, (stamp, set_id) in sorted(newest.items()):
        age = now - dt.datetime.fromisoformat(stamp)
        level = CRIT if age > BACKUP_CRIT else WARN if age > BACKUP_WARN else OK
        out.append(Line("backups", level, f"{comp}: newest backup {_span(age)} old (set {set_id}, {stamp})"))
    return out


def compliance_lines(home: Path, inventory: Path, now: dt.datetime) -> list[Line]:
    rec = newest_record(home, ("verify",), inventory, ("successful", "gate-failed"))
    if rec is None:
        return [Line("compliance", WARN, "no evidence report yet (medai verify)")]
    ev = rec.get("evidence") or {}
    totals = ev.get("totals") or {}
    fact = (f"last evidence report {rec.get('finished')}: {totals.get('failNotWaived', '?')} unwaived failure(s), "
            f"gate {'passed' if ev.get('gatePassed') else 'FAILED'} (fail on {ev.get('failOn')}), {ev.get('dir')}")
    out = [Line("compliance", OK if ev.get("gatePassed") else CRIT, fact)]
    try:
        report = json.loads((Path(ev.get("dir", "")) / "evidence.json").read_text())
    except (OSError, ValueError):
        return out + [Line("compliance", WARN, f"{ev.get('dir')}/evidence.json: unreadable (waivers not checked)")]
    for w in report.get("waivers") or []:
        left = (dt.date.fromisoformat(w["expires"]) - now.date()).days
        if left < 0:
            out.append(Line("compliance", WARN, f"waiver {w['rule']} ({w['scope']}) expired {w['expires']}"))
        elif left <= WAIVER_WARN_DAYS:
            out.append(Line("compliance", WARN, f"waiver {w['rule']} ({w['scope']}) expires {w['expires']} ({left} days)"))
    return out


def egress_lines(home: Path, inventory: Path) -> list[Line]:
    rec = newest_record(home, ("install", "upgrade"), inventory)
    if rec is None:
        return [Line("egress", WARN, "no install recorded: no egress ledger")]
    eg = rec.get("egress") or {"result": "not run"}
    where = f"{rec.get('command')} {rec.get('id')}"
    if eg.get("result") == "clean":
        return [Line("egress", OK, f"{where}: 0 packets left the allowed networks")]
    if eg.get("result") == "failed":
        first = (eg.get("failures") or [{}])[0].get("line", "")
        return [Line("egress", CRIT, f"{where}: {eg.get('packets')} packet(s) left the allowed networks: {first}")]
    return [Line("egress", WARN, f"{where}: the egress ledger was not run")]
