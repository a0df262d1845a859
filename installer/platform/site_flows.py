"""A site's declared flows: every component's, for the components the site installs (the source of truth the
coherence check reads and the NetworkPolicies are rendered from). Apart from installer.platform.flows because the
component modules import the Flow type from there."""
from __future__ import annotations

from installer.platform.components import BY_CHART, backup_schedules
from installer.platform.flows import Flow
from installer.platform.values import chart_enabled, namespaces, role_vars


def declared(inv) -> list[Flow]:
    """Every flow the platform needs on this site: each component module's `flows(v, namespaces)` for the
    components this site installs (the GPU tier only with GPU hosts), in component order, without repeats."""
    spaces = namespaces(inv)
    out: list[Flow] = []
    for chart, module in BY_CHART.items():
        if chart_enabled(chart, inv):
            out += [f for f in module.flows(role_vars(module.NAME, inv), spaces) if f not in out]
    v = backup_schedules.site_vars(inv.site.model_dump())
    if v["medai_backup_nfs"]:  # the in-site backup schedules' Jobs and Longhorn's backups
        dbs = role_vars("postgres", inv)["medai_postgres_databases"]
        out += [f for f in backup_schedules.flows(v, dbs, spaces["vault"], longhorn_ns=spaces["longhorn"]) if f not in out]
    return out
