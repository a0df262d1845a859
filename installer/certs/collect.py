"""Every certificate of the site, from each source, and the listing `medai certs` prints: one line per
certificate with its group, where it is, its names and issuer, not-after and days left, worst first."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from installer.certs.deadline import TIMEOUT, first_line, run_within
from installer.certs.local import kubeconfig_certs, pgp_key
from installer.certs.model import GROUPS, RANK, Cert, Thresholds, thresholds
from installer.certs.nodes import read_node_certs
from installer.certs.secrets import secret_certs
from installer.certs.vault import vault_certs
from installer.deploy import platform_step
from installer.deploy.inventory import load_inventory
from installer.deploy.state import kubeconfig_path, recorded
from installer.deploy.vault.client import endpoints
from installer.deploy.vault.settings import vault_settings

SOURCE_TIMEOUT_S = 30


def _vault(inv, token: str | None) -> list[Cert]:
    s = vault_settings(inv)
    with endpoints(s) as eps:
        return vault_certs(s, eps, token)


def _operators(inv) -> list[Cert]:
    s = vault_settings(inv)
    out = [pgp_key(s.pgp_key_path(op), op.name) for op in s.operators]
    return out + [pgp_key(s.root_token_pgp_key, "the root token's holder")]


def _served(inv) -> list[Cert]:
    """The TLS Secrets the platform serves from, on an installed site (a kubeconfig exists), at the API seam."""
    kube = platform_step.installed_kube(inv.cluster)
    return secret_certs(kube, inv) if kube is not None else []


def _kubeconfig(inv) -> list[Cert]:
    return kubeconfig_certs(kubeconfig_path(inv.cluster))


def gather(inv, *, token: str | None = None, nodes: Callable[[], list[Cert]] | None = None,
           vault: bool = True, timeout_s: float = SOURCE_TIMEOUT_S) -> list[Cert]:
    """nodes: reads the K3s files (installer.certs.nodes.read_node_certs bound to a run record; Ansible's own
    timeouts bound it), or None to skip; vault: read Vault's PKI through its API. The other sources run under
    ``timeout_s``; a source that fails or does not answer is one crit line naming it, the rest are still read."""
    sources: list[tuple[str, Callable[[], list[Cert]]]] = [
        ("operators", lambda: _operators(inv)), ("kubeconfig", lambda: _kubeconfig(inv))]
    if vault:
        sources[:0] = [("vault", lambda: _vault(inv, token)), ("vault", lambda: _served(inv))]
    out: list[Cert] = nodes() if nodes is not None else []
    for (group, _), res in zip(sources, run_within([read for _, read in sources], timeout_s)):
        if res is TIMEOUT:
            out.append(Cert(group, group, str(inv.path), error=f"no answer within {timeout_s:g}s"))
        elif isinstance(res, Exception):
            out.append(Cert(group, group, str(inv.path), error=first_line(res)))
        else:
            out += res
    return out


def line(c: Cert, now: dt.datetime, th: Thresholds) -> tuple[str, str]:
    level, fact = c.classify(now, th)
    if c.error:
        return level, f"{c.group:<12} {c.where} {c.name}: {fact}"
    names = f" [{', '.join(c.names[:4])}{', …' if len(c.names) > 4 else ''}]" if c.names else ""
    return level, f"{c.group:<12} {c.where} {c.name}: {c.subject}{names}, issuer {c.issuer}, {fact}"


def listing(certs: list[Cert], now: dt.datetime, th: Thresholds) -> list[tuple[str, str]]:
    """(level, text) per certificate: worst first, then by group and place."""
    rows = [(c, *line(c, now, th)) for c in certs]
    rows.sort(key=lambda r: (-RANK[r[1]], GROUPS.index(r[0].group) if r[0].group in GROUPS else 99,
                             r[0].days_left(now) if r[0].days_left(now) is not None else 1e9, r[0].where, r[0].name))
    return [(level, text) for _, level, text in rows]


def nearest_per_group(certs: list[Cert], now: dt.datetime, th: Thresholds) -> dict[str, tuple[str, str]]:
    """group -> (worst level, its fact): the nearest expiry, or the first unreadable one, per group."""
    out: dict[str, tuple[str, str, float]] = {}
    for c in certs:
        level, text = line(c, now, th)
        left = c.days_left(now)
        key = (RANK[level], -(left if left is not None else 1e9))
        have = out.get(c.group)
        if have is None or key > (RANK[have[0]], -have[2]):
            out[c.group] = (level, text.split(None, 1)[1], left if left is not None else 1e9)
    return {g: (lv, fact) for g, (lv, fact, _) in out.items()}


def site_certs(inventory, *, token: str | None, read_nodes: bool, console) -> tuple[list[Cert], Thresholds]:
    """`medai certs`: the inventory's thresholds and every certificate, the nodes' read over Ansible under a run
    record (runs/<id>-certs-*/certs/<host>/... holds the fetched files)."""
    inv = load_inventory(inventory)
    th = thresholds(inv)
    if not read_nodes:
        return gather(inv, token=token), th
    with recorded("certs", inv.path, ok="ok") as record:
        certs = gather(inv, token=token, nodes=lambda: read_node_certs(inv, record, console))
        now = dt.datetime.now(dt.UTC)
        record.data["summary"] = {"certificates": [c.as_dict(now, th) for c in certs], "warnDays": th.warn_days,
                                  "critDays": th.crit_days}
    return certs, th
