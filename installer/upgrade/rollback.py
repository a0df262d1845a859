"""`medai rollback`: back to the previous bundle.

With a K3s snapshot (the default): every server stopped, the previous bundle's binary staged, the first server
reset from the pre-upgrade snapshot (`k3s server --cluster-reset --cluster-reset-restore-path`), the other
servers' databases cleared and rejoined (playbooks/rollback.yml). The snapshot also restores Helm's release
records, so releases come back with it. --releases-only rolls just the releases back, through the one applier
(installer/platform/apply.py: rollback_platform), to the revisions whose chart versions the previous bundle
carries, each in the namespace the previous bundle's render gives it, in reverse order. Needs a running cluster:
executed only in the K3s E2E test.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console

from installer.bundle.layout import BundleLayout
from installer.core.errors import InstallError
from installer.core.resources import state_dir
from installer.deploy import platform_step
from installer.deploy.install import render_platform
from installer.deploy.inventory import load_inventory
from installer.deploy.plan import build_plan
from installer.deploy.runner import run_playbook
from installer.deploy.state import cluster_token, recorded
from installer.deploy.working_copy import verified_working_copy


def newest_snapshot(cluster: str) -> Path:
    d = state_dir() / "snapshots" / cluster
    snaps = sorted((p for p in d.glob("medai-*") if p.is_file()), key=lambda p: p.stat().st_mtime_ns) if d.is_dir() else []
    if not snaps:
        raise InstallError(f"{d}: no pre-upgrade etcd snapshot: a K3s rollback is impossible without one "
                           "(use --releases-only to roll back only the platform releases)")
    return snaps[-1]


def run_rollback(inventory: Path, bundle: Path, key: Path, snapshot: Path | None, releases_only: bool,
                 console: Console) -> Path:
    inv = load_inventory(inventory)
    vb = verified_working_copy(BundleLayout.at(bundle).root, key)  # checked into a private copy; the stick is not read again
    root = vb.root
    console.print(f"[green]ok[/] previous bundle {bundle}: signature ({vb.key_fingerprint}) and files verified into {root}",
                  highlight=False)
    snap = None if releases_only else (snapshot or newest_snapshot(inv.cluster))
    with recorded("rollback", inv.path, root / "index.json") as record:
        if snap is not None:
            stage = build_plan(vb.index, root, state_dir() / "cache", vb.index_sha256)
            s = run_playbook(record, "rollback.yml", inv.path,
                             {**stage.extravars(), "medai_bundle_dir": str(root), "medai_rollback_snapshot": str(snap)},
                             {"medai_k3s_token": cluster_token(inv.cluster)}, console=console,
                             host_key_checking=inv.site.medai_ssh_host_key_checking)
            if not s.succeeded:
                raise InstallError(f"K3s restore failed: {s.first_failure}; record {record.dir}")
        else:
            site = render_platform(console, inv, root, check_images=False)
            if site is None or not site.releases:
                raise InstallError(f"{root}: the previous bundle carries no charts: no release to roll back")
            platform_step.roll_back(inv, site, record, root, console)
    return record.dir
