"""`medai install` and `medai reset`: the flow behind the commands.

install: the bundle verified into a private copy (the stick is not read again) -> a differential refused ->
the platform rendered, validated and image-gated -> the operator's yes -> playbooks/site.yml through
ansible-runner -> the kubeconfig -> the platform's Helm releases (Vault, Keycloak, Harbor steps) -> the
post-install check -> the egress ledger's report. Nothing before the yes contacts a host.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import load_manifest
from installer.core.errors import InstallError, MedaiError
from installer.core.resources import state_dir
from installer.core.textsafe import not_checked_banner, safe_text
from installer.deploy import platform_step
from installer.deploy.base_check import refuse_wrong_base
from installer.deploy.coherence_step import refuse_incoherent
from installer.deploy.egress import ledger_record, report_after_platform
from installer.deploy.idp_step import check_job_images
from installer.deploy.inventory import Inventory
from installer.deploy.plan import build_plan
from installer.deploy.preinstall import bundle_path
from installer.deploy.runner import Summary, run_playbook
from installer.deploy.state import RunRecord, cluster_token, installed_copy, kubeconfig_path, new_run, recorded, write_private
from installer.deploy.vault.install_step import vault_secret_vars
from installer.deploy.working_copy import NOT_CHECKED_BANNER, print_media_notes, verified_working_copy
from installer.inference.plan import install_extravars
from installer.platform.render import render_site
from installer.platform.values import role_vars


def install(inv: Inventory, bundle: Path | None, key: Path | None, *, console: Console, skip_signature: bool = False,
            check: bool = False, tags: str | None = None, limit: str | None = None,
            confirm: Callable[[str], None] | None = None) -> RunRecord:
    """Verify the bundle into a private copy, render and gate the platform, then run playbooks/site.yml and apply
    the platform's releases; returns the run record. ``confirm`` (the operator's yes) is asked before any host
    is contacted; it raises to stop."""
    console.print(f"[green]ok[/] inventory {inv.path}: {len(inv.servers)} server(s), {len(inv.agents)} agent(s)", highlight=False)
    root = bundle_path(inv, bundle)
    vb = verified_working_copy(root, key, skip_signature)
    print_media_notes(console, vb)
    if vb.signature == "verified":
        console.print(f"[green]ok[/] bundle {safe_text(root)}: signature ({vb.key_fingerprint}) and {len(vb.index['files'])} files "
                      f"verified into {vb.root}", highlight=False)
    else:
        not_checked_banner(console, f"bundle {safe_text(root)}: {NOT_CHECKED_BANNER}")
    # a differential bundle on the wrong base is refused naming both digests (read from the verified index)
    if refuse_wrong_base(vb.index, root, inv.path):
        raise InstallError(f"{safe_text(root)}: a differential bundle is applied with `medai upgrade` (it assembles it with its base)")
    site = render_platform(console, inv, vb.root)  # from the checked copy, before any host is contacted
    if site is not None:
        check_job_images(site, vb.index)  # images of the Jobs medai applies itself, refused before any host
    plan = build_plan(vb.index, vb.root, state_dir() / "cache", vb.index_sha256)
    if site is not None and site.releases and plan.k3s_present:  # the platform will be applied: it must come up

        refuse_incoherent(inv, site, vb.index)
    if not plan.k3s_present:
        console.print("[yellow]note[/] the bundle holds no K3s binary: K3s is configured but not started", highlight=False)
    if confirm is not None and not check:
        confirm(f"Install cluster {inv.cluster} on {len(inv.hosts)} host(s)?")
    token = cluster_token(inv.cluster)
    # Vault's first TLS certificate for roles/vault (secret vars, no_log), only when K3s will run
    secret_vars = {"medai_k3s_token": token, **vault_secret_vars(inv, site, plan.k3s_present and not check)}
    record = new_run("install" if not check else "install-check", inv.path, vb.root / "index.json")
    record.data["bundle"] = vb.record()
    record.save()
    fetch_dir = state_dir() / "secrets" / inv.cluster
    fetched = fetch_dir / f"kubeconfig.fetched-{record.id}"
    extravars = {
        **plan.extravars(),
        "medai_bundle_dir": str(vb.root),  # the checked private copy, never the stick
        "medai_kubeconfig_fetch_dest": str(fetched),
        # where roles/vault creates the first vault-tls Secret (installer/platform/components/vault.py)
        **{k: v for k, v in role_vars("vault", inv).items() if k in ("medai_vault_namespace", "medai_vault_tls_secret")},
    }
    # the egress ledger stays on through the platform's Helm releases; its report runs after them
    later = bool(site is not None and site.releases and platform_tagged(tags) and plan.k3s_present and not check)
    if later:
        extravars["medai_egress_report_later"] = True
    # the GPU tier: driver only when the bundle carries it; vLLM digest and weight lists from the verified index
    extravars.update(install_extravars(vb.index, inv))
    try:
        summary = run_playbook(
            record, "site.yml", inv.path, extravars, secret_vars,
            console=console, limit=limit, tags=tags, check=check,
            host_key_checking=inv.site.medai_ssh_host_key_checking, bundle_root=vb.root,
        )
    except MedaiError as e:
        record.finish("failed", error=str(e))
        raise
    finish_run(console, record, summary, "install --check" if check else "install")
    try:
        if fetched.is_file():
            dest = save_kubeconfig(inv, fetched)
            console.print(f"[green]ok[/] kubeconfig {dest} (server {inv.api_address})", highlight=False)
            if site is not None and site.releases and platform_tagged(tags):
                platform_step.apply(inv, site, record, vb.root, console)
        elif not check and plan.k3s_present:
            raise InstallError(f"K3s started but the kubeconfig was not fetched from {inv.servers[0]}; run record {record.dir}")
    except BaseException:
        if later:  # the platform's error stands; the ledger is still read into the record and removed

            try:
                report_after_platform(record, inv, console)
            except MedaiError:
                pass
        raise
    if later:
        report_after_platform(record, inv, console)
    return record


def reset(inv: Inventory, *, console: Console, limit: str | None = None,
          confirm: Callable[[str], None] | None = None) -> None:
    """Remove K3s and everything medai placed on the hosts (playbooks/reset.yml), and the kubeconfig."""
    if confirm is not None:
        confirm(f"Remove K3s, its data and all medai files from {len(inv.hosts)} host(s) of cluster {inv.cluster}?"
                " This destroys the cluster.")
    with recorded("reset", inv.path) as record:
        if not limit:
            uninstall_releases(inv, record, console)
        summary = run_playbook(record, "reset.yml", inv.path, {}, {}, console=console, limit=limit,
                               host_key_checking=inv.site.medai_ssh_host_key_checking)
        finish_run(console, record, summary, "reset")
    kc = kubeconfig_path(inv.cluster)
    if kc.exists() and not limit:
        kc.unlink()


def uninstall_releases(inv: Inventory, record: RunRecord, console: Console) -> None:
    """The installed bundle's releases uninstalled in reverse order while the API still answers. Skipped when no
    kubeconfig was fetched (K3s never ran) or the installed bundle's copy is gone; a failure is reported and the
    node reset goes on (it removes the cluster's data either way)."""

    root = installed_copy(inv.path)
    if root is None or not kubeconfig_path(inv.cluster).exists():
        return
    try:
        site = render_platform(console, inv, root, check_images=False)
        if site is not None and site.releases:
            platform_step.uninstall(inv, site, record, root, console)
    except MedaiError as e:
        console.print(f"[yellow]warning[/] platform releases not uninstalled: {safe_text(str(e))}; the node reset "
                      "removes the cluster and its data", highlight=False)
        record.reopen()


def print_summary(console: Console, title: str, s: Summary, record: RunRecord) -> None:
    """The per-host table and the totals line of a playbook run."""
    table = Table(title=title, show_edge=False)
    for col in ("host", "ok", "changed", "failed", "unreachable"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, c in sorted(s.per_host.items()):
        table.add_row(host, str(c.get("ok", 0)), str(c.get("changed", 0)), str(c.get("failed", 0)), str(c.get("unreachable", 0)))
    console.print(table)
    console.print(
        f"hosts={s.hosts} ok={s.ok} changed={s.changed} failed={s.failed} unreachable={s.unreachable} "
        f"time={s.seconds}s result={s.status} record={record.dir}",
        highlight=False,
    )


def finish_run(console: Console, record: RunRecord, s: Summary, what: str) -> None:
    """Close the run record with the playbook's outcome, print it, and raise one line when it failed."""
    good = s.succeeded
    if what.startswith("install"):
        record.data["egress"] = ledger_record(s.egress)
    record.finish("successful" if good else "failed", s.to_json())
    print_summary(console, f"medai {what}", s, record)
    if not good:
        raise InstallError(f"{what} failed ({s.counts}): {s.first_failure}; run record {record.dir}")


def save_kubeconfig(inv: Inventory, fetched: Path) -> Path:
    """Rewrite the fetched admin kubeconfig to point at the API VIP (or first server) and keep it 0600."""
    doc = yaml.safe_load(fetched.read_text())
    host = inv.api_address
    server = f"https://[{host}]:6443" if ":" in host else f"https://{host}:6443"
    for c in doc.get("clusters", []):
        c["cluster"]["server"] = server
        c["name"] = inv.cluster
    for ctx in doc.get("contexts", []):
        ctx["context"]["cluster"] = inv.cluster
    dest = kubeconfig_path(inv.cluster)
    write_private(dest, yaml.safe_dump(doc, sort_keys=False).encode())
    fetched.unlink()
    return dest


def render_platform(console: Console, inv: Inventory, root: Path, check_images: bool = True):
    """The bundle's releases for this site, rendered, validated and image-gated before any host is contacted
    (installer/render: the same function as `medai render`). None for a bundle without charts."""

    layout = BundleLayout.at(root)
    if not layout.manifest.is_file():
        return None

    if not load_manifest(layout.manifest).spec.charts:
        return None

    site = render_site(inv, root, check_images=check_images)
    console.print(f"[green]ok[/] render: {site.summary()}", highlight=False)
    return site


def platform_tagged(tags: str | None) -> bool:
    return tags is None or bool(
        {"platform", "cilium", "metallb", "longhorn", "vault", "postgres", "keycloak", "harbor", "inference"}
        & {t.strip() for t in tags.split(",")}
    )
