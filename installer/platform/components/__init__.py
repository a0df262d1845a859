"""Each platform component's site variables (their defaults, overridden by the inventory's all.vars) and what
they turn into: the chart values medai adds over the bundle manifest's, and the objects medai applies after the
release. Plain Python data: `medai render` shows exactly what these return, and the applier passes exactly that.

One module per component; a component lists its variables in DEFAULTS (documented in docs/platform.md), returns
its chart values from ``values(v)``, where it has any, its objects from ``objects(v, release, namespace)``, and
the network flows it needs from ``flows(v, namespaces)`` (installer/platform/flows.py renders the policies).
"""
from installer.platform.components import (
    cilium,
    harbor,
    harbor_redis,
    inference,
    keycloak,
    longhorn,
    metallb,
    nvidia,
    postgres,
    vault,
)

# chart name -> the component module holding its site values
BY_CHART = {"cilium": cilium, "metallb": metallb, "longhorn": longhorn, "vault": vault, "cloudnative-pg": postgres,
            "keycloakx": keycloak, harbor_redis.CHART: harbor_redis, "harbor": harbor, "nvidia-device-plugin": nvidia,
            "medai-inference": inference}
# component (variable prefix medai_<name>_) -> module (Harbor's Redis shares Harbor's variables: Harbor's module)
BY_NAME = {m.NAME: m for m in BY_CHART.values() if m is not harbor_redis}
