"""`medai status`: every concern's probe, run side by side under one timeout. The cluster is read through the
platform's adapters at the API seam (installer.deploy.platform_step.adapters: HelmCli, KubeApi); Vault through
its API when the inventory lists its members, else through its pods' labels; the rest from the state directory."""
from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from installer.bundle.layout import BundleLayout
from installer.certs.collect import gather, nearest_per_group
from installer.certs.model import thresholds
from installer.certs.secrets import secret_certs
from installer.core.errors import InstallError
from installer.core.resources import state_dir
from installer.deploy import platform_step
from installer.deploy.inventory import load_inventory
from installer.deploy.postcheck import post_install_check
from installer.deploy.state import installed_copy, kubeconfig_path
from installer.deploy.vault.client import Endpoint
from installer.deploy.vault.settings import vault_settings
from installer.deploy.vault.status import cluster_status
from installer.platform.render import bundle_manifest
from installer.render.helm import k3s_kube_version
from installer.status import local
from installer.status.cluster import node_lines, release_lines, storage_lines, vault_pod_lines
from installer.status.probe import CRIT, OK, WARN, Line, Probe, run_probes

DEFAULT_TIMEOUT_S = 20
LONGHORN_NS = "longhorn-system"


class _Cluster:
    """The adapters, opened once on first use (opening reads the kubeconfig, which may be missing)."""
    def __init__(self, inv, bundle: Path | None):
        self.inv, self.bundle = inv, bundle
        self._pair = None
        self._lock = threading.Lock()

    def pair(self):
        with self._lock:
            return self._open()

    def _open(self):
        if self._pair is None:
            kc = kubeconfig_path(self.inv.cluster)
            if not kc.is_file():
                raise InstallError(f"{kc}: no kubeconfig for {self.inv.cluster} (written by a successful medai install)")
            self._pair = platform_step.adapters(kc, self.bundle)
        return self._pair


def _wanted(bundle: Path | None) -> list[tuple[str, str, str, str]]:
    if bundle is None:
        return []
    return [(c.releaseName or c.name, c.namespace, c.name, c.version)
            for c in bundle_manifest(BundleLayout.at(bundle)).spec.charts]


def _nodes(cl: _Cluster) -> list[Line]:
    k3s = k3s_kube_version(bundle_manifest(BundleLayout.at(cl.bundle)).spec) if cl.bundle else None
    return node_lines(cl.pair()[1].list("v1", "Node"), k3s)


def _provenance(cl: _Cluster) -> list[Line]:
    if cl.bundle is None:
        return [Line("bundle", CRIT, "no verified copy of the installed bundle on this control host: images not checked")]
    by_ns: dict[str, list[str]] = {}
    for name, ns, _, _ in _wanted(cl.bundle):
        by_ns.setdefault(ns, []).append(name)
    try:
        result = post_install_check(cl.pair()[1], by_ns, cl.bundle)
    except InstallError as e:
        return [Line("bundle", CRIT, str(e).splitlines()[0])]
    return [Line("bundle", OK, f"{result.pods} pods, every running image digest is in the installed bundle")]


def _releases(cl: _Cluster) -> list[Line]:
    helm = cl.pair()[0]
    wanted = _wanted(cl.bundle)
    if not wanted:
        return [Line("releases", CRIT, "no installed bundle to compare the releases with")]
    return release_lines(wanted, {name: helm.listed(name, ns) for name, ns, _, _ in wanted})


def _storage(cl: _Cluster) -> list[Line]:
    if not any(chart == "longhorn" for _, _, chart, _ in _wanted(cl.bundle)):
        return [Line("storage", OK, "the installed bundle carries no Longhorn")]
    return storage_lines(cl.pair()[1].list("longhorn.io/v1beta2", "Volume", LONGHORN_NS))


def _vault(inv, cl: _Cluster, token: str | None) -> list[Line]:
    s = vault_settings(inv)
    if not s.members:
        return vault_pod_lines(cl.pair()[1].pods(s.namespace), s.namespace)
    cs = cluster_status([Endpoint(m.name, m.addr, str(s.ca_cert) if s.ca_cert else True) for m in s.members], token)
    out = []
    for m in cs.members:
        if not m.reachable:
            out.append(Line("vault", CRIT, f"{m.name} ({m.addr}): UNREACHABLE ({m.error})"))
        elif not m.initialized:
            out.append(Line("vault", CRIT, f"{m.name}: not initialised / not joined"))
        elif m.sealed:
            out.append(Line("vault", CRIT, f"{m.name}: SEALED ({m.progress}/{m.threshold} shares entered)"))
        else:
            out.append(Line("vault", OK, f"{m.name}: unsealed{', leader' if m.is_leader else ''} (version {m.version})"))
    if cs.leader is None:
        out.append(Line("vault", CRIT, "no leader (all sealed or no quorum)"))
    if token is not None:
        out.append(_peers_line(cs.peers, cs.peers_error, len(s.members)))
    return out


def _peers_line(peers: list[dict], error: str | None, members: int) -> Line:
    """Raft's own view (with a token): every member a voter peer, one leader."""
    if error:
        return Line("vault", CRIT, f"raft peers unreadable: {error}")
    names = ", ".join(f"{p['id']}{' (leader)' if p['leader'] else ''}{'' if p['voter'] else ' (non-voter)'}" for p in peers)
    voters = sum(1 for p in peers if p["voter"])
    level = OK if voters == members and sum(1 for p in peers if p["leader"]) == 1 else WARN
    return Line("vault", level, f"raft peers: {names} ({voters} of {members} members voting)")


def _certs(inv, cl: _Cluster, now: dt.datetime, token: str | None) -> list[Line]:
    """K3s's from the last `medai certs`; Vault's from its API when members are listed, else from the platform's
    TLS Secrets; the kubeconfig's and the operators' keys from the control host."""
    th = thresholds(inv)
    lines = local.k3s_cert_lines(state_dir(), inv.path, now, th)
    if vault_settings(inv).members:
        certs = gather(inv, token=token)
    else:
        certs = secret_certs(cl.pair()[1], inv) + gather(inv, vault=False)
    for group, (level, fact) in sorted(nearest_per_group(certs, now, th).items()):
        lines.append(Line("certificates", level, f"{group}: nearest {fact}"))
    return lines


def probes(inv, now: dt.datetime, token: str | None = None) -> list[Probe]:
    home = state_dir()
    cl = _Cluster(inv, installed_copy(inv.path))
    return [
        ("nodes", lambda: _nodes(cl)),
        ("bundle", lambda: local.bundle_lines(home, inv.path, cl.bundle) + _provenance(cl)),
        ("vault", lambda: _vault(inv, cl, token)),
        ("certificates", lambda: _certs(inv, cl, now, token)),
        ("releases", lambda: _releases(cl)),
        ("storage", lambda: _storage(cl)),
        ("backups", lambda: local.backup_lines(home, inv.path, now)),
        ("compliance", lambda: local.compliance_lines(home, inv.path, now)),
        ("egress", lambda: local.egress_lines(home, inv.path)),
    ]


def site_status(inventory: Path, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> list[Line]:
    """One line per concern (several for nodes, releases, volumes); read-only."""
    inv = load_inventory(inventory)
    thresholds(inv)  # a bad threshold is the inventory's error, before any probe
    return run_probes(probes(inv, dt.datetime.now(dt.UTC), token), timeout_s)
