"""The platform step of every control-host flow: one place that opens the API adapters, wires the after-release
hooks (Vault, Keycloak, Harbor: installer/deploy/idp_step.py) and calls the one applier (installer/platform/apply.py).

  install   apply(site)                      then the post-install check
  upgrade   apply(site, installed=render)    the same apply with the new bundle; moved releases refused first
  rollback  roll_back(previous render)       `helm rollback` to the previous bundle's chart versions
  reset     uninstall(installed render)      reverse order, before the nodes are wiped

``adapters`` is the API seam: the production HelmCli and KubeApi on the fetched kubeconfig. The flow test
(tests/platform/test_flows.py) puts a recording adapter there; a live K3s is reached only by the
MEDAI_E2E_K3S tests.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console

from installer.core.errors import MedaiError
from installer.deploy.state import RunRecord, kubeconfig_path
from installer.platform.apply import ApplyOptions, HelmCli, KubeApi, apply_platform, rollback_platform, uninstall_platform, upgrade_platform
from installer.platform.values import release_timeouts


def adapters(kubeconfig: Path, bundle: Path | None):
    """(helm, kube) for the cluster behind ``kubeconfig``; helm is the verified bundle's when it carries one."""
    return HelmCli(kubeconfig, bundle), KubeApi(kubeconfig)


def _options(inv, console: Console) -> ApplyOptions:
    return ApplyOptions(timeouts=release_timeouts(inv),
                        log=lambda line: console.print(f"[cyan]platform[/] {line}", highlight=False))


def _recorded(record: RunRecord, key: str, run):
    try:
        outcomes = run()
    except MedaiError as e:
        record.data[key] = {"error": str(e)}
        record.finish("failed", error=str(e))
        raise
    record.data[key] = {"releases": [o.__dict__ for o in outcomes]}
    record.save()
    return outcomes


def apply(inv, site, record: RunRecord, bundle: Path, console: Console, installed=None, flow: str = "install") -> None:
    """Install or upgrade every release of ``site`` (a SiteRender of the verified copy at ``bundle``), with the
    install's hooks; ``installed``: the render of the bundle the cluster runs (upgrade), checked for moved releases."""
    from installer.deploy.idp_step import wire
    from installer.deploy.postcheck import post_install_check

    helm, kube = adapters(kubeconfig_path(inv.cluster), bundle)
    opts = _options(inv, console)

    def run():
        wire(opts, inv, site, kube, helm, record, bundle,
             lambda line: console.print(f"[cyan]platform[/] {line}", highlight=False))
        if flow == "upgrade":
            return upgrade_platform(site, installed, helm, kube, opts)
        return apply_platform(site, helm, kube, opts)

    _recorded(record, "platform", run)
    by_ns: dict[str, list[str]] = {}
    for r in site.releases:
        by_ns.setdefault(r.namespace, []).append(r.name)
    try:
        post_install_check(kube, by_ns, bundle, record)
    except MedaiError as e:
        record.finish("failed", error=str(e))
        raise
    console.print(f"[green]ok[/] platform: {record.data['postcheck']['line']}", highlight=False)


def roll_back(inv, previous, record: RunRecord, bundle: Path, console: Console) -> None:
    """Every release back to the previous bundle's chart version, in its own namespace, in reverse order."""
    helm, _kube = adapters(kubeconfig_path(inv.cluster), bundle)
    _recorded(record, "platform", lambda: rollback_platform(previous, helm, _options(inv, console)))


def uninstall(inv, installed, record: RunRecord, bundle: Path, console: Console) -> None:
    """Every release of the installed bundle uninstalled, in reverse order."""
    helm, _kube = adapters(kubeconfig_path(inv.cluster), bundle)
    _recorded(record, "platform", lambda: uninstall_platform(installed, helm, _options(inv, console)))
