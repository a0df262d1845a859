"""`medai upgrade`: bundle in (directory or media), plan out, then the steps one by one with a journal.

Order: verify the new bundle (or import it off the media into a private copy) -> refuse a differential on the
wrong base -> render + completeness gate (installer/render, as install) -> change list against the installed
bundle -> read the cluster -> skew plan -> preflight (every blocker listed) -> [--plan stops here] -> snapshot ->
servers one at a time -> agents in batches -> releases.
Each step is one ansible-runner run of playbooks/upgrade.yml (tags + limit) recorded in the journal;
--resume continues the newest unfinished upgrade run at its first step not done.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import load_manifest
from installer.core.errors import BundleError, InstallError, MedaiError
from installer.core.resources import state_dir
from installer.deploy import platform_step
from installer.deploy.base_check import installed_index, refuse_wrong_base
from installer.deploy.coherence_step import refuse_incoherent
from installer.deploy.inventory import load_inventory
from installer.deploy.plan import build_plan
from installer.deploy.runner import run_playbook
from installer.deploy.state import RunRecord, cluster_token, installed_copy, new_run
from installer.deploy.working_copy import print_media_notes, verified_working_copy
from installer.platform.apply import refuse_moved
from installer.platform.render import render_site
from installer.trust.differential import assemble_union, verify_union
from installer.trust.downgrade import refuse_downgrade, signed_installed_index
from installer.upgrade.changes import ChangeList, change_list, k3s_version
from installer.upgrade.cluster_checks import Preflight, drain_decision, preflight
from installer.upgrade.cluster_state import cluster_state as read_cluster
from installer.upgrade.journal import Journal, resumable_run
from installer.upgrade.skew import RolloutPlan, plan_rollout


@dataclass
class UpgradeOptions:
    inventory: Path
    bundle: Path
    key: Path
    current: Path | None = None  # the installed bundle (default: the run record's private copy, else medai_bundle_dir)
    plan_only: bool = False
    resume: bool = False
    batch: int = 1
    disable_eviction: bool = False
    drain_timeout: int = 600
    volumes: list[Path] = field(default_factory=list)
    allow_downgrade: bool = False  # an older or equal signed bundle (installer.trust.downgrade)


@dataclass
class UpgradePlan:
    bundle: Path
    index: dict
    index_sha256: str
    base: str | None
    changes: ChangeList
    rollout: RolloutPlan | None
    preflight: Preflight | None
    cluster_note: str = ""
    drains: dict[str, list[str]] = field(default_factory=dict)
    signed_index: Path | None = None  # the bundle's own signed index (a differential's, not the union's)
    site: object | None = None  # the new bundle's SiteRender (installer.platform.render), what the releases step applies
    installed_site: object | None = None  # the installed bundle's, for the moved-release check

    def steps(self) -> list[str]:
        out = []
        if self.rollout and self.rollout.steps:
            out += ["snapshot", *self.rollout.steps]
        elif self.changes.os_packages or self.changes.files:
            out.append("hosts")  # OS packages and staged files, host by host, without a K3s restart
        if self.changes.charts:
            out.append("releases")
        return out

    def lines(self) -> list[str]:
        out = [f"bundle {self.index.get('name')} {self.index.get('version')} (index sha256 {self.index_sha256})"]
        if self.base:
            out.append(f"differential on base index sha256 {self.base} (matches what is installed)")
        out += [f"change: {line}" for line in self.changes.lines()]
        if self.rollout is None:
            out.append(f"nodes: not planned: {self.cluster_note}")
        else:
            out += [f"already at {self.rollout.target}: {n}" for n in self.rollout.done]
        out += [f"step: {s}" for s in self.steps()] or ["step: none (nothing to do)"]
        if self.preflight is not None:
            out += [f"preflight: {p}" for p in self.preflight.problems]
            out += [f"blocking PDB: {b}" for b in self.preflight.blockers]
        return out


def gate_bundle(inv, root: Path, check_images: bool = True):
    """installer/render's render_site on the bundle the upgrade will apply (the verified copy, or a differential
    assembled with its base), as `medai install` runs it: every release rendered from the bundle's archives with
    the site's values, validated, and every image it can start found in the bundle. None without charts."""

    layout = BundleLayout.at(root)
    if not layout.manifest.is_file() or not load_manifest(layout.manifest).spec.charts:
        return None
    return render_site(inv, root, check_images=check_images)


def make_plan(opts: UpgradeOptions, console: Console) -> UpgradePlan:
    inv = load_inventory(opts.inventory)
    # The index signature first, then every listed file hashed into the private copy (from a directory, or from
    # media part by part, a damaged part rebuilt from the recovery data); nothing after reads the stick, and nothing
    # unsigned is parsed (a differential's files list holds what it carries, so it copies too).
    vb = verified_working_copy(opts.bundle, opts.key, volumes=opts.volumes)
    source, root, index = vb.source, vb.root, vb.index
    print_media_notes(console, vb)
    layout = BundleLayout.at(root)
    base = refuse_wrong_base(index, source, inv.path)  # before any host is touched
    console.print(
        f"[green]ok[/] bundle {source}: signature ({vb.key_fingerprint}) and {len(index['files'])} files verified into {root}",
        highlight=False,
    )

    cur, cur_index, cur_sha = _installed_bundle(opts, inv)
    if banner := refuse_downgrade(index, cur_index, source, opts.allow_downgrade):  # an older bundle is no upgrade
        console.print(f"[bold red]{banner}[/]", highlight=False)
    if base is not None:
        if base != cur_sha:
            raise InstallError(f"{root}: differential on {base}, --current is {cur_sha}")

        problems, _ = verify_union(root, cur.root, opts.key)
        if problems:
            raise BundleError(f"{root}: differential bundle refused: {'; '.join(problems[:5])}")

        signed_index = layout.index
        root = assemble_union(root, cur.root, state_dir() / "bundles" / f"{hashlib.sha256(signed_index.read_bytes()).hexdigest()}-union")
        layout = BundleLayout.at(root)
        console.print(f"[green]ok[/] differential + base assembled in {root}", highlight=False)
    else:
        signed_index = layout.index
    site = gate_bundle(inv, root)  # the same render, validation and completeness gate as install, before any host
    installed_site = None
    if site is not None:
        console.print(f"[green]ok[/] render: {site.summary()}", highlight=False)
        if k3s_version(index) is not None:  # the platform will be applied: it must come up as rendered

            refuse_incoherent(inv, site, index)

        installed_site = gate_bundle(inv, cur.root, check_images=False)
        if installed_site is not None:
            refuse_moved(installed_site, site)  # Helm cannot move or rename a release: refused before any host
    manifest_text = lambda lay: lay.manifest.read_text() if lay.manifest.is_file() else None  # noqa: E731
    changes = change_list(cur_index, index, manifest_text(cur), manifest_text(layout))
    plan = UpgradePlan(root, index, vb.index_sha256, base, changes, None, None, signed_index=signed_index,
                       site=site, installed_site=installed_site)
    target = k3s_version(index)
    if target is None:
        plan.cluster_note = "the bundle carries no k3s binary: K3s stays as it is"
        return plan
    return _plan_rollout(plan, opts, inv, target)


def _installed_bundle(opts: UpgradeOptions, inv) -> tuple[BundleLayout, dict, str]:
    """The installed bundle: --current, else the verified private copy the install's run record names, else the
    inventory's medai_bundle_dir; its index must be the one the run record names (or, with no record, signed by
    the site key). Returns its layout, index and index sha256."""
    current_dir = opts.current or installed_copy(inv.path) or (
        Path(inv.site.medai_bundle_dir) if inv.site.medai_bundle_dir else None)
    if current_dir is None:
        raise InstallError(f"{inv.path}: the installed bundle is needed to know what changes: pass --current DIR")
    cur = BundleLayout.at(current_dir)
    cur_index = cur.read_index()
    have, _run = installed_index(inv.path)
    cur_sha = hashlib.sha256(cur.index.read_bytes()).hexdigest()
    if have is not None and have != cur_sha:
        raise InstallError(
            f"{cur.root}: index sha256 {cur_sha} is not the installed bundle ({have}): pass --current with the bundle the cluster runs"
        )
    if have is None:
        signed_installed_index(cur.index.read_bytes(), cur.index_sig.read_bytes() if cur.index_sig.is_file() else None,
                               opts.key, cur.root)
    return cur, cur_index, cur_sha


def _plan_rollout(plan: UpgradePlan, opts: UpgradeOptions, inv, target: str) -> UpgradePlan:
    """The K3s rollout, preflight and drains from the cluster's state, read now through the platform's adapter."""
    try:
        cluster_state = read_cluster(inv.cluster)
    except InstallError as e:
        if not opts.plan_only:
            raise
        plan.cluster_note = str(e)
        return plan
    plan.rollout = plan_rollout(cluster_state["nodes"], target, opts.batch)
    drain = [s.node for s in plan.rollout.servers] + [s.node for b in plan.rollout.agents for s in b]
    plan.preflight = preflight(
        cluster_state["nodes"],
        cluster_state["pods"],
        cluster_state["pdbs"],
        cluster_state["readyzEtcd"],
        cluster_state["longhorn"],
        drain,
        opts.disable_eviction,
    )
    plan.drains = {
        n: drain_decision(n, cluster_state["pdbs"], cluster_state["pods"], opts.drain_timeout, opts.disable_eviction).argv for n in drain
    }
    return plan


def _open_run(opts: UpgradeOptions, plan: UpgradePlan, inv, console: Console) -> tuple[RunRecord, Journal]:
    """The interrupted run's record and journal (--resume, same bundle only), else a new run."""
    run_dir = resumable_run(inv.path) if opts.resume else None
    if run_dir is not None:
        data = json.loads((run_dir / "run.json").read_text())
        record = RunRecord(run_dir, data)
        record.reopen(resumed=data.get("resumed", 0) + 1)
        journal = Journal.load(run_dir)
        if journal.data["facts"].get("indexSha256") != plan.index_sha256:
            raise InstallError(
                f"{run_dir}: the interrupted upgrade was to index {journal.data['facts'].get('indexSha256')}, "
                f"this bundle is {plan.index_sha256}: resume with the same bundle"
            )
        return record, journal
    if opts.resume:
        console.print("[yellow]note[/] no interrupted upgrade to resume: starting a new one", highlight=False)
    record = new_run("upgrade", inv.path, plan.signed_index or plan.bundle / "index.json")
    journal = Journal.create(
        record.dir,
        plan.steps(),
        {
            "indexSha256": plan.index_sha256,
            "base": plan.base,
            "target": plan.rollout.target if plan.rollout else None,
            "disableEviction": opts.disable_eviction,
            "drainTimeout": opts.drain_timeout,
            "batch": opts.batch,
            "drains": plan.drains,
            "changes": plan.changes.to_json(),
        },
    )
    return record, journal


def _extravars(opts: UpgradeOptions, plan: UpgradePlan, inv, record: RunRecord) -> dict:
    # The private copy's index: the verified one, or for a differential the union derived after both were verified
    stage = build_plan(BundleLayout.at(plan.bundle).read_index(), plan.bundle, state_dir() / "cache", plan.index_sha256)
    fetch = state_dir() / "snapshots" / inv.cluster
    fetch.mkdir(parents=True, exist_ok=True, mode=0o700)
    return {
        **stage.extravars(),
        "medai_bundle_dir": str(plan.bundle),
        "medai_upgrade_run_id": record.id,
        "medai_upgrade_fetch_dir": str(fetch),
        "medai_upgrade_target": plan.rollout.target if plan.rollout else "",
        "medai_upgrade_batch": opts.batch,
        "medai_upgrade_disable_eviction": opts.disable_eviction,
        "medai_upgrade_drain_timeout": opts.drain_timeout,
        "medai_upgrade_ready_retries": 60,
        "medai_upgrade_os": bool(plan.changes.os_packages),
    }


def execute(opts: UpgradeOptions, plan: UpgradePlan, console: Console) -> Path:
    """Run the plan's steps (or the rest of an interrupted run's); returns the run directory."""

    if plan.preflight is not None and not plan.preflight.ok:
        raise InstallError(
            "preflight failed, nothing was touched: " + "; ".join(plan.preflight.problems + [str(b) for b in plan.preflight.blockers])
        )
    inv = load_inventory(opts.inventory)
    record, journal = _open_run(opts, plan, inv, console)
    token = cluster_token(inv.cluster)
    extravars = _extravars(opts, plan, inv, record)
    for step in journal.pending:
        kind, _, nodes = step.partition(":")
        console.print(f"[bold]step[/] {step}", highlight=False)
        if kind == "releases":
            if plan.site is None:
                journal.done(step, {"skipped": "the bundle carries no charts"})
                continue
            try:  # the install's apply, with the new bundle's render and the installed one's for the moved check
                platform_step.apply(inv, plan.site, record, plan.bundle, console, plan.installed_site, flow="upgrade")
            except MedaiError as e:
                journal.fail(step, str(e))
                record.finish("failed", error=f"step {step}: {e}")
                raise
            journal.done(step, record.data.get("platform") or {})
            continue
        tags = {"snapshot": "snapshot", "server": "servers", "agents": "agents", "hosts": "hosts"}[kind]
        # ansible-runner prefers env/envvars and env/extravars left in the private data dir by an earlier call
        # (a killed run's parent PID among them) over the ones passed now: start each step without them
        shutil.rmtree(record.runner_dir / "env", ignore_errors=True)
        summary = run_playbook(
            record,
            "upgrade.yml",
            inv.path,
            extravars,
            {"medai_k3s_token": token},
            console=console,
            tags=tags,
            limit=nodes or None,
            host_key_checking=inv.site.medai_ssh_host_key_checking,
        )
        if not summary.succeeded:
            first = summary.first_failure
            journal.fail(step, first)
            record.finish("failed", summary.to_json(), error=f"stopped at step {step}: {first}")
            raise InstallError(
                f"upgrade stopped at step {step} ({first}); steps done: {', '.join(journal.data['done']) or 'none'}; "
                f"the cluster is as those steps left it; fix and run medai upgrade --resume (record {record.dir})"
            )
        journal.done(step, {"summary": summary.to_json()})
    record.finish("successful")
    return record.dir
