"""The platform step of every control-host flow: one place that opens the API adapters, wires the after-release
hooks (Vault, Keycloak, Harbor: installer/deploy/idp_step.py) and calls the one applier (installer/platform/apply.py).

  install   apply(site)                      then the post-install check; a new model version switched to only
                                             once Ready (wire_model_switch)
  upgrade   apply(site, installed=render)    the same apply with the new bundle; moved releases refused first
  rollback  roll_back(previous render)       `helm rollback` to the previous bundle's chart versions
  reset     uninstall(installed render)      reverse order, before the nodes are wiped

``adapters`` is the API seam: the production HelmCli and KubeApi (the one Kubernetes client: these flows,
`medai status`, `medai certs` and the upgrade's preflight) on the fetched kubeconfig. The tests put recording
adapters there (tests/support/kube.py for the Kubernetes API); a live K3s is reached only by the MEDAI_E2E_K3S
tests.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console

from installer.core.errors import MedaiError
from installer.deploy.idp_step import wire
from installer.deploy.postcheck import post_install_check
from installer.deploy.state import RunRecord, kubeconfig_path
from installer.inference.switch import VERSION_LABEL, switch_service
from installer.platform.apply import (
    ApplyOptions,
    HelmCli,
    KubeApi,
    apply_platform,
    apply_release,
    rollback_platform,
    uninstall_platform,
    upgrade_platform,
)
from installer.platform.values import release_timeouts


def adapters(kubeconfig: Path, bundle: Path | None):
    """(helm, kube) for the cluster behind ``kubeconfig``; helm is the verified bundle's when it carries one.
    A missing kubeconfig is refused first, naming it."""
    kube = KubeApi(kubeconfig)
    return HelmCli(kubeconfig, bundle), kube


def installed_kube(cluster: str):
    """The Kubernetes adapter of an installed site (medai fetched its kubeconfig), else None."""
    kc = kubeconfig_path(cluster)
    return adapters(kc, None)[1] if kc.is_file() else None


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


class _SwitchApi:
    """installer.inference.switch's Api over the platform's Kubernetes adapter (one client at the seam)."""

    def __init__(self, kube):
        self._kube = kube

    def read_deployment(self, name: str, namespace: str):
        return self._kube.get("apps/v1", "Deployment", name, namespace)

    def read_service(self, name: str, namespace: str):
        return self._kube.get("v1", "Service", name, namespace)

    def patch_service_selector(self, name: str, namespace: str, selector: dict[str, str]):
        self._kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                          "spec": {"selector": selector}})


def wire_model_switch(opts: ApplyOptions, site, kube, helm) -> None:
    """A new activeVersion of medai-inference is switched to only once its pods are Ready: the release is first
    applied with the version the Service selects now (the new Deployment starts beside the old one), then the
    Service is switched (installer.inference.switch), then the rendered values are applied so Helm's record is
    the render. A first install, or a version already selected, is the plain apply."""
    r = next((r for r in site.releases if r.chart.name == "medai-inference"), None)
    if r is None:
        return
    api = _SwitchApi(kube)
    want = r.values.get("activeVersion")

    def selected(rel) -> str | None:
        svc = api.read_service(rel.name, rel.namespace) or {}
        return ((svc.get("spec") or {}).get("selector") or {}).get(VERSION_LABEL)

    def values_for(rel) -> dict:
        have = selected(rel)
        versions = {m.get("version") for m in rel.values.get("models") or []}
        return {**rel.values, "activeVersion": have} if have and have != want and have in versions else rel.values

    def after(rel) -> None:
        if selected(rel) in (None, want):
            return
        switch_service(api, release=rel.name, namespace=rel.namespace, version=want, log=opts.log)
        apply_release(rel, helm, kube, opts)  # now selecting `want`: the rendered values, through the one applier

    opts.values_for[r.name] = values_for
    opts.after[r.name] = after


def apply(inv, site, record: RunRecord, bundle: Path, console: Console, installed=None, flow: str = "install") -> None:
    """Install or upgrade every release of ``site`` (a SiteRender of the verified copy at ``bundle``), with the
    install's hooks; ``installed``: the render of the bundle the cluster runs (upgrade), checked for moved releases."""

    helm, kube = adapters(kubeconfig_path(inv.cluster), bundle)
    opts = _options(inv, console)

    def run():
        wire(opts, inv, site, kube, helm, record, bundle,
             lambda line: console.print(f"[cyan]platform[/] {line}", highlight=False))
        wire_model_switch(opts, site, kube, helm)
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
