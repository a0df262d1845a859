"""Platform releases upgraded in dependency order with `helm upgrade --install --atomic`, each checked after
with its history (installer.upgrade.helm_decision) and rolled back when Helm could not. Needs a running
cluster: executed only in the K3s E2E test."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import yaml
from rich.console import Console

from installer.core.errors import InstallError
from installer.upgrade.helm_decision import after_upgrade, release_order


def _helm(args: list[str], kubeconfig: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["helm", *args, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise InstallError(f"helm {' '.join(args[:2])}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return r


def history(name: str, ns: str, kubeconfig: Path) -> list[dict]:
    r = _helm(["history", name, "-n", ns, "-o", "json", "--max", "50"], kubeconfig, check=False)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []


def upgrade_releases(plan, inv, console: Console, timeout: str = "10m") -> dict:
    from installer.deploy.state import kubeconfig_path

    kc = kubeconfig_path(inv.cluster)
    spec = (yaml.safe_load(plan.bundle.joinpath("manifest.yaml").read_text()) or {}).get("spec") or {}
    charts = {c["name"]: c for c in spec.get("charts") or []}
    paths = {a["name"]: a["path"] for a in plan.index.get("artifacts", []) if a.get("kind") == "chart"}
    changed = [c["name"] for c in plan.changes.charts if c["to"] is not None]
    done = {}
    for name in release_order(changed):
        ns = charts.get(name, {}).get("namespace") or name
        before = history(name, ns, kc)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
            yaml.safe_dump(charts.get(name, {}).get("values") or {}, values)
            values.flush()
            r = _helm(["upgrade", name, str(plan.bundle / paths[name]), "--install", "-n", ns, "--create-namespace",
                       "--atomic", "--wait", "--timeout", timeout, "-f", values.name], kc, check=False)
        d = after_upgrade(name, before, history(name, ns, kc), r.returncode)
        if d.action == "rollback":
            _helm(["rollback", name, str(d.revision), "-n", ns, "--wait", "--timeout", timeout], kc)
        if d.action != "ok":
            raise InstallError(f"release {name} ({ns}): {d.reason}; releases done: {', '.join(done) or 'none'}")
        console.print(f"[green]ok[/] release {name}: {d.reason}", highlight=False)
        done[name] = d.revision
    return {"releases": done}
